"""Inference engine (admn_ros.core.engine): real skipping, mixed batches, backends agree."""
from __future__ import annotations

import pytest
import torch

from admn_ros.core.controller import AllocationController, ControllerConfig
from admn_ros.core.engine import InferenceEngine
from admn_ros.core.model import ADMNConfig, ADMNModel, random_inputs

NODES = ("node1", "node2")
N, D = 6, 12


def tiny(universal: bool = False) -> tuple[ADMNModel, AllocationController]:
    torch.manual_seed(0)
    cfg = ADMNConfig(nodes=NODES, img_size=32, vit_dim=16, vit_heads=2, vit_mlp_ratio=2.0,
                     fusion_dim=16, fusion_depth=1, fusion_heads=2)
    ctrl = AllocationController(ControllerConfig.for_model(cfg, dim=16, layers=1, heads=2, budget=18,
                                                           universal=universal))
    return ADMNModel(cfg).eval(), ctrl.eval()


def mixed_masks(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(b, N, D, generator=g) < 0.4
    m[:, :, 0] = True
    m[0] = True
    m[1, :, 1:] = False
    return m


def test_mixed_batch_equals_per_sample():
    model, _ = tiny()
    eng = InferenceEngine(model, backend="torch")
    ins = random_inputs(model.cfg, 5, torch.Generator().manual_seed(1))
    mask = mixed_masks(5)
    present = torch.ones(5, N, dtype=torch.bool)
    present[3, 2] = False
    out = eng.infer(ins, present=present, mask=mask)
    for i in range(5):
        one = eng.infer({k: v[i:i + 1] for k, v in ins.items()}, present=present[i:i + 1], mask=mask[i:i + 1])
        for k in ("mean", "cov", "emb"):
            torch.testing.assert_close(out[k][i:i + 1], one[k], rtol=0, atol=1e-5)
    # identical to the model's own forward
    ref = model(ins, mask, present)
    torch.testing.assert_close(out["mean"], ref["mean"], rtol=0, atol=1e-6)
    assert torch.equal(out["mask"], mask & present[:, :, None])


def test_engine_skips_blocks_for_real():
    model, _ = tiny()
    rows = {m: [0] * D for m in model.cfg.modalities}
    for m, bb in model.backbones.items():
        for j, blk in enumerate(bb.blocks):
            blk.register_forward_hook(lambda _mod, a, _o, m=m, j=j: rows[m].__setitem__(j, rows[m][j] + a[0].shape[0]))
    eng = InferenceEngine(model, backend="torch")
    mask = mixed_masks(4, seed=5)
    eng.infer(random_inputs(model.cfg, 4), mask=mask)
    total = sum(sum(r) for r in rows.values())
    assert total == int(mask.sum())


def test_controller_path_honours_budget_and_missing_streams():
    model, ctrl = tiny()
    eng = InferenceEngine(model, ctrl, backend="torch")
    present = torch.ones(3, N, dtype=torch.bool)
    present[1, 4] = False
    out = eng.infer(random_inputs(model.cfg, 3), present=present)
    assert out["mask"].sum((1, 2)).tolist() == [18, 18, 18]
    assert not bool(out["mask"][1, 4].any())
    assert out["sigma"].shape == (3, N)
    alloc = eng.allocate(random_inputs(model.cfg, 2), budget=30)
    assert alloc["mask"].sum((1, 2)).tolist() == [30, 30]


def test_onnx_backend_equals_torch():
    backend = "onnx"
    model, ctrl = tiny(universal=True)
    ref = InferenceEngine(model, ctrl, backend="torch")
    eng = InferenceEngine(model, ctrl, backend=backend)
    assert eng.backend == backend and eng.check[backend] <= 1e-4
    ins = random_inputs(model.cfg, 4, torch.Generator().manual_seed(3))
    present = torch.ones(4, N, dtype=torch.bool)
    present[2, [1, 3]] = False
    for kw in ({"mask": mixed_masks(4, seed=9)}, {"budget": 25}, {"budget": torch.tensor([6, 20, 40, 72])}):
        a = ref.infer(ins, present=present, **kw)
        b = eng.infer(ins, present=present, **kw)
        assert torch.equal(a["mask"], b["mask"])
        for k in ("mean", "cov", "emb"):
            torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-4)
    # the split API used by ROS nodes
    x = ins["rgb"][:, 0]
    act = mixed_masks(4)[:, 0]
    torch.testing.assert_close(eng.embed("rgb", x, act), ref.embed("rgb", x, act), rtol=0, atol=1e-4)
    emb = a["emb"]
    torch.testing.assert_close(eng.fuse(emb, present)["mean"], ref.fuse(emb, present)["mean"], rtol=0, atol=1e-4)


def test_auto_picks_a_matching_backend():
    model, ctrl = tiny()
    eng = InferenceEngine(model, ctrl, backend="auto", time_reps=3)
    assert eng.backend in eng.timings_ms
    assert all(v <= 1e-4 for v in eng.check.values())
    with pytest.raises(ValueError, match="unknown backend"):
        InferenceEngine(model, backend="tensorrt")
