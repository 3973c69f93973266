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

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

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


class GaussianHead(nn.Module):
    """Pooled embedding ``[B, D]`` -> 2-D Gaussian: mean ``[B, 2]``, covariance ``[B, 2, 2]``.

    The mean is bounded to ``bounds`` (sigmoid scaled to the box). The covariance is
    ``L L^T + eps * I`` with ``L`` lower-triangular, diagonal through softplus. Raw head
    outputs are laid out explicitly: ``[mx, my, l11, l22, l21]``.
    """

    def __init__(self, dim: int, hidden: int | None = None,
                 bounds: Sequence[Sequence[float]] = DEFAULT_BOUNDS, eps: float = 1e-3) -> None:
        super().__init__()
        hidden = hidden or dim
        lo = torch.tensor([float(bounds[0][0]), float(bounds[1][0])])
        hi = torch.tensor([float(bounds[0][1]), float(bounds[1][1])])
        if not bool((hi > lo).all()):
            raise ValueError(f"invalid bounds {bounds}: need min < max on both axes")
        self.register_buffer("lo", lo, persistent=False)
        self.register_buffer("span", hi - lo, persistent=False)
        self.eps = float(eps)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, 5)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.fc2(F.gelu(self.fc1(z)))  # [B, 5]
        mean = self.lo + self.span * torch.sigmoid(raw[:, 0:2])
        l11 = F.softplus(raw[:, 2])
        l22 = F.softplus(raw[:, 3])
        l21 = raw[:, 4]
        zero = torch.zeros_like(l11)
        chol = torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)  # [B, 2, 2]
        eye = torch.eye(2, dtype=z.dtype, device=z.device)
        cov = chol @ chol.transpose(-1, -2) + self.eps * eye
        return mean, cov


class ClassHead(nn.Module):
    """Pooled embedding ``[B, D]`` -> class logits ``[B, K]`` (LayerNorm + Linear)."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(z))


class Fusion(nn.Module):
    """Stream embeddings ``[B, n, Db]`` + ``present [B, n]`` -> task outputs.

    Args:
        stream_modalities: the modality of each stream, in stream order (length ``n``).
        in_dim: backbone width ``Db``.
        dim: fusion width ``Df``.
        depth: transformer layers.
        heads: attention heads.
        mlp_ratio: transformer MLP ratio.
        task: ``"tracking"`` (GaussianHead) or ``"activity"`` (ClassHead).
        n_classes: classes for ``"activity"``.
        bounds: map box for the Gaussian mean.
        cov_eps: ``eps`` of the covariance.
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
        self.task = task
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
        if task == "tracking":
            self.head: nn.Module = GaussianHead(dim, dim, bounds, cov_eps)
        elif task == "activity":
            self.head = ClassHead(dim, n_classes)
        else:
            raise ValueError(f"unknown task {task!r}; use 'tracking' or 'activity'")
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
        if aux_heads and task == "activity":
            self.aux = nn.ModuleDict({m: ClassHead(dim, n_classes) for m in self.modalities})
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
        """``emb [B, n, Db]``, ``present [B, n]`` -> ``{"mean": [B,2], "cov": [B,2,2]}`` (tracking)
        or ``{"logits": [B, K]}`` (activity)."""
        z = self.pooled(emb, present)
        if self.task == "tracking":
            mean, cov = self.head(z)
            out = {"mean": mean, "cov": cov}
            if self.aux_pos is not None and self.training:
                out["aux_mean"] = self.aux_positions(emb)
                out["aux_present"] = present.to(torch.bool)
            return out
        out = {"logits": self.head(z)}
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
def gaussian_nll(mean: torch.Tensor, cov: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample negative log-likelihood of ``target [B, 2]`` under ``N(mean [B, 2], cov [B, 2, 2])``.

    Closed form for 2x2: ``0.5 * (d^T cov^-1 d + log det cov) + log(2 pi)``. Returns ``[B]``.
    """
    d = target - mean
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = (a * c - b * b).clamp_min(1e-12)
    quad = (c * d[:, 0] ** 2 - 2.0 * b * d[:, 0] * d[:, 1] + a * d[:, 1] ** 2) / det
    return 0.5 * (quad + torch.log(det)) + math.log(2.0 * math.pi)


def euclidean_distance(mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean error ``||mean - target||``: ``[B, 2]`` x ``[B, 2]`` -> ``[B]``."""
    return torch.linalg.vector_norm(mean - target, dim=-1)


def tracking_loss(mean: torch.Tensor, cov: torch.Tensor, target: torch.Tensor,
                  dist_weight: float = 0.05) -> torch.Tensor:
    """Scalar training loss: ``mean(gaussian_nll + dist_weight * euclidean_distance)``."""
    return (gaussian_nll(mean, cov, target) + dist_weight * euclidean_distance(mean, target)).mean()


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


# ------------------------------------------------------------------ task-generic helpers
#: Per task: (metric name, unit, lower is better).
TASK_METRICS: dict[str, tuple[str, str, bool]] = {
    "tracking": ("error", "cm", True),
    "activity": ("accuracy", "%", False),
}


def task_loss(task: str, out: dict[str, torch.Tensor], target: torch.Tensor, nll_weight: float = 1.0,
              dist_weight: float = 0.05, aux_weight: float = 0.0) -> torch.Tensor:
    """Scalar training loss of a model output: tracking ``nll_weight * NLL + dist_weight *
    distance`` (the paper: 1 and 0.05), activity cross-entropy, plus ``aux_weight`` times
    :func:`aux_classification_loss` (activity) or :func:`aux_position_loss` (tracking) when the
    output has auxiliary outputs."""
    loss = task_loss_per_sample(task, out, target, nll_weight, dist_weight).mean()
    if task == "activity" and aux_weight > 0 and "aux_logits" in out:
        loss = loss + aux_weight * aux_classification_loss(out["aux_logits"], out["aux_present"], target)
    if task == "tracking" and aux_weight > 0 and "aux_mean" in out:
        loss = loss + aux_weight * aux_position_loss(out["aux_mean"], out["aux_present"], target)
    return loss


def task_loss_per_sample(task: str, out: dict[str, torch.Tensor], target: torch.Tensor, nll_weight: float = 1.0,
                         dist_weight: float = 0.05) -> torch.Tensor:
    """:func:`task_loss` (without auxiliary terms) per sample: ``[B]``."""
    if task == "activity":
        return F.cross_entropy(out["logits"], target, reduction="none")
    loss = dist_weight * euclidean_distance(out["mean"], target)
    if nll_weight > 0:
        loss = loss + nll_weight * gaussian_nll(out["mean"], out["cov"], target)
    return loss


@torch.no_grad()
def task_scores(task: str, out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Per-sample score ``[B]`` in the unit of :data:`TASK_METRICS`: tracking Euclidean error
    in cm, activity 100 for a correct label and 0 otherwise (its mean is the accuracy in %)."""
    if task == "activity":
        return (out["logits"].argmax(-1) == target).float() * 100.0
    return euclidean_distance(out["mean"], target) * 100.0
