"""Node telemetry shown on ``/diagnostics`` (:mod:`admn_ros.ros.diagnostics`), no rclpy: rates,
latency windows, the end-to-end latency by hop, and per-input stamp checks and rejection counts.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np


class RateMeter:
    """Achieved message rate over a sliding window (times in seconds of any clock)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window = float(window_s)
        self.times: deque[float] = deque()

    def tick(self, t: float) -> None:
        self.times.append(float(t))
        self._trim(float(t))

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()

    def rate(self, now: float) -> float:
        self._trim(float(now))
        if len(self.times) < 2:
            return 0.0
        span = max(now - self.times[0], self.times[-1] - self.times[0])
        return (len(self.times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last ``n`` latencies (ms) with mean / p50 / p99 / max."""

    def __init__(self, n: int = 200) -> None:
        self.values: deque[float] = deque(maxlen=int(n))
        self.count = 0

    def add(self, ms: float) -> None:
        self.values.append(float(ms))
        self.count += 1

    def summary(self) -> dict[str, float]:
        if not self.values:
            return {"n": 0, "mean": math.nan, "p50": math.nan, "p99": math.nan, "max": math.nan}
        a = np.asarray(self.values)
        return {"n": float(len(a)), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
                "p99": float(np.percentile(a, 99)), "max": float(a.max())}

    def report(self, prefix: str) -> dict[str, float]:
        """The ``/diagnostics`` values ``<prefix>_ms_p50`` / ``_p99`` / ``_max`` and ``<prefix>_count``."""
        s = self.summary()
        return {**{f"{prefix}_ms_{q}": s[q] for q in ("p50", "p99", "max")}, f"{prefix}_count": float(self.count)}


#: The hops of the end-to-end latency (sensor stamp -> estimate published), in order, with their
#: labels; per frame they add up to it. The window node reports the first three (as "backbone" the
#: window's backbones + fusion).
HOPS: dict[str, str] = {
    "sensor_to_controller": "sensor stamp -> controller input", "controller": "controller compute",
    "allocation_to_backbone": "allocation -> backbone", "backbone": "backbone compute",
    "embeddings_to_fusion": "embeddings -> fusion", "fusion": "fusion compute"}


class HopWindows:
    """A :class:`LatencyWindow` per hop of :data:`HOPS`; ``values()`` gives the ``/diagnostics``
    keys ``hop.<name>_ms_p50`` / ``_p99`` of the hops seen so far (read back by :func:`hop_lines`)."""

    def __init__(self, n: int = 1000) -> None:
        self.windows = {h: LatencyWindow(n) for h in HOPS}

    def add(self, **ms: float) -> None:
        for k, v in ms.items():
            self.windows[k].add(v)

    def values(self) -> dict[str, float]:
        sums = {h: w.summary() for h, w in self.windows.items() if w.count}
        return {f"hop.{h}_ms_{q}": s[q] for h, s in sums.items() for q in ("p50", "p99")}


def hops_of(values: dict[str, str]) -> dict[str, tuple[float, float]]:
    """``hop -> (p50, p99)`` ms from a status's ``/diagnostics`` values (the hops it reports)."""
    return {h: (float(values[f"hop.{h}_ms_p50"]), float(values[f"hop.{h}_ms_p99"]))
            for h in HOPS if f"hop.{h}_ms_p50" in values}


def hop_lines(hops: dict[str, tuple[float, float]]) -> list[str]:
    """One ``label  p50 / p99 ms`` line per hop of :func:`hops_of`."""
    return [f"  {HOPS[h]:<34} {p50:6.1f} / {p99:6.1f} ms" for h, (p50, p99) in hops.items()]


@dataclass
class _InputState:
    rate: RateMeter
    accepted: int = 0
    last_stamp_ns: int | None = None
    rejected: Counter = field(default_factory=Counter)


class StreamMonitor:
    """Per-input stamp checks (``check_stamp``: ``zero_stamp``, ``duplicate_stamp``, ``out_of_order``
    or None), rate, age and rejection counts by reason; frame-level drops in ``dropped``. An input
    is known from its first check, acceptance or rejection on."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.inputs: defaultdict[Hashable, _InputState] = defaultdict(lambda: _InputState(RateMeter(window_s)))
        self.dropped: Counter = Counter()   # frame-level drops by reason

    def check_stamp(self, key: Hashable, stamp_ns: int) -> str | None:
        if stamp_ns <= 0:
            return "zero_stamp"
        last = self.inputs[key].last_stamp_ns
        if last is None or stamp_ns > last:
            return None
        return "duplicate_stamp" if stamp_ns == last else "out_of_order"

    def accept(self, key: Hashable, stamp_ns: int, now: float) -> None:
        st = self.inputs[key]
        st.accepted += 1
        st.last_stamp_ns = int(stamp_ns)
        st.rate.tick(now)

    def reject(self, key: Hashable, reason: str) -> None:
        self.inputs[key].rejected[reason] += 1

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def age(self, key: Hashable, now_ns: int) -> float:
        """Seconds between ``now_ns`` and the stamp of the last accepted message (NaN if none)."""
        last = self.inputs[key].last_stamp_ns
        return math.nan if last is None else (int(now_ns) - last) * 1e-9

    def rejected(self, key: Hashable) -> Counter:
        return Counter(self.inputs[key].rejected)
