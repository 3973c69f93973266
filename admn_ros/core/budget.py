"""Deadline mode: choose the largest layer budget whose measured latency fits a period.

Frame latency on a CPU is close to linear in the number of active blocks
(``latency ~ a + b * blocks``; see docs/BENCHMARKS.md). :class:`DeadlineBudget`
fits ``a`` and ``b`` online from measured frames (exponentially weighted least
squares, so it follows thermal throttling or another process taking the CPU) and
returns the largest budget whose predicted latency plus a safety margin fits the
target period. Until it has seen enough spread in block counts it keeps the
configured budget.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DeadlineBudget:
    """Online latency model and budget choice.

    Args:
        lo: smallest budget allowed (e.g. the number of present streams).
        hi: largest budget allowed (all blocks).
        target_ms: period the frame must fit in (e.g. 66.7 ms at 15 Hz).
        margin: fraction of the period kept free (0.15 = use at most 85%).
        decay: weight of older measurements per new one (0.9 ~ last 10 frames).
        step: largest budget change per decision (avoids oscillation).
    """

    lo: int
    hi: int
    target_ms: float
    margin: float = 0.15
    decay: float = 0.95
    step: int = 6

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi:
            raise ValueError(f"deadline budget range invalid: lo={self.lo}, hi={self.hi}")
        if self.target_ms <= 0 or not 0 <= self.margin < 1 or not 0 < self.decay < 1:
            raise ValueError(f"deadline settings invalid: target_ms={self.target_ms}, margin={self.margin}, "
                             f"decay={self.decay}")
        self._sw = self._sx = self._sy = self._sxx = self._sxy = 0.0

    def update(self, blocks: int, latency_ms: float) -> None:
        """Add one measured frame: ``blocks`` active blocks took ``latency_ms``."""
        d = self.decay
        x, y = float(blocks), float(latency_ms)
        self._sw = d * self._sw + 1.0
        self._sx = d * self._sx + x
        self._sy = d * self._sy + y
        self._sxx = d * self._sxx + x * x
        self._sxy = d * self._sxy + x * y

    def model(self) -> tuple[float, float] | None:
        """``(a, b)`` of ``latency = a + b * blocks``, or None while under-determined."""
        if self._sw < 3:
            return None
        mx, my = self._sx / self._sw, self._sy / self._sw
        var = self._sxx / self._sw - mx * mx
        if var < 1.0:  # all frames at (almost) the same block count: slope unknown
            # Assume the fixed part is small and scale through the origin.
            return (0.0, my / mx) if mx > 0 else None
        b = (self._sxy / self._sw - mx * my) / var
        b = max(b, 1e-6)
        return my - b * mx, b

    def predict_ms(self, blocks: int) -> float | None:
        m = self.model()
        return None if m is None else m[0] + m[1] * blocks

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
