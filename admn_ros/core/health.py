"""Per-stream health, what a single frame cannot show (rclpy-free): *frozen* content, *stalled* or jumping
stamps (a stall wins over a freeze); the rules: docs/ARCHITECTURE.md, "Synchronization policy".
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

OK, MISSING, FROZEN, STALLED = "ok", "missing", "frozen", "stalled"
#: Statuses that take a stream out of the frames although it keeps sending.
UNHEALTHY: frozenset[str] = frozenset({FROZEN, STALLED})


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of :class:`StreamHealth` (node parameters of the same names; 0 = rule off)."""

    frozen_frames: int = 8
    frozen_tolerance: float = 0.0
    stall_frames: int = 5
    max_jump_s: float = 1.0
    recover_frames: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) >= 0:   # NaN fails too
                raise ValueError(f"health check: {f.name} must be >= 0, got {getattr(self, f.name)}")

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> "HealthConfig":
        """From a parameter dict holding (at least) every field."""
        return cls(**{f.name: type(f.default)(p[f.name]) for f in fields(cls)})


#: Every rule off (what a node or replay without the health check does).
HEALTH_OFF = HealthConfig(frozen_frames=0, stall_frames=0, max_jump_s=0.0)


def content_signature(x: np.ndarray) -> np.ndarray:
    """The content signature of a ``(C, H, W)`` model input: every second pixel, float32."""
    return np.ascontiguousarray(np.asarray(x, np.float32)[..., ::2, ::2])


class StreamHealth:
    def __init__(self, cfg: HealthConfig | None = None) -> None:
        self.cfg = cfg or HealthConfig()
        self.status = OK
        #: times the stream turned frozen / stalled
        self.events: Counter = Counter()
        self._newest: int | None = None     # newest stamp (ns) and its arrival time (s)
        self._newest_at = 0.0
        self._sig: np.ndarray | None = None
        self._repeats = self._stalls = self._good = self._apart = 0

    def update(self, stamp_ns: int, now: float, signature: np.ndarray | None = None, apart: bool = False) -> str:
        """Feed one message (header stamp ns, arrival time s, signature or ``None``; ``apart``: its stamp lies far
        from the other streams', a stall once ``stall_frames`` messages in a row do: a clock that is off, not one
        late delivery); the status after it."""
        c = self.cfg
        stamp_ns, now = int(stamp_ns), float(now)
        jump_ns = int(c.max_jump_s * 1e9)
        first = self._newest is None
        jumped = not first and jump_ns > 0 and (stamp_ns < self._newest - jump_ns or (
            stamp_ns > self._newest and (stamp_ns - self._newest) - (now - self._newest_at) * 1e9 > jump_ns))
        advancing = first or (not jumped and stamp_ns > self._newest)
        if jumped or advancing:
            self._newest, self._newest_at = stamp_ns, now
        self._stalls = 0 if advancing else self._stalls + 1
        changed = True
        if signature is not None:
            prev, self._sig = self._sig, signature
            changed = prev is None or prev.shape != signature.shape or \
                float(np.mean(np.abs(signature - prev))) > c.frozen_tolerance
        self._repeats = 0 if changed else self._repeats + 1
        self._apart = self._apart + 1 if apart else 0
        if jumped or (jump_ns > 0 and max(c.stall_frames, 1) <= self._apart) or 0 < c.stall_frames <= self._stalls:
            self._set(STALLED)
        elif 0 < c.frozen_frames <= self._repeats:
            self._set(FROZEN)
        elif self.status != OK:   # a good message: its stamp advances and its content changed, or that rule is off
            good = (advancing or not (c.stall_frames or jump_ns)) and (changed or not c.frozen_frames)
            self._good = self._good + 1 if good else 0
            if self._good >= c.recover_frames:
                self.status = OK
        return self.status

    def _set(self, status: str) -> None:
        if self.status != status:
            self.events[status] += 1
        self.status, self._good = status, 0

    @property
    def healthy(self) -> bool:
        return self.status not in UNHEALTHY


def unhealthy(status: Mapping[str, str]) -> list[str]:
    return [k for k, s in status.items() if s in UNHEALTHY]


def stream_status(stream_ids: Sequence[str], present: Sequence[bool], status: Mapping[str, str]) -> list[str]:
    """``LayerAllocation.stream_status``: ``ok`` for a stream with data, else why it has none
    (``status[sid]`` when that names a reason, else ``missing``)."""
    why = {sid: s for sid, s in status.items() if s != OK}
    return [OK if p else why.get(sid, MISSING) for sid, p in zip(stream_ids, present)]
