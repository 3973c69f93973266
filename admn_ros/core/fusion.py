"""Fusion of the per-stream backbone embeddings, output heads and their losses.

Data flow (``n = S * M`` streams, node-major as :class:`~admn_ros.core.streams.StreamSet`)::

    emb [B, n, Db] --adapter of the stream's modality--> [B, n, Df] (+ stream embedding)
        --transformer encoder (missing streams masked as keys)--> [B, n, Df]
        --mean over present tokens--> [B, Df] --head--> task output

A missing stream (``present[b, i] == False``) is never zero-filled: its token is
excluded from attention as a key and from the pooling, so its data (whatever it
is) cannot change the output.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from admn_ros.core.tasks import get_task
from admn_ros.core.vit import Block, init_linear

#: Default map-frame box of the track (metres): ((x_min, x_max), (y_min, y_max)).
#: Map-frame box (metres) the Gaussian mean is bounded to: the default simulated track
#: (3.0 m x 3.6 m centred on the map origin, config/sensors.yaml) plus a 0.2 m margin.
DEFAULT_BOUNDS: tuple[tuple[float, float], tuple[float, float]] = ((-1.7, 1.7), (-2.0, 2.0))


class Adapter(nn.Module):
    """Two-layer MLP from backbone width to fusion width: ``[..., Db]`` -> ``[..., Df]``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Fusion(nn.Module):
    """Stream embeddings ``[B, n, Db]`` + ``present [B, n]`` -> task outputs.

    Args:
        stream_modalities: the modality of each stream, in stream order (length ``n``).
        in_dim: backbone width ``Db``.
        dim: fusion width ``Df``.
        depth: transformer layers.
        heads: attention heads.
        mlp_ratio: transformer MLP ratio.
        task: the task whose head reads the pooled embedding (:meth:`Task.head
            <admn_ros.core.tasks.base.Task.head>`; tracking: a 2-D Gaussian, activity: class logits).
        n_classes / bounds / cov_eps: the ``ADMNConfig`` fields the heads read (classes; map box
            of the Gaussian mean; ``eps`` of its covariance).
        token_norm: LayerNorm on every adapter output before the stream embedding is added.
            At initialisation an adapter's output is ~0.02 in scale, the size of the stream
            embedding and of each fusion block's update, so a weak backbone signal (a pooled
            readout) is drowned before training can amplify it; normalised tokens start at
            unit scale (docs/TRAINING.md, "Session 5").
        aux_heads: auxiliary heads that ask every backbone to solve the task on its own;
            used by training only (in eval mode, inference and export they are not run).
            ``"activity"``: one class head per modality on the mean of that modality's present
            tokens (after the adapters, before the fusion transformer); :meth:`forward` adds
            ``aux_logits`` for :func:`aux_classification_loss`. ``"tracking"``: one linear
            position head per stream on its raw backbone embedding (each node sees the map
            from its own pose); :meth:`forward` adds ``aux_mean [B, n, 2]`` for
            :func:`aux_position_loss`. With a pooled backbone readout the main loss alone
            stays at the "predict the track centre" plateau, because its gradient reaches the
            backbones only through the small-initialised fusion; these heads give each
            backbone a direct path (docs/TRAINING.md, "Session 11").
    """

    def __init__(self, stream_modalities: Sequence[str], in_dim: int, dim: int = 64, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, task: str = "tracking", n_classes: int = 27,
                 bounds: Sequence[Sequence[float]] = DEFAULT_BOUNDS, cov_eps: float = 1e-3,
                 token_norm: bool = False, aux_heads: bool = False) -> None:
        super().__init__()
        self.stream_modalities = list(stream_modalities)
        self.modalities = list(dict.fromkeys(self.stream_modalities))
        self.n_streams = len(self.stream_modalities)
        self.task = get_task(task)
        head_cfg = SimpleNamespace(n_classes=n_classes, bounds=bounds, cov_eps=cov_eps)
        self.adapters = nn.ModuleDict({m: Adapter(in_dim, dim) for m in self.modalities})
        self.token_norm = nn.LayerNorm(dim, eps=1e-6) if token_norm else nn.Identity()
        self.stream_emb = nn.Parameter(torch.zeros(1, self.n_streams, dim))
        nn.init.trunc_normal_(self.stream_emb, std=0.02)
        self.layers = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        # Readout: tokens flattened in stream order (a missing stream's token is replaced by
        # a learned "missing" token), then one linear layer. Mean pooling over stream tokens
        # loses which node saw what, and trained from scratch it stayed at the "predict
        # the track centre" plateau; the ordered readout keeps node identity for triangulation.
        self.missing_tok = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.missing_tok, std=0.02)
        self.readout = nn.Linear(self.n_streams * dim, dim)
        self.head: nn.Module = self.task.head(head_cfg, dim)
        # stream indices of each modality (for the per-modality adapters) and the permutation
        # that puts the modality-grouped adapter outputs back in stream order
        order: list[int] = []
        for m in self.modalities:
            idx = [i for i, sm in enumerate(self.stream_modalities) if sm == m]
            order += idx
            self.register_buffer(f"_idx_{m}", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.register_buffer("_perm", torch.argsort(torch.tensor(order)), persistent=False)
        self.aux: nn.ModuleDict | None = None
        self.aux_pos: nn.ModuleList | None = None
        if aux_heads and "logits" in self.task.outputs:
            self.aux = nn.ModuleDict({m: self.task.head(head_cfg, dim) for m in self.modalities})
            self.aux.apply(init_linear)
        elif aux_heads:
            # PyTorch's default Linear init (not init_linear's std 0.02): the point of these
            # heads is a gradient to the backbones that is not scaled down at the start.
            self.aux_pos = nn.ModuleList([nn.Linear(in_dim, 2) for _ in range(self.n_streams)])
            lo = torch.tensor([float(bounds[0][0]), float(bounds[1][0])])
            hi = torch.tensor([float(bounds[0][1]), float(bounds[1][1])])
            self.register_buffer("_aux_mid", (lo + hi) / 2.0, persistent=False)
            self.register_buffer("_aux_half", (hi - lo) / 2.0, persistent=False)
        self.adapters.apply(init_linear)
        self.layers.apply(init_linear)
        self.head.apply(init_linear)
        init_linear(self.readout)

    def tokens(self, emb: torch.Tensor) -> torch.Tensor:
        """Adapters + stream embedding: ``[B, n, Db]`` -> ``[B, n, Df]``."""
        parts = [self.adapters[m](emb.index_select(1, getattr(self, f"_idx_{m}"))) for m in self.modalities]
        return self.token_norm(torch.cat(parts, dim=1).index_select(1, self._perm)) + self.stream_emb

    def pooled(self, emb: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``emb [B, n, Db]``, ``present`` bool ``[B, n]`` -> fused embedding ``[B, Df]``
        (ordered readout over the stream tokens; missing streams contribute a learned token).

        Samples with no present stream at all get every token unmasked (the output is then
        meaningless but finite) rather than NaN.
        """
        present = present.to(torch.bool)
        any_present = present.any(dim=1, keepdim=True)
        keys = present | ~any_present  # [B, n]
        attend = keys[:, None, None, :]  # [B, 1, 1, n]: query may attend key
        x = self.tokens(emb)
        for layer in self.layers:
            x = layer(x, attend)
        x = self.norm(x)
        x = torch.where(present.unsqueeze(-1), x, self.missing_tok.to(x.dtype).expand_as(x))
        return self.readout(x.flatten(1))

    def forward(self, emb: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        """``emb [B, n, Db]``, ``present [B, n]`` -> the task's outputs (:attr:`Task.outputs`:
        ``{"mean": [B,2], "cov": [B,2,2]}`` for tracking, ``{"logits": [B, K]}`` for activity)."""
        out = self.task.head_forward(self.head, self.pooled(emb, present))
        if self.aux_pos is not None and self.training:
            out["aux_mean"] = self.aux_positions(emb)
            out["aux_present"] = present.to(torch.bool)
        if self.aux is not None and self.training:
            out["aux_logits"], out["aux_present"] = self.aux_outputs(emb, present)
        return out

    def aux_positions(self, emb: torch.Tensor) -> torch.Tensor:
        """Tracking auxiliary heads: every stream's own position estimate ``[B, n, 2]`` (map
        metres, centre of the bounds + half their span times a linear map of the stream's
        backbone embedding ``emb [B, n, Db]``)."""
        if self.aux_pos is None:
            raise RuntimeError("this Fusion was built without tracking aux_heads")
        raw = torch.stack([head(emb[:, i]) for i, head in enumerate(self.aux_pos)], dim=1)
        return self._aux_mid + self._aux_half * raw

    def aux_outputs(self, emb: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Auxiliary per-modality logits ``[B, M, K]`` (modalities in :attr:`modalities` order)
        from the mean of each modality's present tokens, and ``[B, M]`` bool: the modality
        had a present token (its logits are meaningless otherwise)."""
        if self.aux is None:
            raise RuntimeError("this Fusion was built without aux_heads")
        x = self.tokens(emb)
        logits, has = [], []
        for m in self.modalities:
            idx = getattr(self, f"_idx_{m}")
            p = present.index_select(1, idx).to(x.dtype)  # [B, k]
            cnt = p.sum(1, keepdim=True)
            mean = (x.index_select(1, idx) * p.unsqueeze(-1)).sum(1) / cnt.clamp_min(1.0)
            logits.append(self.aux[m](mean))
            has.append(cnt.squeeze(1) > 0)
        return torch.stack(logits, 1), torch.stack(has, 1)


# ------------------------------------------------------------------ losses
def aux_classification_loss(aux_logits: torch.Tensor, aux_present: torch.Tensor,
                            labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the auxiliary heads (``[B, M, K]``) over the (sample, modality)
    pairs with a present modality (``aux_present [B, M]``); 0 if there is none."""
    k = aux_logits.shape[-1]
    ce = F.cross_entropy(aux_logits.reshape(-1, k), labels.repeat_interleave(aux_logits.shape[1]),
                         reduction="none")
    w = aux_present.reshape(-1).to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp_min(1.0)


def aux_position_loss(aux_mean: torch.Tensor, aux_present: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean error of the per-stream auxiliary positions (``aux_mean [B, n, 2]``)
    over the present (sample, stream) pairs (``aux_present [B, n]``); 0 if there is none."""
    err = torch.linalg.vector_norm(aux_mean - target.unsqueeze(1), dim=-1)  # [B, n]
    w = aux_present.to(err.dtype)
    return (err * w).sum() / w.sum().clamp_min(1.0)


# ------------------------------------------------------------------ the task's loss
def task_loss(task: str, out: dict[str, torch.Tensor], target: torch.Tensor, nll_weight: float = 1.0,
              dist_weight: float = 0.05, aux_weight: float = 0.0) -> torch.Tensor:
    """Scalar training loss of a model output: the task's (:meth:`Task.loss
    <admn_ros.core.tasks.base.Task.loss>`; tracking ``nll_weight * NLL + dist_weight *
    distance``, the paper: 1 and 0.05; activity cross-entropy), plus ``aux_weight`` times
    :func:`aux_classification_loss` / :func:`aux_position_loss` when the output has auxiliary outputs."""
    loss = get_task(task).loss(out, target, nll_weight, dist_weight)
    if aux_weight > 0 and "aux_logits" in out:
        loss = loss + aux_weight * aux_classification_loss(out["aux_logits"], out["aux_present"], target)
    if aux_weight > 0 and "aux_mean" in out:
        loss = loss + aux_weight * aux_position_loss(out["aux_mean"], out["aux_present"], target)
    return loss
