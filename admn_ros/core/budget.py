"""Deadline mode: the largest layer budget whose predicted latency fits a period.

Frame latency on a CPU is close to ``a + b * blocks``; :class:`DeadlineBudget` fits ``a``
and ``b`` online (exponentially weighted least squares, so it follows throttling or another
process taking the CPU) and keeps the configured budget until the fit is determined.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeadlineBudget:
    """Online latency model and budget choice within ``[lo, hi]``."""

    lo: int
    hi: int
    target_ms: float                    # the period a frame must fit in
    margin: float = 0.15                # fraction of the period kept free
    decay: float = 0.95                 # weight of older measurements per new one
    step: int = 6                       # largest budget change per decision (no oscillation)

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi:
            raise ValueError(f"deadline budget range invalid: lo={self.lo}, hi={self.hi}")
        if self.target_ms <= 0 or not 0 <= self.margin < 1 or not 0 < self.decay < 1:
            raise ValueError(f"deadline settings invalid: target_ms={self.target_ms}, margin={self.margin}, "
                             f"decay={self.decay}")
        self._sums = [0.0] * 5          # weighted sums of 1, x, y, x*x, x*y (x: blocks, y: latency)

    def update(self, blocks: int, latency_ms: float) -> None:
        x, y = float(blocks), float(latency_ms)
        self._sums = [self.decay * s + v for s, v in zip(self._sums, (1.0, x, y, x * x, x * y))]

    def model(self) -> tuple[float, float] | None:
        """``(a, b)`` of ``latency = a + b * blocks``, or None while under-determined."""
        sw, sx, sy, sxx, sxy = self._sums
        if sw < 3:
            return None
        mx, my = sx / sw, sy / sw
        var = sxx / sw - mx * mx
        if var < 1.0:  # all frames at (almost) the same block count: slope unknown
            # Assume the fixed part is small and scale through the origin.
            return (0.0, my / mx) if mx > 0 else None
        b = max((sxy / sw - mx * my) / var, 1e-6)
        return my - b * mx, b

    def choose(self, current: int) -> int:
        """The budget for the next frames given the model (``current`` if unknown)."""
        m = self.model()
        if m is None:
            return max(self.lo, min(self.hi, current))
        a, b = m
        allowed = self.target_ms * (1.0 - self.margin)
        best = int((allowed - a) // b) if b > 0 else self.hi
        best = max(self.lo, min(self.hi, best))
        return max(current - self.step, min(current + self.step, best))
