"""Adaptive-depth Vision Transformer backbone (one per modality, shared by its streams):
``[B, C, 64, 64]`` in [0, 1] -> 16 patch tokens + CLS ``[B, 17, 64]`` -> spatial readout ``[B, 64]``.
Skipping is real: block ``j`` runs only on the sub-batch ``active[:, j]``, so a sample gets exactly
what it would alone.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from admn_ros.core.streams import DEPTH

#: An allocation: ``None`` (all blocks) or a bool/0-1 float tensor ``[B, depth]`` or ``[depth]``.
Active = Optional[torch.Tensor]


def init_linear(module: nn.Module) -> None:
    """ViT init of a Linear layer: truncated-normal (std 0.02) weights, zero biases; other modules unchanged."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Attention(nn.Module):
    """Multi-head self-attention; ``attend``: bool, broadcastable to ``[B, heads, T, T]``, True
    where a query may attend to a key."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), attend)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PatchEmbed(nn.Module):
    """Image ``[B, C, H, W]`` in [0, 1] (centred to [-1, 1]) -> tokens ``[B, 1 + N, D]``, CLS first;
    ``img_size`` a multiple of ``patch`` (``ADMNConfig`` checks)."""

    def __init__(self, in_chans: int, img_size: int, patch: int, dim: int) -> None:
        super().__init__()
        self.n_patches = (img_size // patch) ** 2
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + self.n_patches, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.proj.weight, std=1.0 / math.sqrt(in_chans * patch * patch))  # 1 / sqrt(fan-in)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tok = self.proj(x * 2.0 - 1.0).flatten(2).transpose(1, 2)  # [B, N, D]
        cls = self.cls.expand(tok.shape[0], -1, -1)
        return torch.cat([cls, tok], dim=1) + self.pos


class SpatialHead(nn.Module):
    """Spatial readout ``[B, T, D]`` -> ``[B, D]``: a per-token projection to ``proj`` channels,
    then one linear layer over the tokens flattened in order, so the embedding keeps *where*
    in the image a feature is, at ~35k multiply-adds."""

    def __init__(self, dim: int, tokens: int, proj: int = 16) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.reduce = nn.Linear(dim, proj)
        self.out = nn.Linear(tokens * proj, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.reduce(self.norm(x)).flatten(1))


def broadcast_mask(mask: Any, shape: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """An allocation (numpy or torch; without the leading batch axis: shared by the batch; ``None``:
    all on) as a tensor of ``shape``; bool stays bool, a 0/1 float mask stays float."""
    if mask is None:
        return torch.ones(*shape, dtype=torch.bool, device=device)
    m = torch.as_tensor(mask)
    if device is not None:
        m = m.to(device)
    if m.dim() == len(shape) - 1:
        m = m.unsqueeze(0).expand(shape[0], *m.shape)
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"allocation mask must have shape {list(shape)} (or {list(shape[1:])}), got {list(m.shape)}")
    return m


class AdaptiveViT(nn.Module):
    """ViT whose blocks can be skipped per sample. ``[B, C, H, W]`` -> embedding ``[B, dim]``.
    In training, ``layerdrop`` drops each block per sample (block 0 exempt with
    ``layerdrop_keep_first``) and ``full_drop`` runs only block 0 for a sample."""

    def __init__(self, in_chans: int, img_size: int = 64, patch: int = 16, dim: int = 64,
                 depth: int = DEPTH, heads: int = 4, mlp_ratio: float = 4.0,
                 layerdrop: float = 0.0, full_drop: float = 0.0,
                 layerdrop_keep_first: bool = True) -> None:
        super().__init__()
        self.dim, self.depth = dim, depth
        self.patch_embed = PatchEmbed(in_chans, img_size, patch, dim)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.head = SpatialHead(dim, 1 + self.patch_embed.n_patches)
        self.layerdrop_keep_first = layerdrop_keep_first
        self.set_layerdrop(layerdrop, full_drop)
        self.blocks.apply(init_linear)

    def set_layerdrop(self, p: float, full_drop: float | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"layerdrop probability must be in [0, 1), got {p}")
        self.layerdrop = float(p)
        if full_drop is not None:
            if not 0.0 <= full_drop <= 1.0:
                raise ValueError(f"full-backbone drop probability must be in [0, 1], got {full_drop}")
            self.full_drop = float(full_drop)

    def sample_drop_mask(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """Training keep-mask ``[batch, depth]`` (bool) from LayerDrop and full-backbone dropout."""
        keep = torch.rand(batch, self.depth, device=device) >= self.layerdrop
        if self.layerdrop_keep_first:
            keep[:, 0] = True
        if self.full_drop > 0.0:
            full = torch.rand(batch, device=device) < self.full_drop
            keep = torch.where(full[:, None], torch.arange(self.depth, device=device) == 0, keep)
        return keep

    def run_blocks(self, tokens: torch.Tensor, active: Active = None) -> torch.Tensor:
        """The active blocks on tokens ``[B, T, D]``, skipping per sample."""
        b = tokens.shape[0]
        mask = broadcast_mask(active, (b, self.depth), tokens.device)
        on = (mask > 0.5) if mask.is_floating_point() else mask
        if self.training and (self.layerdrop > 0.0 or self.full_drop > 0.0):
            on = on & self.sample_drop_mask(b, tokens.device)
        on_cpu = on.detach().cpu()
        counts = on_cpu.sum(0).tolist()
        x = tokens
        for j, blk in enumerate(self.blocks):
            if 0 < counts[j] < b:
                idx = on_cpu[:, j].nonzero().squeeze(1).to(x.device)
                x = x.index_copy(0, idx, blk(x.index_select(0, idx)))
            elif counts[j]:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor, active: Active = None) -> torch.Tensor:
        return self.head(self.run_blocks(self.patch_embed(x), active))

    def forward_blend(self, x: torch.Tensor, active: Active = None) -> torch.Tensor:
        """Benchmark baseline (the authors' batching): every block for every sample, blended
        ``x = m * blk(x) + (1 - m) * x``; the output of :meth:`forward`, no compute saved, no LayerDrop."""
        tok = self.patch_embed(x)
        mask = broadcast_mask(active, (tok.shape[0], self.depth), tok.device).to(tok.dtype)
        for j, blk in enumerate(self.blocks):
            m = mask[:, j].view(-1, 1, 1)
            tok = m * blk(tok) + (1.0 - m) * tok
        return self.head(tok)
