"""Time synchronization (rclpy-free): a drop-in for ROS 2 ``message_filters``' Python synchronizers, and
:class:`StreamSync` (stream timeouts and health on top); docs/ARCHITECTURE.md, "Synchronization policy"."""
from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Generic, Hashable, Sequence, TypeVar

from admn_ros.core.health import MISSING, OK, HealthConfig, StreamHealth

K = TypeVar("K", bound=Hashable)


def stamp_to_ns(stamp: Any) -> int:
    """Integer nanoseconds of a stamp: an int (ns), an object with ``nanoseconds``
    (``rclpy.time.Time``) or with ``sec`` and ``nanosec`` (``nsec``) fields."""
    if isinstance(stamp, int):
        return stamp
    ns = getattr(stamp, "nanoseconds", None)
    if ns is not None:
        return int(ns)
    try:
        sec = stamp.sec
    except AttributeError:
        raise TypeError(f"not a stamp: {type(stamp).__name__} has no sec/nanosec or nanoseconds") from None
    return int(sec) * 1_000_000_000 + int(getattr(stamp, "nanosec", getattr(stamp, "nsec", 0)))


def header_stamp_ns(msg: Any) -> int | None:
    """``msg.header.stamp`` in ns, or ``None`` for a message without one."""
    stamp = getattr(getattr(msg, "header", None), "stamp", None)
    return None if stamp is None else stamp_to_ns(stamp)


class SimpleFilter:
    """A filter stage: callbacks registered with :meth:`registerCallback` get every message
    passed to :meth:`signalMessage`, followed by the extra arguments given at registration."""

    def __init__(self) -> None:
        self.callbacks: dict[int, tuple[Callable[..., Any], tuple]] = {}
        self._conns = itertools.count()

    def registerCallback(self, cb: Callable[..., Any], *args: Any) -> int:  # noqa: N802 - message_filters API
        """Call ``cb(*messages, *args)`` on every output; returns the connection id."""
        conn = next(self._conns)
        self.callbacks[conn] = (cb, args)
        return conn

    def unregisterCallback(self, conn: int) -> None:  # noqa: N802
        self.callbacks.pop(conn, None)

    def signalMessage(self, *msg: Any) -> None:  # noqa: N802
        for cb, args in list(self.callbacks.values()):
            cb(*msg, *args)


class TimeSynchronizer(SimpleFilter):
    """Sets of messages with *identical* header stamps, one from each filter in ``fs``, in that order."""

    def __init__(self, fs: Sequence[Any], queue_size: int) -> None:
        SimpleFilter.__init__(self)
        self.queue_size = int(queue_size)
        self.lock = threading.Lock()
        self.connectInput(fs)

    def connectInput(self, fs: Sequence[Any]) -> None:  # noqa: N802
        """Take input from the filters ``fs`` (one queue each, in order)."""
        self.queues: list[dict[int, Any]] = [{} for _ in fs]
        self.input_connections = [f.registerCallback(self.add, self.queues[i], i) for i, f in enumerate(fs)]

    def _store(self, queue: dict[int, Any], key: int, msg: Any) -> None:
        queue[key] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        ns = header_stamp_ns(msg)
        if ns is None:
            raise ValueError(f"{type(self).__name__}: a {type(msg).__name__} without header.stamp cannot be "
                             "synchronized by exact stamp")
        with self.lock:
            self._store(my_queue, ns, msg)
            shared = set(self.queues[0]).intersection(*self.queues[1:]) if self.queues else set()
            if not shared:
                return
            t = min(shared)
            self.signalMessage(*(q[t] for q in self.queues))
            for q in self.queues:
                for s in [s for s in q if s <= t]:
                    del q[s]


class ApproximateTimeSynchronizer(TimeSynchronizer):
    """Sets of messages, one from each filter in ``fs``, whose header stamps spread strictly less
    than ``slop`` seconds (``message_filters`` semantics). ``queue_offset``: ``False`` or one
    offset (ns) per input, subtracted from its stamps (the arriving message still enters the
    spread unshifted, as upstream). ``clock() -> ns`` stamps headerless messages
    (``allow_headerless``) or every message (``sync_arrival_time``); default the wall clock."""

    def __init__(self, fs: Sequence[Any], queue_size: int, slop: float, queue_offset: Any = False,
                 allow_headerless: bool = False, sync_arrival_time: bool = False, *,
                 clock: Callable[[], int] | None = None, logger: Any = None) -> None:
        TimeSynchronizer.__init__(self, fs, queue_size)
        self.slop = float(slop)
        self.slop_ns = int(slop * 1_000_000_000)   # truncated as rclpy's Duration(seconds=slop)
        self.queue_offset = queue_offset
        self.allow_headerless = bool(allow_headerless)
        self.sync_arrival_time = bool(sync_arrival_time)
        self._clock = clock or time.time_ns
        self._logger = logger if logger is not None else logging.getLogger("message_filters_approx")

    def add(self, msg: Any, my_queue: dict[int, Any], my_queue_index: int | None = None) -> None:
        ns = None if self.sync_arrival_time else header_stamp_ns(msg)
        if ns is None:
            if not (self.allow_headerless or self.sync_arrival_time):
                self._logger.warning("message without header.stamp dropped: approximate time synchronization "
                                     "needs stamps; set allow_headerless=True to stamp such messages with the "
                                     "clock's now")
                return
            ns = int(self._clock())
        key = ns
        if my_queue_index is not None and self.queue_offset:
            key -= int(self.queue_offset[my_queue_index])
        with self.lock:
            self._store(my_queue, key, msg)
            others = [i for i in range(len(self.queues)) if i != my_queue_index]   # all for no index
            # per other input its stamps within slop of the key, nearest first (stable: ties stay in queue order)
            candidates = [sorted((s for s in self.queues[i] if abs(s - key) <= self.slop_ns),
                                 key=lambda s: abs(s - key)) for i in others]
            for combo in itertools.product(*candidates):   # none if an input has no candidate
                stamps = list(combo)
                if my_queue_index is not None:
                    stamps.insert(my_queue_index, ns)     # the anchor's own, unshifted stamp
                if max(stamps) - min(stamps) >= self.slop_ns:
                    continue
                if any(s not in q for q, s in zip(self.queues, stamps)):
                    continue
                self.signalMessage(*(q[s] for q, s in zip(self.queues, stamps)))
                for q, s in zip(self.queues, stamps):
                    del q[s]
                return


@dataclass
class SyncedSet(Generic[K]):
    """One synchronized set: ``stamp_ns`` its newest stamp, ``items`` input -> payload (``None``:
    missing), ``missing`` the inputs left out (timed out or unhealthy), ``stamps_ns`` input ->
    stamp of its message, ``status`` input -> ``ok`` / ``missing`` / ``frozen`` / ``stalled``."""

    stamp_ns: int
    items: dict[K, Any]
    missing: frozenset[K]
    stamps_ns: dict[K, int] = field(default_factory=dict)
    status: dict[K, str] = field(default_factory=dict)


@dataclass
class SyncStats:
    """Counters of a :class:`StreamSync`: ``offered`` messages went in, ``matched`` of them fired in one
    of the ``sets`` emitted; ``stale_sets`` sets (``stale`` messages) were not newer than an emitted set;
    ``rebuilds`` counts changes of the live inputs; ``queued`` messages wait now; the rest were
    ``discarded`` (queue overflow, same stamp replaced, input timed out or unhealthy)."""

    offered: int = 0
    matched: int = 0
    sets: int = 0
    stale_sets: int = 0
    stale: int = 0
    rebuilds: int = 0
    queued: int = 0

    @property
    def discarded(self) -> int:
        return self.offered - self.matched - self.queued


class _Entry:
    """What :class:`StreamSync` passes through the synchronizer: a header plus our payload."""

    def __init__(self, key: Any, stamp: Any, payload: Any, seq: int) -> None:
        self.header = SimpleNamespace(stamp=stamp)
        self.key, self.payload, self.stamp_ns, self.seq = key, payload, stamp_to_ns(stamp), seq


class StreamSync(Generic[K]):
    """Approximate-time synchronization over the *live* inputs ``keys`` (output order): an input
    silent for more than ``timeout`` s, or unhealthy under ``health``, is left out until it
    rejoins; a set not newer than the last emitted one is dropped as stale. Time (``now``, s) is
    passed in (ROS, wall, bag or simulated time). ``synchronizer``: ``(filters, queue_size, slop) ->``
    a ``message_filters``-like synchronizer. ``start_time``: clock origin for never-seen inputs;
    ``None`` = the ``now`` of the first :meth:`add` (with ``use_sim_time`` the clock reads 0 until
    ``/clock`` arrives)."""

    def __init__(self, keys: Sequence[K], slop: float, queue_size: int = 10, timeout: float = 0.5, *,
                 synchronizer: Callable[[Sequence[Any], int, float], Any] | None = None,
                 start_time: float | None = None, health: HealthConfig | None = None) -> None:
        if not keys:
            raise ValueError("StreamSync needs at least one input key")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate input keys: {list(keys)}")
        _check_settings(slop, queue_size, timeout)
        self.keys: list[K] = list(keys)
        self.slop, self.queue_size, self.timeout = float(slop), int(queue_size), float(timeout)
        self._factory = synchronizer or ApproximateTimeSynchronizer
        self._started = start_time is not None
        self._last_seen: dict[K, float] = {k: float(start_time or 0.0) for k in self.keys}
        #: the inputs the current synchronizer runs over (none: no synchronizer)
        self.live: tuple[K, ...] = ()
        self._sync: Any = None
        self._filters: dict[K, SimpleFilter] = {}
        self._fired: list[tuple[tuple[_Entry, ...], tuple[K, ...]]] = []
        self._seq = itertools.count()
        self._last_stamp_ns: int | None = None
        self._now = 0.0
        self.stats = SyncStats()
        #: sets emitted without each input (it was timed out or unhealthy)
        self.missing_count: dict[K, int] = {k: 0 for k in self.keys}
        self._stamp_ns: dict[K, int] = {}      # newest stamp of each input (health check)
        #: input -> its health check (empty without ``health``)
        self.health: dict[K, StreamHealth] = {k: StreamHealth(health) for k in self.keys} if health else {}

    def configure(self, slop: float | None = None, queue_size: int | None = None,
                  timeout: float | None = None, health: HealthConfig | None = None) -> None:
        """Change settings at run time; a new ``slop`` / ``queue_size`` rebuilds the synchronizer
        (its queued messages are offered again; the sets that completes come with the next
        :meth:`add` / :meth:`poll`); ``health`` applies to the next messages of a health check."""
        for h in self.health.values():
            h.cfg = health or h.cfg
        s = self.slop if slop is None else float(slop)
        q = self.queue_size if queue_size is None else int(queue_size)
        t = self.timeout if timeout is None else float(timeout)
        _check_settings(s, q, t)
        rebuild = (s, q) != (self.slop, self.queue_size)
        self.slop, self.queue_size, self.timeout = s, q, t
        if rebuild and self._sync is not None:
            self._rebuild(self.live)

    def add(self, key: K, stamp: Any, payload: Any, now: float, signature: Any = None) -> list[SyncedSet[K]]:
        """Offer one message (its header ``stamp``, what the sets should carry and, for the health
        check, its content ``signature``); returns the sets that fire because of it, oldest first."""
        if key not in self.missing_count:
            raise KeyError(f"unknown input {key!r}; inputs: {self.keys}")
        now = float(now)
        if not self._started:
            self._started = True
            self._last_seen = {k: now for k in self.keys}
        self._last_seen[key] = now
        self.stats.offered += 1
        if key in self.health:
            ns = self._stamp_ns[key] = stamp_to_ns(stamp)
            self.health[key].update(ns, now, signature, apart=self._apart(ns, now))
        self._refresh(now)
        if key in self._filters:
            self._filters[key].signalMessage(_Entry(key, stamp, payload, next(self._seq)))
        return self._drain()

    def _apart(self, stamp_ns: int, now: float) -> bool:
        """Whether ``stamp_ns`` lies more than ``timeout`` (``slop`` if larger) from the median newest stamp of the
        three or more inputs heard within ``timeout``: a sensor clock that is off, never matching the others'."""
        heard = [s for k, s in self._stamp_ns.items() if now - self._last_seen[k] <= self.timeout]
        return len(heard) >= 3 and abs(stamp_ns - statistics.median(heard)) > max(self.timeout, self.slop) * 1e9

    def poll(self, now: float) -> list[SyncedSet[K]]:
        """Call periodically (a timer): fires the sets that an input's timeout completes."""
        if not self._started:   # no data yet: nothing can fire, and the clock may not be valid yet
            return []
        self._refresh(float(now))
        return self._drain()

    def missing(self, now: float) -> frozenset[K]:
        """Inputs silent for longer than ``timeout`` at time ``now`` (none before the first message)."""
        return frozenset(k for k in self.keys if self._started and now - self._last_seen[k] > self.timeout)

    def status(self, now: float | None = None) -> dict[K, str]:
        """Per input at ``now`` (default: the last ``add`` / ``poll``): ``missing`` (timed out),
        its health status (``frozen``, ``stalled``) or ``ok``."""
        missing = self.missing(self._now if now is None else now)
        return {k: MISSING if k in missing else (self.health[k].status if k in self.health else OK)
                for k in self.keys}

    def _refresh(self, now: float) -> None:
        self._now = now
        missing = self.missing(now)
        live = tuple(k for k in self.keys if k not in missing and (k not in self.health or self.health[k].healthy))
        if live != self.live:
            self._rebuild(live)

    def _rebuild(self, live: tuple[K, ...]) -> None:
        keep = sorted((e for q in (self._sync.queues if self._sync is not None else ()) for e in q.values()
                       if e.key in live), key=lambda e: e.seq)
        self.live = live
        self._filters = {k: SimpleFilter() for k in live}
        self._sync = None
        if live:
            self._sync = self._factory([self._filters[k] for k in live], self.queue_size, self.slop)
            self._sync.registerCallback(self._collect, live)
        self.stats.rebuilds += 1
        for e in keep:
            self._filters[e.key].signalMessage(e)

    def _collect(self, *args: Any) -> None:
        *entries, live = args
        self._fired.append((tuple(entries), live))

    def _drain(self) -> list[SyncedSet[K]]:
        out: list[SyncedSet[K]] = []
        fired, self._fired = self._fired, []
        for entries, live in fired:
            self.stats.matched += len(entries)
            stamps = {e.key: e.stamp_ns for e in entries}
            newest = max(stamps.values())
            if self._last_stamp_ns is not None and newest <= self._last_stamp_ns:
                self.stats.stale_sets += 1
                self.stats.stale += len(entries)
                continue
            self._last_stamp_ns = newest
            payloads = {e.key: e.payload for e in entries}
            missing = frozenset(k for k in self.keys if k not in live)
            for k in missing:
                self.missing_count[k] += 1
            self.stats.sets += 1
            now = self.status()
            status = {k: OK if k in live else (MISSING if now[k] == OK else now[k]) for k in self.keys}
            out.append(SyncedSet(newest, {k: payloads.get(k) for k in self.keys}, missing, stamps, status))
        self.stats.queued = sum(len(q) for q in self._sync.queues) if self._sync is not None else 0
        return out


def _check_settings(slop: float, queue_size: int, timeout: float) -> None:
    if not slop > 0 or queue_size < 1 or not timeout > 0:
        raise ValueError(f"invalid sync settings: slop={slop} (> 0: a set's spread must be below it), "
                         f"queue_size={queue_size} (>= 1), timeout={timeout} (> 0)")
