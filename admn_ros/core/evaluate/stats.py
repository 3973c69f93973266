"""Paired comparisons of two methods on the same test samples, with a cluster bootstrap interval:
the frames of an episode (the windows of a subject) move together, so it resamples whole groups."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedDiff:
    """Mean of ``a - b`` over ``n`` samples (the difference of two table cells) and its percentile
    bootstrap interval ``[lo, hi]`` over ``groups`` groups (NaN with fewer than 2 groups)."""

    mean: float
    lo: float
    hi: float
    groups: int
    n: int


def sample_groups(ds: Any, n: int) -> tuple[np.ndarray, str]:
    """Group id of each of the first ``n`` samples of ``ds`` and the group's name: ``subject``
    (activity), ``episode`` (tracking), else every sample its own (``sample``)."""
    for name in ("subject", "episode"):
        arr = getattr(ds, name, None)
        if arr is not None:
            g = np.asarray(arr[:n]).reshape(-1)
            if g.size == n:
                return g, name
    return np.arange(n), "sample"


def paired_diff(a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                seed: int = 0) -> PairedDiff:
    """``mean(a - b)`` of two methods' per-sample scores ``[n]``, with a ``level`` percentile interval
    from ``n_boot`` resamples of whole ``groups`` (seeded: the same inputs give the same interval)."""
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    groups = np.asarray(groups).reshape(-1)
    if not (a.shape == b.shape == groups.shape) or a.size == 0:
        raise ValueError(f"paired_diff needs equal, non-empty shapes, got {a.shape}, {b.shape}, {groups.shape}")
    if not 0.0 < level < 1.0 or n_boot < 1:
        raise ValueError(f"level must be in (0, 1) and n_boot >= 1, got {level}, {n_boot}")
    d = a - b
    _, inv = np.unique(groups, return_inverse=True)
    n_groups = int(inv.max()) + 1
    sums = np.bincount(inv, weights=d, minlength=n_groups)
    counts = np.bincount(inv, minlength=n_groups).astype(np.float64)
    mean = float(d.mean())
    if n_groups < 2:
        return PairedDiff(mean, float("nan"), float("nan"), n_groups, int(d.size))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n_groups, size=(n_boot, n_groups))
    boot = sums[pick].sum(1) / counts[pick].sum(1)
    q = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [q, 1.0 - q])
    return PairedDiff(mean, float(lo), float(hi), n_groups, int(d.size))
