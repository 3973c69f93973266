"""Paired comparisons with a cluster bootstrap (admn_ros.core.evaluate.stats)."""
from __future__ import annotations

import numpy as np
import pytest

from admn_ros.core.evaluate.stats import paired_diff, sample_groups


def test_mean_is_the_difference_of_the_means():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=200), rng.normal(size=200)
    pd = paired_diff(a, b, np.repeat(np.arange(20), 10))
    assert pd.mean == pytest.approx(a.mean() - b.mean())
    assert pd.lo <= pd.mean <= pd.hi and pd.groups == 20 and pd.n == 200


def test_a_clear_difference_excludes_zero_and_noise_does_not():
    rng = np.random.default_rng(1)
    base = rng.normal(size=400)
    groups = np.repeat(np.arange(40), 10)
    clear = paired_diff(base + 1.0 + 0.1 * rng.normal(size=400), base, groups)
    assert clear.lo > 0.9
    same = paired_diff(base + 0.5 * rng.normal(size=400), base, groups)
    assert same.lo < 0 < same.hi


def test_groups_widen_the_interval():
    """A shared offset per group is one draw per group, not per sample: resampling groups
    must give a wider interval than pretending every sample is independent."""
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(8), 50)
    d = rng.normal(size=8)[groups] + 0.05 * rng.normal(size=400)
    by_group = paired_diff(d, np.zeros(400), groups)
    by_sample = paired_diff(d, np.zeros(400), np.arange(400))
    assert (by_group.hi - by_group.lo) > 3 * (by_sample.hi - by_sample.lo)


def test_one_group_has_no_interval_and_bad_input_is_rejected():
    pd = paired_diff(np.ones(5), np.zeros(5), np.zeros(5))
    assert pd.mean == 1.0 and np.isnan(pd.lo) and np.isnan(pd.hi)
    with pytest.raises(ValueError, match="equal"):
        paired_diff(np.ones(5), np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match="level"):
        paired_diff(np.ones(5), np.zeros(5), np.arange(5), level=1.0)


def test_sample_groups_prefers_subject_then_episode():
    class Act:
        subject = np.array([3, 3, 7, 7, 9])

    class Trk:
        episode = np.array([0, 0, 0, 1, 1, 2])

    g, name = sample_groups(Act(), 4)
    assert name == "subject" and g.tolist() == [3, 3, 7, 7]
    g, name = sample_groups(Trk(), 6)
    assert name == "episode" and g.tolist() == [0, 0, 0, 1, 1, 2]
    g, name = sample_groups(object(), 3)
    assert name == "sample" and g.tolist() == [0, 1, 2]
