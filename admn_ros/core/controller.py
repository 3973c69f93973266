"""The ADMN controller: per-stream QoI encoders -> transformer -> per-(stream, block) logits
``[B, n, depth]``, sorted along :func:`~admn_ros.core.streams.spread_order` so a top-L selection runs
a prefix of it, and the estimated noise ``sigma [B, n]`` (missing streams masked as keys).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from admn_ros.core.streams import (DEFAULT_NODES, DEPTH, MODALITIES, MODALITY_NAMES, StreamGridMixin, StreamSet,
                                  budget_from_fraction, spread_order, validate_budget)
from admn_ros.core.vit import Block, init_linear


@dataclass
class ControllerConfig(StreamGridMixin):
    """Controller architecture and selection settings; the stream grid and depth match the main model's."""

    RETIRED: ClassVar[Mapping[str, Any]] = {"gumbel_scale": 0.1, "tau": 1.0, "prior": "none", "prior_scale": 1.0,
                                            "prior_counts": [], "block_order": "spread"}
    #: Saved before they existed, a controller had no prior and chose any block of a stream.
    LEGACY_DEFAULTS: ClassVar[Mapping[str, Any]] = {"prior": "none", "block_order": "free"}

    nodes: tuple[str, ...] = DEFAULT_NODES
    modalities: tuple[str, ...] = MODALITY_NAMES
    depth: int = DEPTH
    img_size: int = 64
    dim: int = 32
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    conv_channels: tuple[int, int, int] = (4, 8, 16)   # of the three QoI convolutions
    budget: int = 27                                 # default L, forced blocks included
    universal: bool = False
    first_block: bool = True
    autoencoder: bool = False

    def __post_init__(self) -> None:
        self.nodes = tuple(self.nodes)
        self.modalities = tuple(self.modalities)
        self.conv_channels = tuple(int(c) for c in self.conv_channels)  # type: ignore[assignment]
        if len(self.conv_channels) != 3:
            raise ValueError(f"ControllerConfig.conv_channels needs 3 values, got {self.conv_channels}")
        if self.img_size % 16:
            raise ValueError(f"ControllerConfig.img_size must be a multiple of 16, got {self.img_size}")
        StreamSet(self.nodes, self.modalities)
        validate_budget(self.budget, self.n_streams, self.depth, self.first_block)

    @classmethod
    def for_model(cls, model_cfg: Any, **overrides: Any) -> "ControllerConfig":
        """The config matching an :class:`~admn_ros.core.model.ADMNConfig`; default budget 25% of all blocks."""
        n, m = model_cfg.n_streams, model_cfg
        budget = max(n if m.first_block else 0, budget_from_fraction(0.25, n, m.vit_depth))
        return cls(**{"nodes": m.nodes, "modalities": m.modalities, "depth": m.vit_depth, "img_size": m.img_size,
                      "first_block": m.first_block, "budget": budget, **overrides})


def _budget_tensor(budget: int | Sequence[int] | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    b = torch.as_tensor(budget, device=device).long()
    if b.dim() == 0:
        b = b.expand(batch)
    if b.shape != (batch,):
        raise ValueError(f"budget must be an int or have shape [{batch}], got {list(b.shape)}")
    return b


def select_blocks(logits: torch.Tensor, budget: int | Sequence[int] | torch.Tensor,
                  present: torch.Tensor | None = None, first_block: bool = True, gumbel_scale: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Logits ``[B, n, depth]`` -> a 0/1 float mask with ``L`` blocks per sample (int or ``[B]``;
    fewer when missing streams leave fewer). ``gumbel_scale > 0`` samples an allocation (top-k of
    Gumbel-perturbed logits). ValueError if ``L`` is below the forced first blocks."""
    b, n, depth = logits.shape
    dev = logits.device
    pres = torch.ones(b, n, dtype=torch.bool, device=dev) if present is None else present.to(dev, torch.bool)
    forced = torch.zeros(b, n, depth, dtype=torch.bool, device=dev)
    if first_block:
        forced[:, :, 0] = pres
    cand = (pres[:, :, None] & ~forced).reshape(b, n * depth)
    forced_flat = forced.reshape(b, n * depth)
    n_forced = forced_flat.sum(1)
    L = _budget_tensor(budget, b, dev)
    if bool((L < n_forced).any()):
        bad = int(L[(L < n_forced)][0])
        raise ValueError(f"budget {bad} is below the {int(n_forced.max())} forced first blocks "
                         "(first-block rule: block 0 of every present stream is on and counted)")
    k = torch.minimum(L - n_forced, cand.sum(1))  # [B]
    scores = logits.reshape(b, n * depth)
    if gumbel_scale > 0:
        gen_dev = generator.device if generator is not None else dev
        u = torch.rand(scores.shape, generator=generator, device=gen_dev).to(dev).clamp_(1e-10, 1.0 - 1e-7)
        scores = scores + gumbel_scale * -torch.log(-torch.log(u))
    scores = scores.masked_fill(~cand, torch.finfo(scores.dtype).min)
    order = torch.sort(scores.detach(), dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order).scatter_(1, order, torch.arange(n * depth, device=dev).expand(b, -1))
    hard = (ranks < k[:, None]) & cand
    return (hard | forced_flat).to(logits.dtype).reshape(b, n, depth)


def spread_free_blocks(depth: int, first_block: bool = True) -> torch.Tensor:
    """The selectable blocks of a stream in :func:`~admn_ros.core.streams.spread_order`
    (block 0 left out when it is forced), as a ``long`` index tensor."""
    order = spread_order(depth)  # starts with block 0
    return torch.tensor(order[1:] if first_block else order, dtype=torch.long)


def spread_ordered(logits: torch.Tensor, first_block: bool = True, free: torch.Tensor | None = None) -> torch.Tensor:
    """Per stream, the selectable logits sorted descending along ``spread_order`` (a forced block 0
    keeps its value); a ``1e-5 * rank`` offset breaks ties, so any top-k is a prefix of the order.
    ``free``: the :func:`spread_free_blocks` index (a buffer keeps traced graphs constant-free)."""
    if free is None:
        free = spread_free_blocks(logits.shape[-1], first_block).to(logits.device)
    vals = logits.index_select(-1, free).sort(dim=-1, descending=True).values
    vals = vals - 1e-5 * torch.arange(free.shape[0], device=logits.device, dtype=logits.dtype)
    return logits.index_copy(-1, free, vals)


class QoIEncoder(nn.Module):
    """``[N, C, 64, 64]`` -> ``[N, dim]``: three strided convs (k4/s4, k2/s2, k2/s2), global mean,
    linear; cheap on purpose."""

    def __init__(self, in_chans: int, channels: Sequence[int], dim: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(in_chans, c1, 4, 4)
        self.conv2 = nn.Conv2d(c1, c2, 2, 2)
        self.conv3 = nn.Conv2d(c2, c3, 2, 2)
        self.fc = nn.Linear(c3, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv1(x * 2.0 - 1.0))
        h = F.gelu(self.conv2(h))
        h = F.gelu(self.conv3(h))
        return self.fc(h.mean(dim=(2, 3)))


class QoIDecoder(nn.Module):
    """ADMN_AE decoder: token ``[N, dim]`` -> image ``[N, C, H, W]`` in [0, 1] (mirror of the encoder)."""

    def __init__(self, out_chans: int, channels: Sequence[int], dim: int, img_size: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.side = img_size // 16
        self.c3 = c3
        self.fc = nn.Linear(dim, c3 * self.side * self.side)
        self.up3 = nn.ConvTranspose2d(c3, c2, 2, 2)
        self.up2 = nn.ConvTranspose2d(c2, c1, 2, 2)
        self.up1 = nn.ConvTranspose2d(c1, out_chans, 4, 4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, self.c3, self.side, self.side)
        h = F.gelu(self.up3(h))
        h = F.gelu(self.up2(h))
        return torch.sigmoid(self.up1(h))


class AllocationHead(nn.Module):
    """Stream tokens ``[B, n, dim]`` -> logits ``[B, n, depth]``; ``universal``: a FiLM of the
    tokens by the budget fraction ``[B]``."""

    def __init__(self, dim: int, depth: int, universal: bool) -> None:
        super().__init__()
        self.universal = universal
        if universal:
            self.budget_mlp = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, 2 * dim))
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, depth)

    def forward(self, tok: torch.Tensor, budget_frac: torch.Tensor | None = None) -> torch.Tensor:
        if self.universal:
            if budget_frac is None:
                raise ValueError("a universal controller needs the budget fraction")
            gamma, beta = self.budget_mlp(budget_frac.reshape(-1, 1).to(tok.dtype)).chunk(2, dim=-1)
            tok = tok * (1.0 + gamma[:, None, :]) + beta[:, None, :]
        return self.fc2(F.gelu(self.fc1(tok)))


class AllocationController(nn.Module):
    """ADMN controller: ``allocate(inputs, present, budget)["mask"]`` is ``[B, n, depth]``.
    The QoI encoders are per modality, shared across nodes."""

    def __init__(self, cfg: ControllerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ControllerConfig()
        self.stream_modalities = cfg.stream_modalities
        self.encoders = nn.ModuleDict({m: QoIEncoder(MODALITIES[m].channels, cfg.conv_channels, cfg.dim)
                                       for m in cfg.modalities})
        self.stream_emb = nn.Parameter(torch.zeros(1, cfg.n_streams, cfg.dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        nn.init.trunc_normal_(self.stream_emb, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.layers = nn.ModuleList([Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.alloc_head = AllocationHead(cfg.dim, cfg.depth, cfg.universal)
        self.noise_head = nn.Sequential(nn.Linear(cfg.dim, cfg.dim), nn.GELU(), nn.Linear(cfg.dim, 1))
        self.decoders = nn.ModuleDict({m: QoIDecoder(MODALITIES[m].channels, cfg.conv_channels, cfg.dim, cfg.img_size)
                                       for m in cfg.modalities}) if cfg.autoencoder else None
        for mod in (self.layers, self.alloc_head, self.noise_head, self.encoders):
            mod.apply(init_linear)
        self.register_buffer("spread_free", spread_free_blocks(cfg.depth, cfg.first_block), persistent=False)

    def budget_fraction(self, budget: int | Sequence[int] | torch.Tensor, batch: int) -> torch.Tensor:
        """``L / (n * depth)`` as float ``[B]``."""
        total = float(self.cfg.n_streams * self.cfg.depth)
        return _budget_tensor(budget, batch, self.stream_emb.device).float() / total

    def encode(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None) -> torch.Tensor:
        """Stream tokens ``[B, n, dim]``; a window of frames (``[B, F*S, C, H, W]``, frame-major)
        is judged on its newest frame: one allocation per window and stream."""
        cfg = self.cfg
        b, s = inputs[cfg.modalities[0]].shape[0], len(cfg.nodes)
        toks = [self.encoders[m](inputs[m][:, -s:].reshape(b * s, *inputs[m].shape[2:])).reshape(b, s, cfg.dim)
                for m in cfg.modalities]   # [:, -s:]: the newest frame (all of a single-frame input)
        tok = torch.stack(toks, dim=2).reshape(b, cfg.n_streams, cfg.dim) + self.stream_emb
        x = torch.cat([self.cls.expand(b, -1, -1), tok], dim=1)
        attend = None
        if present is not None:
            keys = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=x.device), present.to(x.device, torch.bool)], 1)
            attend = keys[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attend)
        return self.norm(x)[:, 1:]

    def forward(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None,
                budget: int | Sequence[int] | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"logits": [B, n, depth], "sigma": [B, n], "tokens": [B, n, dim]}``; ``budget`` matters
        only for ``universal``."""
        tok = self.encode(inputs, present)
        frac = self.budget_fraction(self.cfg.budget if budget is None else budget, tok.shape[0])
        logits, sigma = self.heads(tok, frac)
        return {"logits": logits, "sigma": sigma, "tokens": tok}

    def heads(self, tok: torch.Tensor, budget_frac: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.alloc_head(tok, budget_frac if self.cfg.universal else None)
        logits = spread_ordered(logits, self.cfg.first_block, self.spread_free)
        sigma = F.softplus(self.noise_head(tok).squeeze(-1))
        return logits, sigma

    def allocate(self, inputs: Mapping[str, torch.Tensor], present: torch.Tensor | None = None,
                 budget: int | Sequence[int] | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """:meth:`forward` plus ``"mask"`` from :func:`select_blocks`."""
        out = self.forward(inputs, present, budget)
        out["mask"] = select_blocks(out["logits"], self.cfg.budget if budget is None else budget, present,
                                    self.cfg.first_block)
        return out

    def noise_loss(self, sigma_pred: torch.Tensor, sigma_true: torch.Tensor,
                   modality_weights: Mapping[str, float] | None = None) -> torch.Tensor:
        """The mean of ``w * |pred - true|`` over ``[B, n]``; ``modality_weights`` e.g.
        ``{"depth": 20.0}`` (the authors weight depth x20)."""
        w = torch.tensor([float((modality_weights or {}).get(m, 1.0)) for m in self.stream_modalities],
                         device=sigma_pred.device, dtype=sigma_pred.dtype)
        return ((sigma_pred - sigma_true.to(sigma_pred)).abs() * w).mean()

    def reconstruct(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """ADMN_AE: reconstructions per modality ``[B, S, C, H, W]`` from the stream tokens."""
        if self.decoders is None:
            raise RuntimeError("this controller has no decoder: build it with ControllerConfig(autoencoder=True)")
        cfg = self.cfg
        tok = self.encode(inputs)
        b, s = tok.shape[0], len(cfg.nodes)
        tok = tok.reshape(b, s, len(cfg.modalities), cfg.dim)
        return {m: self.decoders[m](tok[:, :, mi].reshape(b * s, cfg.dim)).reshape(inputs[m].shape)
                for mi, m in enumerate(cfg.modalities)}

    def reconstruction_loss(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """ADMN_AE loss: MSE of :meth:`reconstruct` against the (noisy) newest frame, averaged over the streams."""
        cfg = self.cfg
        inputs = {m: x[:, -len(cfg.nodes):] for m, x in inputs.items()}
        rec = self.reconstruct(inputs)
        b, s = inputs[cfg.modalities[0]].shape[:2]
        tot = sum((rec[m] - inputs[m]).pow(2).mean(dim=(2, 3, 4)).sum() for m in cfg.modalities)   # [B, S] each
        return tot / float(b * s * len(cfg.modalities))

    def freeze_encoder(self, frozen: bool = True) -> None:
        """ADMN_AE stage 2: freeze everything but the allocation head (``frozen=False`` undoes it)."""
        for name, p in self.named_parameters():
            p.requires_grad_(not frozen or name.startswith("alloc_head."))
