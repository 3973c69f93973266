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
