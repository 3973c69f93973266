"""Count splits: allocations described by how many blocks each stream runs (a controller's top-L
gives every stream a prefix of :func:`~admn_ros.core.streams.spread_order`), enumerated or sampled,
scored under the logits and evaluated on the frozen network for stage 2 (each backbone once per
distinct count, only the fusion per split).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

import numpy as np
import torch

from admn_ros.core.controller import select_blocks
from admn_ros.core.streams import naive_allocation, spread_order
from admn_ros.core.tasks import get_task


def split_candidates(n_streams: int, budget: int, depth: int, first_block: bool = True,
                     limit: int = 4096) -> np.ndarray:
    """Every count vector with ``sum == budget``, each in ``[1 if first_block else 0, depth]``:
    ``[C, n_streams]`` int64, lexicographic. ValueError for none or more than ``limit`` (9 streams
    at L = 27 have about 1.5 million)."""
    lo = 1 if first_block else 0
    n, L = int(n_streams), int(budget)
    if not n * lo <= L <= n * depth:
        raise ValueError(f"budget {L} cannot be split over {n} streams with {lo}..{depth} blocks each")
    # count before materialising, so a huge grid fails fast
    total = _n_compositions(n, L - n * lo, depth - lo)
    if total > limit:
        raise ValueError(f"{total} splits of budget {L} over {n} streams exceed the limit {limit}; "
                         "split enumeration is for a few streams (e.g. the activity window)")
    heads = itertools.product(range(lo, depth + 1), repeat=n - 1)
    out = [(*head, L - sum(head)) for head in heads if lo <= L - sum(head) <= depth]
    return np.asarray(out, dtype=np.int64).reshape(-1, n)


def _n_compositions(n: int, total: int, cap: int) -> int:
    """Ways to write ``total`` as ``n >= 1`` ordered parts in ``[0, cap]`` (inclusion-exclusion over the
    parts that exceed ``cap``)."""
    return sum((-1) ** k * math.comb(n, k) * math.comb(total - k * (cap + 1) + n - 1, n - 1)
               for k in range(n + 1) if k * (cap + 1) <= total)


def prefix_masks(counts: np.ndarray | torch.Tensor, depth: int) -> torch.Tensor:
    """Counts ``[..., n]`` -> bool masks ``[..., n, depth]`` (prefixes of ``spread_order``)."""
    c = torch.as_tensor(np.asarray(counts), dtype=torch.long)
    rank = torch.empty(depth, dtype=torch.long)
    rank[torch.tensor(spread_order(depth))] = torch.arange(depth)
    return rank < c[..., None]


def split_log_scores(logits: torch.Tensor, counts: torch.Tensor, first_block: bool = True) -> torch.Tensor:
    """``[B, C]``: the sum of the logits ``[B, n, depth]`` of the non-forced blocks each split
    ``counts`` (``[C, n]``, or ``[C, B, n]`` per sample) runs; differentiable."""
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
    """Per-sample candidates ``[k + 2, B, n]``: the top-L split, the even split and ``k``
    Gumbel-perturbed ones; and a bool ``[B, k + 2]``, False for a repeat within a sample."""
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
    """Every token's backbone embedding with ``k`` prefix blocks per ``k`` in ``ks``: ``[len(ks), B, T, D]``."""
    n, depth = model.cfg.n_streams, model.cfg.vit_depth
    return torch.stack([model.backbone_embeddings(inputs, prefix_masks(np.full(n, k), depth)) for k in ks])


@torch.no_grad()
def split_losses(model: Any, inputs: Mapping[str, torch.Tensor] | None, target: torch.Tensor, counts: np.ndarray,
                 loss_weights: tuple[float, float] = (1.0, 0.05), max_rows: int = 8192,
                 emb: tuple[list[int], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Task loss and score ``[C, B]`` of every split ``counts`` (``[C, n]`` or ``[C, B, n]``) on one
    batch, equal to ``model(inputs, prefix_masks(c))`` per split. ``emb=(ks, embeddings)``
    passes :func:`count_embeddings` computed for a superset of the counts."""
    cfg = model.cfg
    task = get_task(cfg.task)
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.long)  # [C, n] or [C, B, n]
    if emb is None:
        ks = sorted(set(counts.unique().tolist()))
        emb = (ks, count_embeddings(model, inputs, ks))
    lut = torch.full((cfg.vit_depth + 1,), -1, dtype=torch.long)
    lut[torch.tensor(emb[0])] = torch.arange(len(emb[0]))
    e_all = emb[1]
    _, b, t, d = e_all.shape  # token t belongs to stream t % n (frame-major order)
    tok = torch.arange(t)
    kidx = lut[counts[..., tok % cfg.n_streams]]  # [C, T] or [C, B, T]
    if bool((kidx < 0).any()):
        raise ValueError("split_losses: emb lacks embeddings for some counts")
    rows = torch.arange(b)
    per = max(1, max_rows // max(b, 1))
    losses, scores = [], []
    for s in range(0, len(counts), per):
        ki = kidx[s:s + per]
        if counts.dim() == 3:  # [c, B, T]
            e = e_all[ki, rows[None, :, None], tok[None, None, :]]  # [c, B, T, D]
        else:  # [c, T]
            e = e_all[ki, :, tok[None, :].expand_as(ki)].permute(0, 2, 1, 3)  # [c, B, T, D]
        out = model.fuse(e.reshape(-1, t, d))
        tgt = target.repeat(len(ki), *([1] * (target.dim() - 1)))
        losses.append(task.loss_per_sample(out, tgt, *loss_weights).reshape(len(ki), b))
        scores.append(task.scores(out, tgt).reshape(len(ki), b))
    return torch.cat(losses), torch.cat(scores)
