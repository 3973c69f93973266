"""Paired comparisons of two methods on the same test samples, with a cluster bootstrap CI.

Every method of :func:`admn_ros.core.evaluate.table.run_table` sees identical corrupted
inputs, so the per-sample difference of two methods' scores is what decides which is better;
its mean is the difference of the two table cells. Test samples are not independent:
consecutive frames of a tracking episode, or the windows of one activity subject, move
together. The confidence interval therefore resamples whole *groups* (episodes or subjects,
:func:`sample_groups`), not single samples, which is what the test split can say about unseen
episodes or subjects. With few groups (the activity test split has 5 subjects) the interval is
wide, and that is the honest answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Dataset attributes that name a sample's group, in order of preference.
GROUP_FIELDS: tuple[str, ...] = ("subject", "episode")


@dataclass(frozen=True)
class PairedDiff:
    """Mean of ``a - b`` over samples, and its percentile bootstrap interval over groups.

    Attributes:
        mean: mean per-sample difference (the difference of the two table cells).
        lo, hi: the ``level`` confidence interval (NaN with fewer than 2 groups).
        groups: number of groups resampled.
        n: number of samples.
    """

    mean: float
    lo: float
    hi: float
    groups: int
    n: int

    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of 0."""
        return bool(np.isfinite(self.lo) and np.isfinite(self.hi) and (self.lo > 0 or self.hi < 0))


def sample_groups(ds: Any, n: int) -> tuple[np.ndarray, str]:
    """Group id of each of the first ``n`` samples of ``ds`` and the group's name.

    Activity datasets group by ``subject``, tracking datasets by ``episode``; a dataset with
    neither gives every sample its own group (``sample``).
    """
    for name in GROUP_FIELDS:
        arr = getattr(ds, name, None)
        if arr is not None:
            g = np.asarray(arr[:n]).reshape(-1)
            if g.size == n:
                return g, name
    return np.arange(n), "sample"


def paired_diff(a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                seed: int = 0) -> PairedDiff:
    """``mean(a - b)`` with a cluster-bootstrap interval.

    Args:
        a, b: per-sample scores of two methods on the same samples, ``[n]``.
        groups: group id per sample, ``[n]``; whole groups are resampled with replacement.
        n_boot: bootstrap resamples.
        level: coverage of the percentile interval.
        seed: bootstrap seed (the same inputs and seed give the same interval).

    Raises:
        ValueError: shapes differ, no samples, or ``level`` / ``n_boot`` out of range.
    """
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
