"""Count splits: allocations described by how many blocks each stream runs.

A controller's top-L always gives every stream a prefix of
:func:`~admn_ros.core.streams.spread_order` (its blocks spread over the depth like
LayerDrop's every-other choice), so an allocation is fully described by its per-stream
counts ``c`` (``sum(c) = L``). This module enumerates those splits, scores them under the
controller's logits, and evaluates the frozen network on all of them at once:

* :func:`split_candidates`: every count vector for a budget (compositions of ``L``);
* :func:`prefix_masks`: counts -> masks;
* :func:`split_log_scores`: the controller's score of every split (the sum of the logits it
  would select); deterministic top-L picks the highest-scoring split;
* :func:`sampled_splits`: per-sample candidates (the controller's split, the even split and
  Gumbel-perturbed ones) where the full set is too large (9 tracking streams);
* :func:`split_losses`: the task loss and score of every split on one batch, computing each
  stream's backbone once per distinct count (:func:`count_embeddings`) and only re-running
  the (small) fusion per split.

Used by stage 2 (:mod:`admn_ros.core.train.stage2`) and by ``scripts/diagnose_model.py splits``
(the best split per binary noise pattern).
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping

import numpy as np
import torch

from admn_ros.core.streams import spread_order


def split_candidates(n_streams: int, budget: int, depth: int, first_block: bool = True,
                     limit: int = 4096) -> np.ndarray:
    """Every per-stream count vector with ``sum == budget`` and each count in
    ``[1 if first_block else 0, depth]``: ``[C, n_streams]`` int64, lexicographic order.

    Raises:
        ValueError: if there are none, or more than ``limit`` (e.g. 9 streams at L = 27 have
            about 1.5 million; enumeration is meant for a few streams).
    """
    lo = 1 if first_block else 0
    n, L = int(n_streams), int(budget)
    if not n * lo <= L <= n * depth:
        raise ValueError(f"budget {L} cannot be split over {n} streams with {lo}..{depth} blocks each")
    out: list[tuple[int, ...]] = []
    # count before materialising, so a huge grid fails fast
    total = _n_compositions(n, L - n * lo, depth - lo)
    if total > limit:
        raise ValueError(f"{total} splits of budget {L} over {n} streams exceed the limit {limit}; "
                         "split enumeration is for a few streams (e.g. the activity window)")
    for head in itertools.product(range(lo, depth + 1), repeat=n - 1):
        last = L - sum(head)
        if lo <= last <= depth:
            out.append((*head, last))
    return np.asarray(out, dtype=np.int64).reshape(-1, n)


def _n_compositions(n: int, total: int, cap: int) -> int:
    """Number of ways to write ``total`` as ``n`` ordered parts in ``[0, cap]`` (DP)."""
    ways = [1] + [0] * total
    for _ in range(n):
        nxt = [0] * (total + 1)
        for t in range(total + 1):
            if ways[t]:
                for k in range(0, min(cap, total - t) + 1):
                    nxt[t + k] += ways[t]
        ways = nxt
    return ways[total]


def prefix_masks(counts: np.ndarray | torch.Tensor, depth: int) -> torch.Tensor:
    """Counts ``[..., n]`` -> bool masks ``[..., n, depth]``: the first ``count`` blocks of
    :func:`~admn_ros.core.streams.spread_order` in every stream."""
    c = torch.as_tensor(np.asarray(counts), dtype=torch.long)
    rank = torch.empty(depth, dtype=torch.long)
    rank[torch.tensor(spread_order(depth))] = torch.arange(depth)
    return rank < c[..., None]


def split_log_scores(logits: torch.Tensor, counts: torch.Tensor, first_block: bool = True) -> torch.Tensor:
    """Score of every split under the logits ``[B, n, depth]``: the sum of the logits of the
    non-forced blocks the split runs, ``[B, C]`` (differentiable). ``counts`` is ``[C, n]``
    (the same splits for every sample) or ``[C, B, n]`` (per sample).

    A controller's logits decrease along ``spread_order`` in every stream,
    so the split deterministic top-L picks is the argmax of these scores.
    """
    b, n, depth = logits.shape
    order = torch.tensor(spread_order(depth), device=logits.device)
    v = logits[:, :, order]  # [B, n, depth] in rank order
    if first_block:
        v = torch.cat([torch.zeros_like(v[:, :, :1]), v[:, :, 1:]], dim=2)  # the forced block carries no choice
    cum = torch.cat([torch.zeros_like(v[:, :, :1]), v.cumsum(2)], dim=2)  # [B, n, depth + 1]
    c = counts.to(logits.device).long()
    c = c[:, None, :].expand(-1, b, -1) if c.dim() == 2 else c  # [C, B, n]
    return cum.gather(2, c.permute(1, 2, 0)).sum(1)  # [B, C]


def sampled_splits(logits: torch.Tensor, budget: int, k: int, scale: float, first_block: bool = True,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample candidate splits when the full set is too large to enumerate:
    ``[k + 2, B, n]`` counts (the deterministic top-L split, the even split, and ``k``
    Gumbel-perturbed top-L splits, Gumbel scale ``scale``) and a bool ``[B, k + 2]`` that is
    False for a repeat of an earlier candidate of the same sample (count it once)."""
    from admn_ros.core.controller import select_blocks
    from admn_ros.core.streams import naive_allocation

    lg = logits.detach()
    b, n, depth = lg.shape
    even = torch.from_numpy(naive_allocation(n, budget, depth).sum(1)).to(lg.device).long()
    cands = [select_blocks(lg, budget, first_block=first_block).sum(2).long(), even.expand(b, -1)]
    cands += [select_blocks(lg, budget, first_block=first_block, gumbel_scale=scale,
                            generator=generator).sum(2).round().long() for _ in range(k)]
    c = torch.stack(cands)  # [K, B, n]
    same = (c[:, None] == c[None, :]).all(-1)  # [K, K, B]
    earlier = torch.tril(torch.ones(len(c), len(c), dtype=torch.bool), diagonal=-1)[:, :, None]
    keep = ~(same & earlier).any(1)  # [K, B]: no earlier equal candidate
    return c, keep.T


@torch.no_grad()
def count_embeddings(model: Any, inputs: Mapping[str, torch.Tensor], ks: list[int]) -> torch.Tensor:
    """Every stream's backbone embedding with ``k`` prefix blocks, for each ``k`` in ``ks``:
    ``[len(ks), B, T, D]`` (token order as ``model.backbone_embeddings``)."""
    n, depth = model.cfg.n_streams, model.cfg.vit_depth
    return torch.stack([model.backbone_embeddings(inputs, prefix_masks(np.full(n, k), depth)) for k in ks])


@torch.no_grad()
def split_losses(model: Any, inputs: Mapping[str, torch.Tensor] | None, target: torch.Tensor, counts: np.ndarray,
                 loss_weights: tuple[float, float] = (1.0, 0.05), max_rows: int = 8192,
                 emb: tuple[list[int], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Task loss and score (:meth:`Task.loss_per_sample <admn_ros.core.tasks.base.Task.loss_per_sample>`,
    :meth:`Task.scores <admn_ros.core.tasks.base.Task.scores>`) of every split ``counts [C, n]`` on one batch:
    two ``[C, B]`` tensors, equal to running ``model(inputs, prefix_masks(c))`` per split.
    ``counts`` may also be ``[C, B, n]`` (different candidate splits per sample).

    Each distinct count runs every stream's backbone once (:func:`count_embeddings`; or pass
    ``emb=(ks, embeddings)`` computed for a superset of the counts, rows matching ``target``);
    the splits then only differ in which of those embeddings each stream's tokens take, so
    only the fusion runs per split (in chunks of at most ``max_rows`` samples).
    """
    from admn_ros.core.tasks import get_task

    cfg = model.cfg
    n = cfg.n_streams
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.long)  # [C, n] or [C, B, n]
    if emb is None:
        ks = sorted(set(counts.unique().tolist()))
        emb = (ks, count_embeddings(model, inputs, ks))
    lut = torch.full((cfg.vit_depth + 1,), -1, dtype=torch.long)
    lut[torch.tensor(emb[0])] = torch.arange(len(emb[0]))
    e_all = emb[1]
    _, b, t, d = e_all.shape  # token t belongs to stream t % n (frame-major order)
    per_sample = counts.dim() == 3
    kidx = lut[counts[..., torch.arange(t) % n]]  # [C, T] or [C, B, T]
    if bool((kidx < 0).any()):
        raise ValueError("split_losses: emb lacks embeddings for some counts")
    tok = torch.arange(t)
    rows = torch.arange(b)
    per = max(1, max_rows // max(b, 1))
    losses, scores = [], []
    for s in range(0, len(counts), per):
        ki = kidx[s:s + per]
        if per_sample:  # [c, B, T]
            e = e_all[ki, rows[None, :, None], tok[None, None, :]]  # [c, B, T, D]
        else:  # [c, T]
            e = e_all[ki, :, tok[None, :].expand_as(ki)].permute(0, 2, 1, 3)  # [c, B, T, D]
        out = model.fuse(e.reshape(-1, t, d))
        tgt = target.repeat(len(ki), *([1] * (target.dim() - 1)))
        losses.append(get_task(cfg.task).loss_per_sample(out, tgt, *loss_weights).reshape(len(ki), b))
        scores.append(get_task(cfg.task).scores(out, tgt).reshape(len(ki), b))
    return torch.cat(losses), torch.cat(scores)
