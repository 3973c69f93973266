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
    """

    def __init__(self, stream_modalities: Sequence[str], in_dim: int, dim: int = 64, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, task: str = "tracking", n_classes: int = 27,
                 bounds: Sequence[Sequence[float]] = DEFAULT_BOUNDS, cov_eps: float = 1e-3) -> None:
        super().__init__()
        self.stream_modalities = list(stream_modalities)
        self.modalities = list(dict.fromkeys(self.stream_modalities))
        self.n_streams = len(self.stream_modalities)
        self.task = task
        self.adapters = nn.ModuleDict({m: Adapter(in_dim, dim) for m in self.modalities})
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
        self.adapters.apply(init_linear)
        self.layers.apply(init_linear)
        self.head.apply(init_linear)
        init_linear(self.readout)

    def tokens(self, emb: torch.Tensor) -> torch.Tensor:
        """Adapters + stream embedding: ``[B, n, Db]`` -> ``[B, n, Df]``."""
        parts = [self.adapters[m](emb.index_select(1, getattr(self, f"_idx_{m}"))) for m in self.modalities]
        return torch.cat(parts, dim=1).index_select(1, self._perm) + self.stream_emb

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
            return {"mean": mean, "cov": cov}
        return {"logits": self.head(z)}


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


# ------------------------------------------------------------------ task-generic helpers
#: Per task: (metric name, unit, lower is better).
TASK_METRICS: dict[str, tuple[str, str, bool]] = {
    "tracking": ("error", "cm", True),
    "activity": ("accuracy", "%", False),
}


def task_loss(task: str, out: dict[str, torch.Tensor], target: torch.Tensor, nll_weight: float = 1.0,
              dist_weight: float = 0.05) -> torch.Tensor:
    """Scalar training loss of a model output: tracking ``nll_weight * NLL + dist_weight *
    distance`` (the paper: 1 and 0.05), activity cross-entropy."""
    return task_loss_per_sample(task, out, target, nll_weight, dist_weight).mean()


def task_loss_per_sample(task: str, out: dict[str, torch.Tensor], target: torch.Tensor, nll_weight: float = 1.0,
                         dist_weight: float = 0.05) -> torch.Tensor:
    """:func:`task_loss` per sample: ``[B]``."""
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
