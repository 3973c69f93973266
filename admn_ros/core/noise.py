"""Gaussian quality-of-information (QoI) corruption: the paper's noise regimes, one place.

Noise is added to data scaled to [0, 1], then clipped back to [0, 1]:
``x' = clip(x + N(0, sigma^2), 0, 1)``. Per modality, ``sigma`` is drawn by regime:

* ``binary``: 0 or ``sigma_max`` with probability 1/2 each;
* ``discrete``: uniformly from ``sigma_max * {0, 1/3, 2/3, 1}``;
* ``continuous``: uniformly from ``[0, sigma_max]``;
* ``none``: 0.

Sigmas can be drawn *per modality* (the paper: one sigma shared by every node's
stream of that modality) or *per stream* (each node's stream independently, as
when one node's camera fails). ``sigma_max`` per modality lives in
:data:`admn_ros.core.streams.MODALITIES`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from admn_ros.core.streams import MODALITIES, StreamSet

if TYPE_CHECKING:  # pragma: no cover
    import torch

Regime = Literal["none", "binary", "discrete", "continuous"]
REGIMES: tuple[str, ...] = ("none", "binary", "discrete", "continuous")
DrawMode = Literal["stream", "modality"]
DISCRETE_LEVELS: tuple[float, ...] = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)


def check_sigma(sigma: float) -> float:
    """Validate a noise standard deviation (finite, non-negative)."""
    s = float(sigma)
    if not np.isfinite(s) or s < 0.0:
        raise ValueError(f"noise sigma must be finite and >= 0, got {sigma}")
    return s


def draw_sigma(regime: str, sigma_max: float, rng: np.random.Generator) -> float:
    """Draw one sigma for one modality under ``regime``."""
    if regime == "none":
        return 0.0
    if regime == "binary":
        return float(sigma_max) if rng.random() < 0.5 else 0.0
    if regime == "discrete":
        return float(sigma_max) * DISCRETE_LEVELS[int(rng.integers(len(DISCRETE_LEVELS)))]
    if regime == "continuous":
        return float(rng.uniform(0.0, sigma_max))
    raise ValueError(f"unknown noise regime {regime!r}; known: {list(REGIMES)}")


def draw_stream_sigmas(streams: StreamSet, regime: str, rng: np.random.Generator,
                       mode: DrawMode = "stream") -> np.ndarray:
    """Sigmas for every stream of ``streams`` (float32, shape ``(len(streams),)``).

    ``mode="modality"`` draws one sigma per modality shared by all nodes (the paper);
    ``mode="stream"`` draws each stream independently.
    """
    if mode not in ("stream", "modality"):
        raise ValueError(f"unknown draw mode {mode!r}; use 'stream' or 'modality'")
    out = np.zeros(len(streams), dtype=np.float32)
    shared = {m: draw_sigma(regime, MODALITIES[m].sigma_max, rng) for m in streams.modalities}
    for i in range(len(streams)):
        m = streams.modality_of(i)
        out[i] = shared[m] if mode == "modality" else draw_sigma(regime, MODALITIES[m].sigma_max, rng)
    return out


def add_gaussian_noise(x01: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """numpy: ``clip(x + N(0, sigma^2), 0, 1)`` as float32. ``x01`` must already be in [0, 1]."""
    sigma = check_sigma(sigma)
    x = np.asarray(x01, dtype=np.float32)
    if sigma == 0.0:
        return np.clip(x, 0.0, 1.0)
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(x + noise, 0.0, 1.0)


def add_gaussian_noise_torch(x01: "torch.Tensor", sigma: "torch.Tensor",
                             generator: "torch.Generator | None" = None) -> "torch.Tensor":
    """torch: the same corruption, batched. ``sigma`` broadcasts against ``x01``
    (for a batch ``(B, C, H, W)`` pass shape ``(B, 1, 1, 1)``)."""
    import torch

    noise = torch.randn(x01.shape, generator=generator, device=x01.device, dtype=x01.dtype)
    return (x01 + noise * sigma).clamp_(0.0, 1.0)
