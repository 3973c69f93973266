"""Analytic FLOPs of ADMN as a function of the layer allocation.

FLOPs = 2 x the multiply-adds of every matmul and convolution (the papers' "GFLOPs");
LayerNorm, softmax, GELU and additions are left out (below 1% here).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from admn_ros.core.controller import ControllerConfig
from admn_ros.core.model import ADMNConfig
from admn_ros.core.streams import MODALITIES
from admn_ros.core.tasks import get_task


def block_flops(tokens: int, dim: int, mlp_ratio: float = 4.0) -> int:
    """One transformer block: qkv ``3 T D^2`` + attention ``2 T^2 D`` + projection ``T D^2`` + MLP ``2 T D H``."""
    hidden = int(round(dim * mlp_ratio))
    macs = tokens * dim * 3 * dim + 2 * tokens * tokens * dim + tokens * dim * dim + 2 * tokens * dim * hidden
    return 2 * macs


def vit_block_flops(cfg: ADMNConfig) -> int:
    return block_flops(1 + (cfg.img_size // cfg.patch) ** 2, cfg.vit_dim, cfg.vit_mlp_ratio)


def fusion_flops(cfg: ADMNConfig) -> int:
    """Adapters on every token, fusion transformer and head."""
    n, db, df = cfg.n_tokens, cfg.vit_dim, cfg.fusion_dim
    adapters = 2 * n * (db * df + df * df)
    layers = cfg.fusion_depth * block_flops(n, df, cfg.fusion_mlp_ratio)
    return adapters + layers + get_task(cfg.task).head_flops(cfg)


def controller_flops(ccfg: ControllerConfig) -> int:
    """The controller at inference (the training-only AE decoder not counted)."""
    c1, c2, c3 = ccfg.conv_channels
    h = ccfg.img_size
    d = ccfg.dim
    convs = sum((h // 4) ** 2 * c1 * MODALITIES[m].channels * 16 + (h // 8) ** 2 * c2 * c1 * 4
                + (h // 16) ** 2 * c3 * c2 * 4 + c3 * d for m in ccfg.stream_modalities)
    n = ccfg.n_streams
    head = n * (d * d + d * ccfg.depth)
    if ccfg.universal:
        head += d + d * 2 * d
    noise = n * (d * d + d)
    return 2 * (convs + head + noise) + ccfg.layers * block_flops(n + 1, d, ccfg.mlp_ratio)


def _stream_patch_flops(cfg: ADMNConfig, proj: int = 16) -> np.ndarray:
    """Per-stream fixed backbone cost, run even with 0 blocks: the patch embedding and the
    :class:`~admn_ros.core.vit.SpatialHead` readout (``proj`` channels per token)."""
    n = (cfg.img_size // cfg.patch) ** 2
    readout = 2 * (n + 1) * (cfg.vit_dim * proj + proj * cfg.vit_dim)
    return np.array([2 * n * MODALITIES[m].channels * cfg.patch * cfg.patch * cfg.vit_dim + readout
                     for m in cfg.stream_modalities], dtype=np.int64)


def allocation_flops(cfg: ADMNConfig, mask: Any, present: Any = None) -> np.ndarray | int:
    """Main-model FLOPs of a mask ``[n, depth]`` (an int) or ``[B, n, depth]`` (int64 ``[B]``);
    missing streams cost nothing, each window frame runs the allocation."""
    m = _to_numpy(mask).astype(bool)
    single = m.ndim == 2
    if single:
        m = m[None]
    b, n, depth = m.shape
    if (n, depth) != (cfg.n_streams, cfg.vit_depth):
        raise ValueError(f"mask must be [.., {cfg.n_streams}, {cfg.vit_depth}], got {list(m.shape)}")
    p = np.ones((b, n), dtype=bool) if present is None else np.broadcast_to(_to_numpy(present).astype(bool), (b, n))
    blocks = (m & p[:, :, None]).sum(axis=(1, 2)).astype(np.int64) * cfg.frames
    patch = (p * _stream_patch_flops(cfg)[None]).sum(1).astype(np.int64) * cfg.frames
    total = patch + blocks * vit_block_flops(cfg) + fusion_flops(cfg)
    return int(total[0]) if single else total


def allocation_gflops(cfg: ADMNConfig, mask: Any, include_controller: bool = True,
                      controller_cfg: ControllerConfig | None = None, present: Any = None) -> float | np.ndarray:
    """GFLOPs per sample under ``mask`` (as :func:`allocation_flops`), plus the controller's."""
    f = allocation_flops(cfg, mask, present)
    if include_controller:
        f = f + controller_flops(controller_cfg or ControllerConfig.for_model(cfg))
    return (f / 1e9) if isinstance(f, np.ndarray) else float(f) / 1e9


def flops_breakdown(cfg: ADMNConfig, mask: Any, controller_cfg: ControllerConfig | None = None) -> dict[str, float]:
    """FLOPs per component of one allocation ``[n, depth]`` (``fusion`` includes ``head``, ``total`` the controller)."""
    m = _to_numpy(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError("flops_breakdown takes a single [n, depth] mask")
    out = {
        "patch_embed": float(_stream_patch_flops(cfg).sum() * cfg.frames),
        "blocks": float(m.sum() * vit_block_flops(cfg) * cfg.frames),
        "fusion": float(fusion_flops(cfg)),
        "head": float(get_task(cfg.task).head_flops(cfg)),
        "controller": float(controller_flops(controller_cfg or ControllerConfig.for_model(cfg))),
    }
    out["total"] = out["patch_embed"] + out["blocks"] + out["fusion"] + out["controller"]
    return out


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)
