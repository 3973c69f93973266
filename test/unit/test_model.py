"""ADMN model (admn_ros.core.model, fusion, flops): shapes, heads, missing streams, training, FLOPs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from admn_ros.core.flops import allocation_flops, allocation_gflops, flops_breakdown, vit_block_flops
from admn_ros.core.model import ADMNConfig, ADMNModel, random_inputs
from admn_ros.core.streams import StreamSet, full_allocation, naive_allocation
from admn_ros.core.tasks import get_task
from admn_ros.core.tasks.tracking import gaussian_nll

torch.set_num_threads(1)
NODES = ("node1", "node2")
N = 6


def tiny_cfg(**kw) -> ADMNConfig:
    base = dict(nodes=NODES, img_size=32, vit_dim=16, vit_heads=2, vit_mlp_ratio=2.0,
                fusion_dim=16, fusion_depth=1, fusion_heads=2)
    base.update(kw)
    return ADMNConfig(**base)


def tiny_model(**kw) -> ADMNModel:
    torch.manual_seed(0)
    return ADMNModel(tiny_cfg(**kw)).eval()


def test_forward_shapes_bounds_and_covariance():
    model = tiny_model()
    out = model(random_inputs(model.cfg, 5))
    assert out["mean"].shape == (5, 2) and out["cov"].shape == (5, 2, 2) and out["emb"].shape == (5, N, 16)
    (x0, x1), (y0, y1) = model.cfg.bounds
    assert bool(((out["mean"][:, 0] >= x0) & (out["mean"][:, 0] <= x1)).all())
    assert bool(((out["mean"][:, 1] >= y0) & (out["mean"][:, 1] <= y1)).all())
    cov = out["cov"].detach()
    torch.testing.assert_close(cov, cov.transpose(1, 2))
    assert bool((torch.linalg.eigvalsh(cov) > 0).all())


def tracking_loss(mean: torch.Tensor, cov: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The tracking task's training loss: mean of NLL + 0.05 x distance."""
    return get_task("tracking").loss({"mean": mean, "cov": cov}, target)


def test_gaussian_head_uses_full_lower_triangular_factor():
    task = get_task("tracking")
    head = task.head(ADMNConfig(bounds=((0.0, 1.0), (0.0, 2.0)), cov_eps=1e-3), 4)
    with torch.no_grad():
        head.fc2.weight.zero_()
        head.fc2.bias.copy_(torch.tensor([0.0, 0.0, 0.5, 1.0, -2.0]))  # mx, my, l11, l22, l21
    out = task.head_forward(head, torch.zeros(1, 4))
    mean, cov = out["mean"], out["cov"]
    torch.testing.assert_close(mean, torch.tensor([[0.5, 1.0]]))
    sp = torch.nn.functional.softplus
    l11, l22, l21 = sp(torch.tensor(0.5)), sp(torch.tensor(1.0)), torch.tensor(-2.0)
    L = torch.tensor([[l11, 0.0], [l21, l22]])
    torch.testing.assert_close(cov[0], L @ L.T + 1e-3 * torch.eye(2))


def test_gaussian_nll_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 2, 2, generator=g)
    cov = A @ A.transpose(1, 2) + 0.1 * torch.eye(2)
    mean, target = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    ref = -torch.distributions.MultivariateNormal(mean, cov).log_prob(target)
    torch.testing.assert_close(gaussian_nll(mean, cov, target), ref, rtol=1e-5, atol=1e-5)
    loss = tracking_loss(mean, cov, target)
    dist = torch.linalg.vector_norm(mean - target, dim=-1)
    torch.testing.assert_close(loss, (ref + 0.05 * dist).mean(), rtol=1e-5, atol=1e-5)


def test_missing_streams_are_masked_in_fusion():
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    ins = random_inputs(model.cfg, 3, g)
    present = torch.ones(3, N, dtype=torch.bool)
    present[0, 1] = False
    present[2, [0, 5]] = False
    a = model(ins, present=present)
    ins2 = {k: v.clone() for k, v in ins.items()}
    ins2["depth"][0, 0] = torch.rand(1, 32, 32, generator=g)      # sample 0 node1/depth
    ins2["rgb"][2, 0] = torch.rand(3, 32, 32, generator=g)        # sample 2 node1/rgb
    ins2["radar"][2, 1] = 1.0                                     # sample 2 node2/radar
    b = model(ins2, present=present)
    torch.testing.assert_close(a["mean"], b["mean"], rtol=0, atol=1e-6)
    torch.testing.assert_close(a["cov"], b["cov"], rtol=0, atol=1e-6)
    # ... and the embeddings of missing streams are never even computed
    assert bool((a["emb"][~present] == 0).all())
    # fusion alone also ignores whatever sits in a missing row
    emb = a["emb"].clone()
    emb[~present] = 123.0
    torch.testing.assert_close(model.fuse(emb, present)["mean"], a["mean"], rtol=0, atol=1e-6)
    # changing a present stream does change the output
    ins2["rgb"][0, 0] = 0.0
    assert not torch.allclose(model(ins2, present=present)["mean"][0], a["mean"][0])


def test_all_streams_missing_is_finite():
    model = tiny_model()
    out = model(random_inputs(model.cfg, 2), present=torch.zeros(2, N, dtype=torch.bool))
    assert bool(torch.isfinite(out["mean"]).all() and torch.isfinite(out["cov"]).all())


def test_split_pipeline_equals_forward():
    model = tiny_model()
    ins = random_inputs(model.cfg, 2)
    mask = torch.from_numpy(naive_allocation(N, 20))
    full = model(ins, mask)
    emb = model.backbone_embeddings(ins, mask)
    torch.testing.assert_close(model.fuse(emb)["mean"], full["mean"])
    # a backbone node running one stream alone gets the same embedding
    ss = model.cfg.streams
    i = ss.index("node2/depth")
    one = model.embed("depth", ins["depth"][:, 1], mask[i].expand(2, -1))
    torch.testing.assert_close(one, emb[:, i], rtol=0, atol=1e-6)


def test_activity_task_outputs_logits():
    model = tiny_model(task="activity", n_classes=5)
    out = model(random_inputs(model.cfg, 3))
    assert out["logits"].shape == (3, 5)


def test_config_and_checkpoint_round_trip():
    cfg = tiny_cfg(task="activity", n_classes=7)
    d = cfg.to_dict()
    assert ADMNConfig.from_dict(d) == cfg
    assert isinstance(d["bounds"], list) and isinstance(d["nodes"], list)
    with pytest.raises(ValueError, match="unknown keys"):
        ADMNConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="task"):
        tiny_cfg(task="dance")
    model = tiny_model()
    again = ADMNModel(ADMNConfig.from_dict(model.cfg.to_dict())).eval()
    again.load_state_dict(model.state_dict())
    ins = random_inputs(model.cfg, 1)
    torch.testing.assert_close(again(ins)["mean"], model(ins)["mean"])


def test_input_validation_names_the_problem():
    model = tiny_model()
    ins = random_inputs(model.cfg, 2)
    with pytest.raises(KeyError, match="radar"):
        model({k: v for k, v in ins.items() if k != "radar"})
    bad = dict(ins, rgb=torch.rand(2, 2, 1, 32, 32))
    with pytest.raises(ValueError, match="inputs\\['rgb'\\]"):
        model(bad)
    with pytest.raises(ValueError, match="allocation mask"):
        model(ins, torch.ones(2, N, 5, dtype=torch.bool))


def test_tiny_training_run_lowers_the_loss():
    """The target depends only on node1/rgb's brightness; LayerDrop and full drop are on."""
    torch.manual_seed(0)
    model = ADMNModel(tiny_cfg(layerdrop=0.1, full_drop=0.1))
    g = torch.Generator().manual_seed(0)
    ins = random_inputs(model.cfg, 64, g)
    level = torch.rand(64, generator=g)
    ins["rgb"][:, 0] = ins["rgb"][:, 0] * 0.2 + level[:, None, None, None] * 0.8
    target = torch.stack([0.2 + 2.6 * level, torch.full_like(level, 1.8)], dim=1)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            out = model(ins)
            return float(tracking_loss(out["mean"], out["cov"], target))

    before = eval_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(50):
        idx = torch.randint(0, 64, (16,), generator=g)
        out = model({k: v[idx] for k, v in ins.items()})
        loss = tracking_loss(out["mean"], out["cov"], target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    print(f"loss before {before:.3f} after {after:.3f}")
    assert after < before - 0.5, (before, after)


def test_configs_saved_by_earlier_versions_load_or_name_the_retired_key():
    """Retired fields load at the one value that behaves like today's network (the shipped
    checkpoints carry them) and are refused, naming the key, at any other value."""
    d = ADMNConfig().to_dict()
    old = {**d, "readout": "spatial", "pos_init_std": 0.02, "fusion_token_norm": False, "aux_heads": False}
    assert ADMNConfig.from_dict(old) == ADMNConfig()
    for key, value in (("readout", "mean"), ("pos_init_std", 1.0), ("fusion_token_norm", True),
                       ("aux_heads", True)):
        with pytest.raises(ValueError, match=f"ADMNConfig.{key} = "):
            ADMNConfig.from_dict({**old, key: value})
    with pytest.raises(ValueError, match="unknown keys"):
        ADMNConfig.from_dict({**d, "bogus": 1})


def test_flops_follow_the_allocation():
    """Break tried: leaving the spatial readout out of the per-stream fixed cost."""
    cfg = ADMNConfig()
    full, quarter = full_allocation(9), naive_allocation(9, 27)
    # one block of the default ViT: 17 tokens, dim 64, MLP 256
    assert vit_block_flops(cfg) == 2 * (17 * 64 * 192 + 2 * 17 * 17 * 64 + 17 * 64 * 64 + 2 * 17 * 64 * 256)
    assert allocation_flops(cfg, full) - allocation_flops(cfg, quarter) == 81 * vit_block_flops(cfg)
    ratio = allocation_gflops(cfg, quarter) / allocation_gflops(cfg, full)
    assert ratio <= 0.30
    br = flops_breakdown(cfg, quarter)
    assert math.isclose(br["total"] / 1e9, allocation_gflops(cfg, quarter))
    batch = np.stack([full, quarter])
    np.testing.assert_allclose(allocation_gflops(cfg, batch, include_controller=False),
                               [allocation_flops(cfg, full) / 1e9, allocation_flops(cfg, quarter) / 1e9])
    present = np.ones(9, dtype=bool)
    present[0] = False
    assert allocation_flops(cfg, full, present) < allocation_flops(cfg, full)
    assert StreamSet().total_blocks == cfg.n_streams * cfg.vit_depth
    # fixed cost per stream: the patch embedding (16 patches of 16 x 16 x C -> 64; C = 3 + 1 + 1 per node)
    # and the spatial readout 2 x 17 x (64 x 16 + 16 x 64)
    assert br["patch_embed"] == 2 * 16 * 256 * 64 * 15 + 9 * 2 * 17 * (64 * 16 + 16 * 64)
