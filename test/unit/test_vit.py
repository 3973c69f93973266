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
    assert vit.patch_embed.n_patches == 4


def test_spatial_readout_keeps_the_token_layout():
    """The same patches at other positions give another embedding."""
    torch.manual_seed(0)
    tok = torch.randn(3, 5, 16)
    perm = tok.clone()
    perm[:, 1:] = tok[:, [3, 1, 4, 2]]
    head = tiny_vit().eval().head
    with torch.no_grad():
        assert not torch.allclose(head(tok), head(perm))


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


def test_shared_mask_equals_per_sample_mask():
    """Break tried: broadcasting a ``[depth]`` mask as all blocks on."""
    vit = tiny_vit().eval()
    x = torch.rand(2, 3, 32, 32)
    m = torch.zeros(DEPTH, dtype=torch.bool)
    m[[0, 3, 7]] = True
    with torch.no_grad():
        torch.testing.assert_close(vit(x, m), vit(x, m.expand(2, -1)))
        assert not torch.equal(vit(x, m), vit(x))
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


def test_float_mask_runs_like_the_bool_mask():
    vit = tiny_vit().eval()
    x = torch.rand(4, 3, 32, 32)
    hard = random_mask(4, seed=11)
    with torch.no_grad():
        torch.testing.assert_close(vit(x, hard.float()), vit(x, hard), rtol=0, atol=0)
