"""scripts/probe_absent_streams.py: the hand-built allocations spend the budget as documented."""
from __future__ import annotations

import numpy as np


def test_forced_and_absent_allocations_spend_the_budget(load_script):
    mod = load_script("probe_absent_streams")
    depth, budget = 12, 27
    noisy = np.array([True, False, True, False, False, True, True, False, True])
    masks, present = mod.probe_allocations(noisy, budget, depth)
    assert set(masks) == set(mod.KEYS)
    assert masks["upper"].all() and masks["naive"].sum(-1).tolist() == [3] * 9
    forced = masks["forced"]
    assert int(forced.sum()) == budget and forced[:, 0].all()
    assert forced[noisy].sum(-1).tolist() == [1] * int(noisy.sum())  # noisy streams: block 0 only
    absent = masks["absent"]
    assert int(absent.sum()) == budget and not absent[noisy].any()
    np.testing.assert_array_equal(present, ~noisy)
    counts = absent[~noisy].sum(-1)
    assert counts.max() - counts.min() <= 1  # clean streams share evenly


def test_all_noisy_sample_keeps_every_stream_and_caps_at_depth(load_script):
    mod = load_script("probe_absent_streams")
    masks, present = mod.probe_allocations(np.ones(3, bool), 9, 12)
    assert present.all() and int(masks["absent"].sum()) == 9  # falls back to naive
    masks, present = mod.probe_allocations(np.array([False, True, True]), 30, 12)
    assert masks["absent"].sum(-1).tolist() == [12, 0, 0]  # one clean stream holds at most depth
    assert masks["forced"].sum(-1).tolist() == [12, 1, 1]
    masks, _ = mod.probe_allocations(np.array([False, False, False]), 7, 12)
    assert masks["absent"].sum(-1).tolist() == [3, 2, 2]  # round-robin: the first streams get the extra
