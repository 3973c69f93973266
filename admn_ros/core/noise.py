"""Gaussian quality-of-information (QoI) corruption, the paper's noise regimes:
``x' = clip(x + N(0, sigma^2), 0, 1)`` on data in [0, 1], with ``sigma`` per modality 0 or
``sigma_max`` (binary), one of ``sigma_max * {0, 1/3, 2/3, 1}`` (discrete) or uniform in
``[0, sigma_max]`` (continuous). Drawn per modality (the paper: shared by every node's
stream of it) or per stream (as when one node's camera fails).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from admn_ros.core.streams import MODALITIES, StreamSet

REGIMES: tuple[str, ...] = ("none", "binary", "discrete", "continuous")
DrawMode = Literal["stream", "modality"]
DISCRETE_LEVELS: tuple[float, ...] = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)


def check_sigma(sigma: float) -> float:
    s = float(sigma)
    if not np.isfinite(s) or s < 0.0:
        raise ValueError(f"noise sigma must be finite and >= 0, got {sigma}")
    return s


def draw_sigma(regime: str, sigma_max: float, rng: np.random.Generator) -> float:
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
    """Sigmas for every stream (float32 ``(len(streams),)``), one per modality or per stream."""
    if mode not in ("stream", "modality"):
        raise ValueError(f"unknown draw mode {mode!r}; use 'stream' or 'modality'")
    shared = {m: draw_sigma(regime, MODALITIES[m].sigma_max, rng) for m in streams.modalities}
    return np.array([shared[m] if mode == "modality" else draw_sigma(regime, MODALITIES[m].sigma_max, rng)
                     for m in map(streams.modality_of, range(len(streams)))], np.float32)


def add_gaussian_noise(x01: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(x01 + N(0, sigma^2), 0, 1)`` as float32."""
    sigma = check_sigma(sigma)
    x = np.asarray(x01, dtype=np.float32)
    if sigma == 0.0:
        return np.clip(x, 0.0, 1.0)
    noise = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(x + noise, 0.0, 1.0)
