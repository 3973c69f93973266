"""The ADMN main network: one adaptive ViT per modality (shared across nodes) + fusion + head.

Data contract (float32 in [0, 1]): ``inputs = {modality: [B, F*S, C, H, W]}`` (frames
frame-major), ``mask`` bool ``[B, n, depth]`` (``n = S * M`` streams, node-major), ``present``
bool ``[B, n]`` or per token ``[B, F*n]``. A stream gets one allocation per window, shared by its
``F`` frames; the fusion sees ``F * n`` tokens (token ``f * n + i`` = frame ``f`` of stream ``i``).
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from admn_ros.core.fusion import DEFAULT_BOUNDS, Fusion
from admn_ros.core.streams import DEFAULT_NODES, DEPTH, MODALITIES, MODALITY_NAMES, StreamGridMixin, StreamSet
from admn_ros.core.tasks import TASKS
from admn_ros.core.vit import AdaptiveViT, broadcast_mask


@dataclass
class ADMNConfig(StreamGridMixin):
    """Architecture of an :class:`ADMNModel` (serialisable with :meth:`to_dict` / :meth:`from_dict`)."""

    RETIRED: ClassVar[Mapping[str, Any]] = {"readout": "spatial", "pos_init_std": 0.02,
                                            "fusion_token_norm": False, "aux_heads": False}

    nodes: tuple[str, ...] = DEFAULT_NODES
    modalities: tuple[str, ...] = MODALITY_NAMES
    frames: int = 1
    img_size: int = 64
    patch: int = 16
    vit_dim: int = 64
    vit_depth: int = DEPTH
    vit_heads: int = 4
    vit_mlp_ratio: float = 4.0
    fusion_dim: int = 64
    fusion_depth: int = 3
    fusion_heads: int = 4
    fusion_mlp_ratio: float = 4.0
    task: str = "tracking"              # a registered task (admn_ros.core.tasks)
    n_classes: int = 27
    #: map-frame box of the Gaussian mean, ((x_min, x_max), (y_min, y_max)) metres
    bounds: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_BOUNDS
    cov_eps: float = 1e-3               # covariance floor eps in L L^T + eps I
    layerdrop: float = 0.0              # training only, ramped by the trainer
    full_drop: float = 0.1              # whole-backbone dropout per stream and sample (training only)
    first_block: bool = True            # block 0 of every present stream always on
    version: int = 1                    # format version of the saved config

    def __post_init__(self) -> None:
        self.nodes = tuple(self.nodes)
        self.modalities = tuple(self.modalities)
        self.bounds = (tuple(map(float, self.bounds[0])), tuple(map(float, self.bounds[1])))  # type: ignore[assignment]
        StreamSet(self.nodes, self.modalities)  # validates names
        if self.task not in TASKS:
            raise ValueError(f"ADMNConfig.task: {self.task!r} is not one of {list(TASKS)}")
        self.frames = int(self.frames)
        for k in ("frames", "img_size", "patch", "vit_dim", "vit_depth", "vit_heads", "fusion_dim", "fusion_depth",
                  "fusion_heads", "n_classes"):
            if not isinstance(getattr(self, k), Integral) or getattr(self, k) < 1:
                raise ValueError(f"ADMNConfig.{k} must be an integer >= 1, got {getattr(self, k)!r}")
        for whole, part in (("vit_dim", "vit_heads"), ("fusion_dim", "fusion_heads"), ("img_size", "patch")):
            if getattr(self, whole) % getattr(self, part):
                raise ValueError(f"ADMNConfig.{whole} {getattr(self, whole)} is not a multiple of {part} "
                                 f"{getattr(self, part)}")

    @property
    def n_tokens(self) -> int:
        return self.frames * self.n_streams

    def channels(self, modality: str) -> int:
        return MODALITIES[modality].channels


def as_present_tensor(present: Any, batch: int, n_streams: int, device: torch.device,
                      frames: int = 1) -> torch.Tensor:
    """``present`` (``None`` = all; per stream ``[B, n]`` / ``[n]``, or per token ``[B, F*n]`` /
    ``[F*n]``) as bool ``[batch, frames * n_streams]``."""
    n_tok = frames * n_streams
    if present is None:
        return torch.ones(batch, n_tok, dtype=torch.bool, device=device)
    p = torch.as_tensor(present).to(device, torch.bool)
    if p.dim() == 1:
        p = p.unsqueeze(0).expand(batch, -1)
    if p.dim() == 2 and p.shape[0] == batch and p.shape[1] == n_streams and frames > 1:
        p = p.repeat(1, frames)
    if tuple(p.shape) != (batch, n_tok):
        want = f"[{batch}, {n_streams}]" + (f" or [{batch}, {n_tok}]" if frames > 1 else "")
        raise ValueError(f"present must have shape {want}, got {list(p.shape)}")
    return p


class ADMNModel(nn.Module):
    """ADMN main network (data contract: the module docstring)."""

    def __init__(self, cfg: ADMNConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ADMNConfig()
        self.backbones = nn.ModuleDict({
            m: AdaptiveViT(cfg.channels(m), cfg.img_size, cfg.patch, cfg.vit_dim, cfg.vit_depth,
                           cfg.vit_heads, cfg.vit_mlp_ratio, cfg.layerdrop, cfg.full_drop,
                           layerdrop_keep_first=cfg.first_block)
            for m in cfg.modalities
        })
        self.fusion = Fusion(cfg.stream_modalities * cfg.frames, cfg.vit_dim, cfg.fusion_dim,
                             cfg.fusion_depth, cfg.fusion_heads, cfg.fusion_mlp_ratio, cfg.task,
                             cfg.n_classes, cfg.bounds, cfg.cov_eps)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def set_layerdrop(self, p: float, full_drop: float | None = None) -> None:
        for b in self.backbones.values():
            b.set_layerdrop(p, full_drop)

    def _check_inputs(self, inputs: Mapping[str, torch.Tensor]) -> int:
        cfg = self.cfg
        missing = [m for m in cfg.modalities if m not in inputs]
        if missing:
            raise KeyError(f"inputs lack modalities {missing}; expected keys {list(cfg.modalities)}")
        for m in cfg.modalities:
            x = inputs[m]
            want = (cfg.frames * len(cfg.nodes), cfg.channels(m), cfg.img_size, cfg.img_size)
            if x.dim() != 5 or tuple(x.shape[1:]) != want:
                raise ValueError(f"inputs[{m!r}] must have shape [B, {', '.join(map(str, want))}], "
                                 f"got {list(x.shape)}")
        batches = {m: int(inputs[m].shape[0]) for m in cfg.modalities}
        if len(set(batches.values())) > 1:
            raise ValueError(f"inputs disagree on batch size: {batches}")
        return batches[cfg.modalities[0]]

    def embed(self, modality: str, x: torch.Tensor, active: Any = None, blend: bool = False) -> torch.Tensor:
        """One modality's backbone on ``[N, C, H, W]`` -> ``[N, vit_dim]``; ``active``: ``[N, depth]``
        or ``None`` (all); ``blend``: the compute-and-blend baseline."""
        bb = self.backbones[modality]
        return bb.forward_blend(x, active) if blend else bb(x, active)

    def backbone_embeddings(self, inputs: Mapping[str, torch.Tensor], mask: Any = None,
                            present: Any = None, blend: bool = False) -> torch.Tensor:
        """Every token's backbone embedding ``[B, F*n, vit_dim]``, skipping blocks per sample;
        missing streams are not computed (zero rows, masked by :meth:`fuse`)."""
        cfg = self.cfg
        b = self._check_inputs(inputs)
        dev = self.device
        # one allocation per window stream, shared by its frames
        mask_t = broadcast_mask(mask, (b, cfg.n_streams, cfg.vit_depth), dev).repeat(1, cfg.frames, 1)
        pres = as_present_tensor(present, b, cfg.n_streams, dev, cfg.frames)
        xs = {m: inputs[m].to(dev) for m in cfg.modalities}
        return embed_tokens(cfg, lambda m, x, rows: self.embed(m, x, rows, blend), xs, mask_t, pres)

    def fuse(self, embeddings: torch.Tensor, present: Any = None) -> dict[str, torch.Tensor]:
        """Fusion + task head on embeddings ``[B, F*n, vit_dim]``: tracking ``{"mean": [B, 2],
        "cov": [B, 2, 2]}``, activity ``{"logits": [B, K]}``."""
        pres = as_present_tensor(present, embeddings.shape[0], self.cfg.n_streams, embeddings.device, self.cfg.frames)
        return self.fusion(embeddings, pres)

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: Any = None, present: Any = None,
                blend: bool = False) -> dict[str, torch.Tensor]:
        emb = self.backbone_embeddings(inputs, mask, present, blend)
        return {**self.fuse(emb, present), "emb": emb}


def embed_tokens(cfg: ADMNConfig, embed: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor],
                 inputs: Mapping[str, torch.Tensor], mask: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Every token's backbone embedding ``[B, F*n, vit_dim]`` from per-token allocations ``mask
    [B, F*n, depth]`` and ``present [B, F*n]``: per modality one ``embed(modality, x [N, C, H, W],
    allocation rows [N, depth])`` call on its present tokens; missing tokens are zero rows."""
    b, s, n_mod = mask.shape[0], cfg.frames * len(cfg.nodes), len(cfg.modalities)
    mask = mask.reshape(b, s, n_mod, cfg.vit_depth)
    present = present.reshape(b, s, n_mod)
    outs = []
    for mi, m in enumerate(cfg.modalities):
        x = inputs[m].reshape(b * s, *inputs[m].shape[2:])
        rows, p = mask[:, :, mi].reshape(b * s, cfg.vit_depth), present[:, :, mi].reshape(b * s)
        if bool(p.all()):
            e = embed(m, x, rows)
        else:
            e = x.new_zeros(b * s, cfg.vit_dim)
            idx = p.nonzero().squeeze(1)
            if idx.numel():
                e = e.index_copy(0, idx, embed(m, x.index_select(0, idx), rows.index_select(0, idx)))
        outs.append(e.reshape(b, s, cfg.vit_dim))
    return torch.stack(outs, dim=2).reshape(b, cfg.n_tokens, cfg.vit_dim)


def random_inputs(cfg: ADMNConfig, batch: int = 1, generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Uniform-random inputs following the data contract (tests, benchmarks, ONNX export)."""
    return {m: torch.rand(batch, cfg.frames * len(cfg.nodes), cfg.channels(m), cfg.img_size, cfg.img_size,
                          generator=generator).to(device)
            for m in cfg.modalities}

