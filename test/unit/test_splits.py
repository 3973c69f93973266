"""Count splits (admn_ros.core.splits), the controller's spread order and the stage-2
allocation objective over splits."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from admn_ros.core.controller import select_blocks, spread_ordered
from admn_ros.core.model import ADMNConfig, ADMNModel, random_inputs
from admn_ros.core.splits import prefix_masks, split_candidates, split_log_scores, split_losses
from admn_ros.core.streams import every_other_blocks, spread_order
from admn_ros.core.tasks import get_task
from admn_ros.core.train.config import Stage2Config, TrainConfigError
from admn_ros.core.train.stage2 import expected_split_loss
from fixtures.train import TINY_MODEL


def test_split_candidates_are_every_composition_and_refuse_huge_grids() -> None:
    c = split_candidates(3, 9, 12)
    brute = [t for t in itertools.product(range(1, 13), repeat=3) if sum(t) == 9]
    assert sorted(map(tuple, c.tolist())) == sorted(brute) and len(c) == 28
    assert len(split_candidates(3, 36, 12)) == 1 and split_candidates(3, 36, 12).tolist() == [[12, 12, 12]]
    free = split_candidates(2, 3, 12, first_block=False)
    assert sorted(map(tuple, free.tolist())) == [(0, 3), (1, 2), (2, 1), (3, 0)]
    with pytest.raises(ValueError, match="exceed the limit"):
        split_candidates(9, 27, 12)  # the tracking grid: about 1.5 million splits
    with pytest.raises(ValueError, match="cannot be split"):
        split_candidates(3, 2, 12)


def test_prefix_masks_are_nested_spread_blocks() -> None:
    order = spread_order(12)
    m = prefix_masks(np.arange(13)[:, None], 12)[:, 0]  # [13, 12]
    for k in range(13):
        assert m[k].sum() == k and set(np.flatnonzero(m[k].numpy())) == set(order[:k])
        if k:
            assert (m[k] >= m[k - 1]).all()  # nested
    for k in (1, 2, 10, 11, 12):  # where the spread order equals LayerDrop's every-other choice
        assert set(np.flatnonzero(m[k].numpy())) == set(every_other_blocks(k, 12))


@pytest.mark.parametrize("first_block", [True, False])
def test_spread_order_makes_top_l_pick_the_best_scoring_split(first_block: bool) -> None:
    """With ``spread_ordered`` logits, deterministic top-L runs a spread prefix in every
    stream, and its counts are the argmax of ``split_log_scores`` over all splits."""
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(64, 3, 12, generator=g, requires_grad=True)
    logits = spread_ordered(raw, first_block)
    cands = torch.from_numpy(split_candidates(3, 10, 12, first_block))
    mask = select_blocks(logits.detach(), 10, first_block=first_block) > 0.5
    counts = mask.sum(2)
    assert torch.equal(mask, prefix_masks(counts, 12))
    best = cands[split_log_scores(logits, cands, first_block).argmax(1)]
    assert torch.equal(best, counts)
    # differentiable: the scores reach the raw head outputs
    split_log_scores(logits, cands, first_block).logsumexp(1).sum().backward()
    assert raw.grad is not None and float(raw.grad.abs().sum()) > 0


@pytest.mark.parametrize("task", ["activity", "tracking"])
def test_split_losses_equal_one_forward_per_split(task: str) -> None:
    torch.manual_seed(0)
    kw = dict(nodes=("node1",), frames=3, task="activity", n_classes=4) if task == "activity" else {}
    model = ADMNModel(ADMNConfig(**kw, **TINY_MODEL)).eval()
    x = random_inputs(model.cfg, 5, torch.Generator().manual_seed(1))
    n = model.cfg.n_streams
    target = torch.tensor([0, 1, 2, 3, 1]) if task == "activity" else torch.rand(5, 2) * 4
    cands = split_candidates(n, 2 * n, 12) if n <= 3 else np.array([[1] * 8 + [10], [2] * 9, [3, 1] * 4 + [2]])
    losses, scores = split_losses(model, x, target, cands, max_rows=7)  # small chunks on purpose
    assert losses.shape == scores.shape == (len(cands), 5)
    with torch.no_grad():
        for i, c in enumerate(cands):
            out = model(x, prefix_masks(c, 12))
            assert torch.allclose(losses[i], get_task(task).loss_per_sample(out, target), atol=1e-5)
            assert torch.allclose(scores[i], get_task(task).scores(out, target), atol=1e-4)


def test_sampled_splits_and_per_sample_split_losses() -> None:
    """Too many splits to enumerate (9 streams): per-sample candidates are the controller's
    own split, the even split and perturbed ones, repeats flagged; their losses equal one
    forward per (sample, split)."""
    from admn_ros.core.splits import sampled_splits

    g = torch.Generator().manual_seed(0)
    logits = spread_ordered(torch.randn(4, 9, 12, generator=g))
    counts, keep = sampled_splits(logits, 27, 5, 1.0, generator=g)
    assert counts.shape == (7, 4, 9) and keep.shape == (4, 7)
    assert (counts.sum(2) == 27).all() and (counts >= 1).all()
    assert torch.equal(counts[0], (select_blocks(logits, 27) > 0.5).sum(2))
    assert (counts[1] == 3).all()  # Naive's even split
    for b in range(4):
        seen = [tuple(counts[c, b].tolist()) for c in range(7)]
        assert keep[b].tolist() == [seen.index(t) == c for c, t in enumerate(seen)]
    tied = torch.zeros(2, 9, 12)  # equal logits: top-L is the even split, so candidate 1 repeats 0
    assert not sampled_splits(spread_ordered(tied), 27, 1, 1e-6)[1][:, 1].any()
    torch.manual_seed(0)
    model = ADMNModel(ADMNConfig(**TINY_MODEL)).eval()
    x = random_inputs(model.cfg, 4, torch.Generator().manual_seed(1))
    y = torch.rand(4, 2) * 4
    losses, _ = split_losses(model, x, y, counts)
    with torch.no_grad():
        for c in (0, 3, 6):
            ref = get_task("tracking").loss_per_sample(model(x, prefix_masks(counts[c], 12)), y)
            assert torch.allclose(losses[c], ref, atol=1e-5)


def test_expected_split_loss_descends_and_moves_the_allocation_to_the_best_split() -> None:
    """The stage-2 objective is the softmax-weighted loss of every split; gradient steps
    on it lower it and make the controller's top-L the split with the lowest loss."""
    torch.manual_seed(0)
    model = ADMNModel(ADMNConfig(nodes=("node1",), frames=2, task="activity", n_classes=4, **TINY_MODEL)).eval()
    model.requires_grad_(False)
    x = random_inputs(model.cfg, 6, torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    cfg = Stage2Config(split_temperature=0.02)
    table = {7: split_candidates(3, 7, 12)}
    raw = torch.zeros(6, 3, 12, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    first = None
    for _ in range(100):
        loss, _ = expected_split_loss(model, spread_ordered(raw), x, y, 7, table, cfg)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    lmat = split_losses(model, x, y, table[7])[0]  # [C, B]
    chosen = (select_blocks(spread_ordered(raw).detach(), 7) > 0.5).sum(2)
    got = lmat.gather(0, torch.tensor([[table[7].tolist().index(c) for c in chosen.tolist()]]))[0]
    assert torch.allclose(got, lmat.min(0).values, atol=2e-3), (got, lmat.min(0).values)


def test_split_table_config_checks() -> None:
    from admn_ros.core.train.stage2 import build_controller_config, split_table

    big = build_controller_config(Stage2Config(budget=27), ADMNConfig())
    assert split_table(Stage2Config(), big, [27]) == {27: None}  # sampled, not enumerated
    small = build_controller_config(Stage2Config(budget=9), ADMNConfig(nodes=("node1",), frames=2,
                                                                     task="activity", n_classes=4))
    assert len(split_table(Stage2Config(), small, [9])[9]) == 28
    with pytest.raises(TrainConfigError, match="split_temperature"):
        Stage2Config(split_temperature=0.0)
