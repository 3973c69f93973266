"""Fusion of the per-stream backbone embeddings and the task head: ``emb [B, n, Db]`` ->
per-modality adapter + stream embedding -> transformer -> ordered readout ``[B, Df]`` -> head.
A missing stream is excluded as a key and replaced in the readout, so its data cannot matter.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from admn_ros.core.tasks import get_task
from admn_ros.core.vit import Block, init_linear

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
    """Stream embeddings ``[B, n, Db]`` + ``present [B, n]`` -> the task head's outputs
    (``n_classes`` / ``bounds`` / ``cov_eps``: the ``ADMNConfig`` fields the heads read)."""

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
        # Ordered readout (a missing stream's token replaced by a learned one): mean pooling loses
        # which node saw what and stayed at the "predict the track centre" plateau.
        self.missing_tok = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.missing_tok, std=0.02)
        self.readout = nn.Linear(self.n_streams * dim, dim)
        self.head: nn.Module = self.task.head(SimpleNamespace(n_classes=n_classes, bounds=bounds, cov_eps=cov_eps), dim)
        # stream indices per modality (adapters) and the permutation back to stream order
        order: list[int] = []
        for m in self.modalities:
            idx = [i for i, sm in enumerate(self.stream_modalities) if sm == m]
            order += idx
            self.register_buffer(f"_idx_{m}", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.register_buffer("_perm", torch.argsort(torch.tensor(order)), persistent=False)
        for mod in (self.adapters, self.layers, self.head, self.readout):
            mod.apply(init_linear)

    def tokens(self, emb: torch.Tensor) -> torch.Tensor:
        """Adapters + stream embedding: ``[B, n, Db]`` -> ``[B, n, Df]``."""
        parts = [self.adapters[m](emb.index_select(1, getattr(self, f"_idx_{m}"))) for m in self.modalities]
        return torch.cat(parts, dim=1).index_select(1, self._perm) + self.stream_emb

    def pooled(self, emb: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Fused embedding ``[B, Df]``; a sample with no present stream attends to every token
        (a meaningless but finite output rather than NaN)."""
        present = present.to(torch.bool)
        attend = (present | ~present.any(dim=1, keepdim=True))[:, None, None, :]  # [B, 1, 1, n]: query may attend key
        x = self.tokens(emb)
        for layer in self.layers:
            x = layer(x, attend)
        x = self.norm(x)
        x = torch.where(present.unsqueeze(-1), x, self.missing_tok.to(x.dtype).expand_as(x))
        return self.readout(x.flatten(1))

    def forward(self, emb: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.task.head_forward(self.head, self.pooled(emb, present))

