"""Approximate-time synchronizer with stream timeouts (rclpy-free).

Semantics follow ``message_filters.ApproximateTimeSynchronizer``:

* each input key (a stream) has its own queue of items keyed by stamp, at most
  ``queue_size`` long (oldest dropped first);
* a *set* fires when every input has an item and all chosen stamps lie within
  ``slop`` seconds of each other;
* after a set fires, everything at or before the chosen stamps is discarded, and
  a late item whose stamp is not newer than the last emitted set never fires
  (it is counted as ``late``); a repeated stamp is counted as ``duplicate``.

What ``message_filters`` lacks and robots need: an input that has delivered
nothing for longer than ``timeout`` seconds is marked *missing* and sets keep
firing from the remaining inputs, with ``None`` for the missing one (the
controller then gives that stream 0 blocks). A missing input rejoins as soon as
it delivers again. Inputs never seen count as missing ``timeout`` seconds after
the synchronizer starts. With every input missing nothing fires.

Matching: with ``pivot`` = the newest of the queues' oldest stamps, each queue
contributes its item closest to ``pivot``; if they all lie within ``slop`` the set
fires, otherwise items older than ``pivot - slop`` can never match (inputs
arrive in stamp order) and are dropped as ``unmatched``.

Time is passed in explicitly (``now``, seconds), so the policy is testable and
works with ROS time, wall time or simulated time alike.

:class:`FrameAssembler` (activity windows) groups the same inputs into frames by stamp
but never drops a frame because one input lost one message: that input is simply absent
from that frame (see its docstring).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Hashable, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class SyncedSet(Generic[K]):
    """One synchronized set: ``items[k]`` is ``None`` for missing inputs."""

    stamp: float
    items: dict[K, Any]
    missing: frozenset[K]
    stamps: dict[K, float] = field(default_factory=dict)


@dataclass
class SyncStats:
    emitted: int = 0
    late: int = 0
    duplicate: int = 0
    unmatched: int = 0
    overflow: int = 0


class ApproxTimeSync(Generic[K]):
    """Approximate-time synchronizer; see the module docstring for the policy.

    Args:
        keys: the inputs, in output order.
        slop: largest stamp difference (s) inside one set.
        queue_size: items kept per input.
        timeout: an input silent for longer than this (s) is missing.
        start_time: the clock origin for never-seen inputs; ``None`` (default) = the ``now``
            of the first :meth:`add` (the first data). Nodes should leave it ``None``:
            with ``use_sim_time`` the clock reads 0 until ``/clock`` arrives and then jumps
            to bag time, which would make every not-yet-seen input "missing" at once.
    """

    def __init__(self, keys: Sequence[K], slop: float, queue_size: int = 10,
                 timeout: float = 0.5, start_time: float | None = None) -> None:
        if not keys:
            raise ValueError("ApproxTimeSync needs at least one input key")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate input keys: {list(keys)}")
        if slop < 0 or queue_size < 1 or timeout <= 0:
            raise ValueError(f"invalid sync settings: slop={slop} (>=0), queue_size={queue_size} (>=1), "
                             f"timeout={timeout} (>0)")
        self.keys: list[K] = list(keys)
        self.slop = float(slop)
        self.queue_size = int(queue_size)
        self.timeout = float(timeout)
        self._queues: dict[K, dict[float, Any]] = {k: {} for k in self.keys}
        self._started = start_time is not None
        self._last_seen: dict[K, float] = {k: float(start_time or 0.0) for k in self.keys}
        self._last_set_stamp = float("-inf")
        self.stats = SyncStats()

    # ------------------------------------------------------------------ inputs
    def add(self, key: K, stamp: float, item: Any, now: float) -> list[SyncedSet[K]]:
        """Offer one item; returns the sets that fire because of it (usually 0 or 1)."""
        if key not in self._queues:
            raise KeyError(f"unknown input {key!r}; inputs: {self.keys}")
        self._start(now)
        stamp = float(stamp)
        self._last_seen[key] = float(now)
        if stamp <= self._last_set_stamp:
            self.stats.late += 1
            return self._try_emit(now)
        q = self._queues[key]
        if stamp in q:
            self.stats.duplicate += 1
            return self._try_emit(now)
        q[stamp] = item
        while len(q) > self.queue_size:
            del q[min(q)]
            self.stats.overflow += 1
        return self._try_emit(now)

    def poll(self, now: float) -> list[SyncedSet[K]]:
        """Call periodically (e.g. from a timer): fires sets that became complete because
        an input timed out."""
        if not self._started:  # no data yet: nothing can fire, and the clock may not be valid yet
            return []
        return self._try_emit(now)

    def _start(self, now: float) -> None:
        if not self._started:
            self._started = True
            self._last_seen = {k: float(now) for k in self.keys}

    # ------------------------------------------------------------------ state
    def missing(self, now: float) -> frozenset[K]:
        """Inputs silent for longer than ``timeout`` at time ``now``."""
        return frozenset(k for k in self.keys if now - self._last_seen[k] > self.timeout)

    def queued(self, key: K) -> int:
        return len(self._queues[key])

    # ------------------------------------------------------------------ policy
    def _try_emit(self, now: float) -> list[SyncedSet[K]]:
        out: list[SyncedSet[K]] = []
        while True:
            missing = self.missing(now)
            active = [k for k in self.keys if k not in missing]
            if not active or any(not self._queues[k] for k in active):
                return out
            pivot = max(min(self._queues[k]) for k in active)
            chosen = {k: min(self._queues[k], key=lambda s: abs(s - pivot)) for k in active}
            if max(chosen.values()) - min(chosen.values()) <= self.slop:
                items = {k: (self._queues[k][chosen[k]] if k in chosen else None) for k in self.keys}
                stamp = max(chosen.values())
                self._last_set_stamp = stamp
                self._purge(chosen, stamp)
                self.stats.emitted += 1
                out.append(SyncedSet(stamp=stamp, items=items, missing=missing, stamps=dict(chosen)))
                continue
            # Items older than pivot - slop can never be matched any more.
            dropped = False
            for k in active:
                for s in [s for s in self._queues[k] if s < pivot - self.slop]:
                    del self._queues[k][s]
                    self.stats.unmatched += 1
                    dropped = True
            if not dropped:  # pragma: no cover - defensive: pivot logic guarantees progress
                return out

    def _purge(self, chosen: dict[K, float], stamp: float) -> None:
        for k, q in self._queues.items():
            limit = chosen.get(k, stamp)
            for s in [s for s in q if s <= limit]:
                del q[s]


# ---------------------------------------------------------------------------- frame assembly
@dataclass
class AssembledFrame(Generic[K]):
    """One frame of :class:`FrameAssembler`: the items that arrived for it.

    Attributes:
        stamp: the newest item stamp in the frame (s).
        items: ``key -> item`` of the inputs that delivered; inputs without data are absent.
        stamps: ``key -> stamp`` of those items.
        missing: inputs absent from this frame.
        reason: why it was emitted: ``complete`` (every live input delivered), ``superseded``
            (a newer frame completed first: its missing inputs will never come, inputs
            arrive in stamp order), ``timeout`` (waited ``timeout`` s) or ``overflow``
            (more than ``max_open`` frames were open).
    """

    stamp: float
    items: dict[K, Any]
    stamps: dict[K, float]
    missing: frozenset[K]
    reason: str


@dataclass
class AssemblyStats:
    emitted: int = 0
    complete: int = 0
    incomplete: int = 0
    late: int = 0
    duplicate: int = 0
    overflow: int = 0


@dataclass
class _OpenFrame:
    anchor: float
    opened: float
    items: dict[Any, Any] = field(default_factory=dict)
    stamps: dict[Any, float] = field(default_factory=dict)


class FrameAssembler(Generic[K]):
    """Per-input messages -> frames (sets of items sharing a stamp), where a lost message
    only makes its input absent from *that* frame (activity windows need every frame).

    :class:`ApproxTimeSync` drops a whole set when one input skips a stamp but keeps
    delivering (the other items can no longer match); for a sliding window of frames
    that loses a time step. Here instead:

    * an item joins the open frame whose first stamp is within ``slop`` of its stamp (and
      which has no item of that input yet), else it opens a new frame;
    * a frame is emitted, always in stamp order, as soon as every *live* input delivered
      (``complete``), when a newer frame completed first (``superseded``: inputs arrive
      in stamp order, so the missing items are lost), after waiting ``timeout`` s since
      its first item (``timeout``, via :meth:`poll`), or when more than ``max_open``
      frames are open (``overflow``);
    * an input silent for more than ``timeout`` s is not *live*: frames complete without
      it (as in :class:`ApproxTimeSync`), and it rejoins with its next message; inputs
      never seen count as silent ``timeout`` s after the first item;
    * an item at or before an emitted frame (within ``slop``) is ``late`` and dropped; an
      input's second item for one frame is a ``duplicate`` and dropped.

    Time is passed in explicitly (``now``, seconds), as for :class:`ApproxTimeSync`.
    """

    def __init__(self, keys: Sequence[K], slop: float, timeout: float = 0.5, max_open: int = 10) -> None:
        if not keys:
            raise ValueError("FrameAssembler needs at least one input key")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate input keys: {list(keys)}")
        if slop < 0 or timeout <= 0 or max_open < 1:
            raise ValueError(f"invalid assembly settings: slop={slop} (>=0), timeout={timeout} (>0), "
                             f"max_open={max_open} (>=1)")
        self.keys: list[K] = list(keys)
        self.slop = float(slop)
        self.timeout = float(timeout)
        self.max_open = int(max_open)
        self._open: list[_OpenFrame] = []          # sorted by anchor
        self._last_seen: dict[K, float] = {}
        self._started = False
        self._last_emitted = float("-inf")
        self.stats = AssemblyStats()
        self.missing_count: dict[K, int] = {k: 0 for k in self.keys}

    # ------------------------------------------------------------------ inputs
    def add(self, key: K, stamp: float, item: Any, now: float) -> list[AssembledFrame[K]]:
        """Offer one item; returns the frames emitted because of it (in stamp order)."""
        if key not in self.missing_count:
            raise KeyError(f"unknown input {key!r}; inputs: {self.keys}")
        now, stamp = float(now), float(stamp)
        if not self._started:
            self._started = True
            self._last_seen = {k: now for k in self.keys}
        self._last_seen[key] = now
        best = None
        for f in self._open:
            d = abs(stamp - f.anchor)
            if d <= self.slop and (best is None or d < abs(stamp - best.anchor)):
                best = f
        if best is None and stamp <= self._last_emitted + self.slop:
            self.stats.late += 1
            return self._emit(now)
        if best is not None and key in best.items:
            self.stats.duplicate += 1
            return self._emit(now)
        out: list[AssembledFrame[K]] = []
        if best is None:
            best = _OpenFrame(stamp, now)
            self._open.append(best)
            self._open.sort(key=lambda f: f.anchor)
            while len(self._open) > self.max_open:
                self.stats.overflow += 1
                out.append(self._pop_oldest("overflow"))
            if best not in self._open:      # the new frame itself was the oldest: flushed
                return out + self._emit(now)
        best.items[key] = item
        best.stamps[key] = stamp
        return out + self._emit(now)

    def poll(self, now: float) -> list[AssembledFrame[K]]:
        """Call periodically (a timer): emits frames that waited ``timeout`` s."""
        if not self._started:
            return []
        return self._emit(float(now))

    # ------------------------------------------------------------------ state
    def missing(self, now: float) -> frozenset[K]:
        """Inputs silent for longer than ``timeout`` at time ``now`` (none before the first item)."""
        if not self._started:
            return frozenset()
        return frozenset(k for k in self.keys if now - self._last_seen[k] > self.timeout)

    @property
    def open_frames(self) -> int:
        return len(self._open)

    # ------------------------------------------------------------------ policy
    def _pop_oldest(self, reason: str) -> AssembledFrame[K]:
        f = self._open.pop(0)
        missing = frozenset(k for k in self.keys if k not in f.items)
        self._last_emitted = max(self._last_emitted, f.anchor)
        self.stats.emitted += 1
        if missing:
            self.stats.incomplete += 1
            for k in missing:
                self.missing_count[k] += 1
        else:
            self.stats.complete += 1
        return AssembledFrame(max(f.stamps.values()), dict(f.items), dict(f.stamps), missing,
                              "complete" if not missing else reason)

    def _emit(self, now: float) -> list[AssembledFrame[K]]:
        out: list[AssembledFrame[K]] = []
        live = [k for k in self.keys if k not in self.missing(now)]
        # the newest frame every live input delivered to: it and everything older goes
        done = max((i for i, f in enumerate(self._open) if all(k in f.items for k in live)), default=-1)
        for i in range(done + 1):
            out.append(self._pop_oldest("complete" if i == done else "superseded"))
        while self._open and now - self._open[0].opened >= self.timeout:
            out.append(self._pop_oldest("timeout"))
        return out
