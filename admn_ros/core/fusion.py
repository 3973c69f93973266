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
    """

    def __init__(self, stream_modalities: Sequence[str], in_dim: int, dim: int = 64, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, task: str = "tracking", n_classes: int = 27,
                 bounds: Sequence[Sequence[float]] = DEFAULT_BOUNDS, cov_eps: float = 1e-3) -> None:
        super().__init__()
        self.stream_modalities = list(stream_modalities)
        self.modalities = list(dict.fromkeys(self.stream_modalities))
        self.n_streams = len(self.stream_modalities)
        self.task = get_task(task)
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
        self.head: nn.Module = self.task.head(SimpleNamespace(n_classes=n_classes, bounds=bounds, cov_eps=cov_eps), dim)
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
        """``emb [B, n, Db]``, ``present [B, n]`` -> the task's outputs (:attr:`Task.outputs`:
        ``{"mean": [B,2], "cov": [B,2,2]}`` for tracking, ``{"logits": [B, K]}`` for activity)."""
        return self.task.head_forward(self.head, self.pooled(emb, present))


def task_loss(task: str, out: dict[str, torch.Tensor], target: torch.Tensor, nll_weight: float = 1.0,
              dist_weight: float = 0.05) -> torch.Tensor:
    """Scalar training loss of a model output: the task's (:meth:`Task.loss
    <admn_ros.core.tasks.base.Task.loss>`; tracking ``nll_weight * NLL + dist_weight *
    distance``, the paper: 1 and 0.05; activity cross-entropy)."""
    return get_task(task).loss(out, target, nll_weight, dist_weight)
