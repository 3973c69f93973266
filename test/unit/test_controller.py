"""Controller (admn_ros.core.controller): budgets, first-block rule, missing streams, spread order,
variants, and configs saved by earlier versions."""
from __future__ import annotations

import pytest
import torch

from admn_ros.core.controller import AllocationController, ControllerConfig, select_blocks
from admn_ros.core.flops import allocation_gflops, controller_flops
from admn_ros.core.model import ADMNConfig, random_inputs
from admn_ros.core.streams import naive_allocation, spread_order

torch.set_num_threads(1)
NODES = ("node1", "node2")
N = 6  # 2 nodes x 3 modalities
D = 12


def tiny_model_cfg() -> ADMNConfig:
    return ADMNConfig(nodes=NODES, img_size=32, vit_dim=16, vit_heads=2, vit_mlp_ratio=2.0,
                      fusion_dim=16, fusion_depth=1, fusion_heads=2)


def tiny_ctrl(**kw) -> AllocationController:
    torch.manual_seed(0)
    base = dict(dim=16, layers=1, heads=2, budget=18)
    base.update(kw)
    return AllocationController(ControllerConfig.for_model(tiny_model_cfg(), **base))


@pytest.mark.parametrize("gumbel_scale", [0.0, 1.0])
def test_masks_sum_to_budget_with_first_block_rule(gumbel_scale):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, N, D, generator=g)
    for L in (N, 10, 18, 40, N * D):
        m = select_blocks(logits, L, gumbel_scale=gumbel_scale, generator=g)
        assert m.shape == (5, N, D)
        assert torch.equal(m.sum((1, 2)), torch.full((5,), float(L)))
        assert bool((m[:, :, 0] == 1).all())
        assert set(m.unique().tolist()) <= {0.0, 1.0}


def test_missing_streams_get_no_blocks_and_their_logits_are_ignored():
    logits = torch.randn(3, N, D)
    present = torch.ones(3, N, dtype=torch.bool)
    present[0, 2] = False
    present[1, [0, 4]] = False
    logits[0, 2] = 100.0  # would win every slot if it were not excluded
    m = select_blocks(logits, 20, present)
    assert torch.equal(m.sum((1, 2)), torch.full((3,), 20.0))
    assert bool((m[~present] == 0).all())
    assert bool((m[present][:, 0] == 1).all())


def test_budget_rules():
    logits = torch.randn(2, N, D)
    with pytest.raises(ValueError, match="forced first blocks"):
        select_blocks(logits, N - 1)
    m = select_blocks(logits, 3, first_block=False)
    assert torch.equal(m.sum((1, 2)), torch.tensor([3.0, 3.0]))
    present = torch.zeros(2, N, dtype=torch.bool)
    present[:, 0] = True
    m = select_blocks(logits, 30, present)  # only 12 blocks exist: every one is used
    assert torch.equal(m.sum((1, 2)), torch.tensor([12.0, 12.0]))
    per_sample = select_blocks(logits, torch.tensor([8, 50]))
    assert per_sample.sum((1, 2)).tolist() == [8.0, 50.0]


def test_eval_selection_is_deterministic_top_l():
    logits = torch.randn(2, N, D)
    a = select_blocks(logits, 20)
    b = select_blocks(logits, 20)
    assert torch.equal(a, b)
    rest = logits[:, :, 1:].reshape(2, -1)
    chosen = a[:, :, 1:].reshape(2, -1).bool()
    for i in range(2):  # every chosen non-forced logit beats every unchosen one
        assert rest[i][chosen[i]].min() >= rest[i][~chosen[i]].max()


def test_universal_controller_honours_every_budget():
    ctrl = tiny_ctrl(universal=True).eval()
    ins = random_inputs(tiny_model_cfg(), 3, torch.Generator().manual_seed(0))
    logits_seen = []
    for L in range(N, N * D + 1, 7):
        out = ctrl.allocate(ins, budget=L)
        assert torch.equal(out["mask"].detach().sum((1, 2)), torch.full((3,), float(L)))
        logits_seen.append(out["logits"].detach())
    assert not torch.allclose(logits_seen[0], logits_seen[-1])  # the budget is an input
    out = ctrl.allocate(ins, budget=torch.tensor([6, 30, 72]))
    assert out["mask"].detach().sum((1, 2)).tolist() == [6.0, 30.0, 72.0]


def test_controller_ignores_missing_stream_data():
    ctrl = tiny_ctrl().eval()
    g = torch.Generator().manual_seed(0)
    ins = random_inputs(tiny_model_cfg(), 2, g)
    present = torch.ones(2, N, dtype=torch.bool)
    present[:, 1] = False  # node1/depth missing
    a = ctrl.allocate(ins, present)
    ins2 = {k: v.clone() for k, v in ins.items()}
    ins2["depth"][:, 0] = torch.rand(2, 1, 32, 32, generator=g)
    b = ctrl.allocate(ins2, present)
    keep = present[0]
    torch.testing.assert_close(a["logits"][:, keep], b["logits"][:, keep], rtol=0, atol=1e-6)
    assert torch.equal(a["mask"], b["mask"])


def test_noise_head_and_weighted_l1():
    ctrl = tiny_ctrl()
    out = ctrl(random_inputs(tiny_model_cfg(), 2))
    assert out["sigma"].shape == (2, N) and bool((out["sigma"] >= 0).all())
    true = torch.zeros(2, N)
    plain = ctrl.noise_loss(out["sigma"], true)
    weighted = ctrl.noise_loss(out["sigma"], true, modality_weights={"depth": 20.0})
    assert weighted.item() > plain.item()
    weighted.backward()
    assert ctrl.noise_head[0].weight.grad is not None


def test_autoencoder_variant_and_encoder_freeze():
    ctrl = tiny_ctrl(autoencoder=True)
    ins = random_inputs(tiny_model_cfg(), 2)
    rec = ctrl.reconstruct(ins)
    assert {k: tuple(v.shape) for k, v in rec.items()} == {k: tuple(v.shape) for k, v in ins.items()}
    loss = ctrl.reconstruction_loss(ins)
    loss.backward()
    assert float(ctrl.encoders["depth"].conv1.weight.grad.abs().sum()) > 0
    ctrl.freeze_encoder()
    trainable = {n for n, p in ctrl.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("alloc_head.") for n in trainable)
    with pytest.raises(RuntimeError, match="autoencoder=True"):
        tiny_ctrl().reconstruct(ins)


def test_config_round_trip_and_validation():
    cfg = ControllerConfig(universal=True, budget=36)
    assert ControllerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        ControllerConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="budget"):
        ControllerConfig(budget=5)
    assert AllocationController(ControllerConfig.from_dict(cfg.to_dict())).cfg == cfg


def test_controller_flops_are_small_at_default_size():
    cfg = ADMNConfig()
    ccfg = ControllerConfig.for_model(cfg)
    assert ccfg.budget == 27
    share = controller_flops(ccfg) / 1e9 / allocation_gflops(cfg, naive_allocation(9, 27))
    assert share <= 0.02


def test_every_allocation_runs_a_spread_prefix_in_every_stream():
    """The controller sorts each stream's logits along ``spread_order``: its top-L in a stream
    is always the first blocks of that order, whatever the inputs and the budget.
    Break tried: ``heads`` returning the raw allocation-head logits (no ``spread_ordered``)."""
    order = spread_order(D)
    ctrl = tiny_ctrl(universal=True).eval()
    x = random_inputs(tiny_model_cfg(), batch=4, generator=torch.Generator().manual_seed(3))
    for L in (N, 13, 30, 50):
        with torch.no_grad():
            mask = ctrl.allocate(x, budget=L)["mask"].bool()
        counts = mask.sum(-1)
        want = torch.zeros_like(mask)
        for b in range(4):
            for i in range(N):
                want[b, i, order[:int(counts[b, i])]] = True
        assert torch.equal(mask, want), L


def test_configs_saved_by_earlier_versions_load_or_name_the_retired_key():
    """A saved config may name a retired field with the one value that behaves like today's
    controller; any other value (or a config saved before the spread order existed, which
    chose blocks freely) is refused with the key named."""
    d = tiny_ctrl().cfg.to_dict()
    old = {**d, "gumbel_scale": 0.1, "tau": 1.0, "prior": "none", "prior_scale": 1.0, "prior_counts": [],
           "block_order": "spread"}
    assert ControllerConfig.from_dict(old) == ControllerConfig.from_dict(d)
    for key, value in (("block_order", "free"), ("prior", "naive"), ("prior_counts", [1, 7, 1, 1, 1, 1]),
                       ("gumbel_scale", 0.5)):
        with pytest.raises(ValueError, match=f"ControllerConfig.{key} = "):
            ControllerConfig.from_dict({**old, key: value})
    before_spread = {k: v for k, v in old.items() if k != "block_order"}
    with pytest.raises(ValueError, match="block_order = 'free'"):
        ControllerConfig.from_dict(before_spread)
