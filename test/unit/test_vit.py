"""Adaptive-depth ViT (admn_ros.core.vit): real skipping, blend equivalence, LayerDrop, STE masks."""
from __future__ import annotations

import pytest
import torch

from admn_ros.core.vit import AdaptiveViT

torch.set_num_threads(1)
DEPTH = 12


def tiny_vit(**kw) -> AdaptiveViT:
    torch.manual_seed(0)
    return AdaptiveViT(in_chans=3, img_size=32, patch=16, dim=16, depth=DEPTH, heads=2, mlp_ratio=2.0, **kw)


def random_mask(b: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(b, DEPTH, generator=g) < 0.5
    m[:, 0] = True
    m[0] = True          # one full-depth sample
    m[1, 1:] = False     # one first-block-only sample
    return m


def count_block_rows(vit: AdaptiveViT) -> list[int]:
    rows = [0] * len(vit.blocks)

    def hook(j):
        def f(_mod, args, _out):
            rows[j] += args[0].shape[0]
        return f

    for j, blk in enumerate(vit.blocks):
        blk.register_forward_hook(hook(j))
    return rows


def test_output_shape_and_tokens():
    vit = tiny_vit().eval()
    x = torch.rand(4, 3, 32, 32)
    assert vit(x).shape == (4, 16)
    assert vit.n_tokens == 1 + 4


def test_readouts_see_what_they_should():
    """The spatial readout keeps the token layout; CLS reads token 0 only; mean pools patches."""
    torch.manual_seed(0)
    tok = torch.randn(3, 5, 16)
    perm = tok.clone()
    perm[:, 1:] = tok[:, [3, 1, 4, 2]]  # same patches, other positions
    spatial = tiny_vit(readout="spatial").eval().head
    cls = tiny_vit(readout="cls").eval().head
    mean = tiny_vit(readout="mean").eval().head
    with torch.no_grad():
        assert not torch.allclose(spatial(tok), spatial(perm))
        torch.testing.assert_close(mean(tok), mean(perm))
        changed = tok.clone()
        changed[:, 1:] += 1.0
        torch.testing.assert_close(cls(tok), cls(changed))
        assert not torch.allclose(mean(tok), mean(changed))
    for readout in ("spatial", "cls", "mean"):
        vit = tiny_vit(readout=readout).eval()
        assert vit(torch.rand(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="unknown backbone readout"):
        tiny_vit(readout="max")


def test_skip_equals_blend_for_the_same_mask():
    vit = tiny_vit().eval()
    x = torch.rand(6, 3, 32, 32)
    m = random_mask(6)
    with torch.no_grad():
        skip = vit(x, m)
        blend = vit.forward_blend(x, m)
    torch.testing.assert_close(skip, blend, rtol=0, atol=1e-5)


def test_mixed_batch_equals_per_sample_execution():
    vit = tiny_vit().eval()
    x = torch.rand(6, 3, 32, 32)
    m = random_mask(6, seed=3)
    with torch.no_grad():
        batched = vit(x, m)
        single = torch.cat([vit(x[i:i + 1], m[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)


def test_off_blocks_are_never_computed():
    vit = tiny_vit().eval()
    rows = count_block_rows(vit)
    m = random_mask(5, seed=7)
    with torch.no_grad():
        vit(torch.rand(5, 3, 32, 32), m)
    assert rows == m.sum(0).tolist()


def test_index_list_equals_bool_mask():
    vit = tiny_vit().eval()
    x = torch.rand(2, 3, 32, 32)
    m = torch.zeros(DEPTH, dtype=torch.bool)
    m[[0, 3, 7]] = True
    with torch.no_grad():
        torch.testing.assert_close(vit(x, [0, 3, 7]), vit(x, m))
    with pytest.raises(ValueError, match="out of range"):
        vit(x, [0, 12])
    with pytest.raises(ValueError, match="shape"):
        vit(x, torch.ones(3, DEPTH, dtype=torch.bool))


def test_layerdrop_really_skips_and_keeps_first_block():
    vit = tiny_vit(layerdrop=0.5).train()
    rows = count_block_rows(vit)
    torch.manual_seed(0)
    vit(torch.rand(32, 3, 32, 32))
    assert rows[0] == 32                      # first-block rule
    assert sum(rows[1:]) < 0.75 * 32 * (DEPTH - 1)
    vit.eval()
    rows[:] = [0] * DEPTH
    with torch.no_grad():
        vit(torch.rand(4, 3, 32, 32))
    assert rows == [4] * DEPTH                # no LayerDrop at eval


def test_full_backbone_dropout_runs_only_block_zero():
    vit = tiny_vit(layerdrop=0.0, full_drop=1.0).train()
    rows = count_block_rows(vit)
    vit(torch.rand(8, 3, 32, 32))
    assert rows == [8] + [0] * (DEPTH - 1)
    with pytest.raises(ValueError):
        vit.set_layerdrop(1.0)


def test_straight_through_float_mask_is_exact_and_carries_gradient():
    vit = tiny_vit().eval()
    x = torch.rand(4, 3, 32, 32)
    hard = random_mask(4, seed=11)
    soft = torch.full(hard.shape, 0.3, requires_grad=True)
    ste = hard.float() + (soft - soft.detach())
    out = vit(x, ste)
    with torch.no_grad():
        torch.testing.assert_close(out, vit(x, hard), rtol=0, atol=0)
    out.sum().backward()
    g = soft.grad
    assert g is not None and bool((g[hard] != 0).any())
    assert bool((g[~hard] == 0).all())  # skipped blocks were never computed
