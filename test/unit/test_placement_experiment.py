"""scripts/placement_experiment.py: the spread variant keeps each stream's block count and
puts the blocks on the every-other pattern."""
from __future__ import annotations

import numpy as np

from admn_ros.core.evaluate.methods import Method
from admn_ros.core.streams import every_other_blocks

def test_spread_variant_keeps_counts_and_uses_every_other_blocks(load_script):
    mod = load_script("placement_experiment")
    depth = 12
    rng = np.random.default_rng(0)
    mask = np.zeros((4, 3, depth), dtype=bool)
    mask[..., 0] = True
    for b in range(4):  # contiguous late blocks: the opposite of every-other
        for i, c in enumerate(rng.integers(1, depth + 1, size=3)):
            mask[b, i, depth - c + 1:] = True
    base = Method("ADMN", "admn", lambda inputs, budget, batch: mask, adaptive=True)
    spread = mod.spread_variant(base, depth)
    assert (spread.name, spread.key, spread.adaptive) == ("ADMN spread", "admn_spread", True)
    out = spread.allocate({}, int(mask[0].sum()), 4)
    np.testing.assert_array_equal(out.sum(-1), mask.sum(-1))
    for b in range(4):
        for i in range(3):
            assert np.flatnonzero(out[b, i]).tolist() == sorted(every_other_blocks(int(mask[b, i].sum()), depth))
    none = mod.spread_variant(Method("X", "x", lambda inputs, budget, batch: None), depth)
    assert none.allocate({}, 9, 4) is None


def test_build_with_spread_adds_rows_for_controller_methods_only(load_script):
    mod = load_script("placement_experiment")
    from admn_ros.core.streams import StreamSet

    methods = mod.build_with_spread(StreamSet(("node1",), ("rgb", "depth", "radar")), 12)
    keys = [m.key for m in methods]
    assert not any(k.endswith("_spread") for k in keys)  # no controllers given: nothing to spread
    assert "naive" in keys and "qoi_oracle" in keys

    from admn_ros.core.controller import AllocationController, ControllerConfig

    def ctrl(**kw):
        return AllocationController(ControllerConfig(nodes=("node1",), budget=9, **kw))

    methods = mod.build_with_spread(StreamSet(("node1",), ("rgb", "depth", "radar")), 12,
                                    per_budget={9: ctrl()}, universal=ctrl(universal=True),
                                    ae=ctrl(autoencoder=True))
    keys = [m.key for m in methods]
    assert [k for k in keys if k.endswith("_spread")] == ["admn_spread", "admn_universal_spread"]
