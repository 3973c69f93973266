"""Sensor data -> model input (float32 ``(C, 64, 64)`` in [0, 1]) and the dataset storage: nearest
pixel-centre subsampling, no averaging, and the scaling to [0, 1] of docs/DATASET.md.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from admn_ros.core.streams import DEPTH_MAX_M, MODALITIES

#: Side of the square model input (pixels).
MODEL_INPUT: int = 64
#: Dataset storage dtype per modality.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "rgb": np.dtype(np.uint8), "depth": np.dtype(np.uint16), "radar": np.dtype(np.float16),
}
_DEPTH_SCALE_MM = DEPTH_MAX_M * 1000.0


@lru_cache(maxsize=64)
def sample_indices(n_in: int, n_out: int = MODEL_INPUT) -> np.ndarray:
    """Pixel-centre nearest indices ``floor((i + 0.5) * n_in / n_out)`` (read-only intp array)."""
    if n_in <= 0 or n_out <= 0:
        raise ValueError(f"cannot subsample {n_in} pixels to {n_out}")
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    idx = np.minimum(idx, n_in - 1)
    idx.setflags(write=False)
    return idx


def subsample(img: np.ndarray, size: int = MODEL_INPUT) -> np.ndarray:
    """Nearest pixel-centre subsampling of the first two axes to ``size x size``."""
    return img[sample_indices(img.shape[0], size)[:, None], sample_indices(img.shape[1], size)[None, :]]


def _check_modality(modality: str) -> None:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(MODALITIES)}")


def _validate(modality: str, data: np.ndarray) -> np.ndarray:
    """Raw sensor data, checked (depth and radar squeezed to 2-D)."""
    _check_modality(modality)
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{modality}: expected a numpy array, got {type(data).__name__}")
    if data.size == 0:
        raise ValueError(f"{modality}: empty array of shape {data.shape}")
    if modality == "rgb":
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[2] != 3:
            raise ValueError(f"rgb: expected uint8 (H, W, 3) rgb8 data, got {data.dtype} {data.shape}")
        return data
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim != 2:
        raise ValueError(f"{modality}: expected a 2-D (H, W) array, got shape {data.shape}")
    if modality == "depth":
        if data.dtype == np.uint16 or np.issubdtype(data.dtype, np.floating):
            return data
        raise ValueError(f"depth: expected uint16 millimetres (16UC1) or float32 metres (32FC1), "
                         f"got {data.dtype}")
    # radar
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"radar: expected a float heatmap, got {data.dtype}")
    if np.isnan(data).any():
        raise ValueError(f"radar: heatmap contains NaN ({int(np.isnan(data).sum())} values)")
    return data


def _depth_m_to_mm(d: np.ndarray) -> np.ndarray:
    """float metres (32FC1) -> uint16 mm, invalid (non-finite or <= 0) -> 0, saturating."""
    d = np.asarray(d, np.float64)
    ok = np.isfinite(d) & (d > 0)
    mm = np.where(ok, np.rint(np.where(ok, d, 0.0) * 1000.0), 0.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def to_storage(modality: str, data: np.ndarray) -> np.ndarray:
    """Raw sensor data -> storage: rgb uint8 ``(3, 64, 64)``, depth uint16 mm / radar float16 ``(64, 64)``."""
    data = _validate(modality, data)
    small = subsample(data)
    if modality == "rgb":
        return np.ascontiguousarray(np.transpose(small, (2, 0, 1)))
    if modality == "depth":
        return small.copy() if small.dtype == np.uint16 else _depth_m_to_mm(small)
    return np.clip(small, 0.0, 1.0).astype(np.float16)


def from_storage(modality: str, stored: np.ndarray) -> np.ndarray:
    """Storage arrays (any leading axes) -> float32 model input with a channel axis."""
    _check_modality(modality)
    stored = np.asarray(stored)
    want = STORAGE_DTYPES[modality]
    if stored.dtype != want:
        raise ValueError(f"{modality}: stored data must be {want}, got {stored.dtype}")
    tail = (3, MODEL_INPUT, MODEL_INPUT) if modality == "rgb" else (MODEL_INPUT, MODEL_INPUT)
    if stored.shape[-len(tail):] != tail:
        raise ValueError(f"{modality}: stored data must end with shape {tail}, got {stored.shape}")
    if modality == "radar" and np.isnan(stored).any():
        raise ValueError("radar: stored heatmap contains NaN")
    x = to_unit(modality, stored)
    return x if modality == "rgb" else x[..., None, :, :]


def to_unit(modality: str, data: np.ndarray) -> np.ndarray:
    """Sensor-dtype values of any shape -> float32 in [0, 1] (docs/DATASET.md; depth mm saturate at 1)."""
    if modality == "rgb":
        return data.astype(np.float32) * np.float32(1.0 / 255.0)
    if modality == "depth":
        return np.minimum(data.astype(np.float32) * np.float32(1.0 / _DEPTH_SCALE_MM), 1.0)
    return np.clip(data.astype(np.float32), 0.0, 1.0)


def from_unit(modality: str, x01: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_unit` back to the sensor dtype (uint8 / uint16 mm / float32), rounding."""
    x = np.clip(x01, 0.0, 1.0)
    if modality == "rgb":
        return (x * 255.0 + 0.5).astype(np.uint8)
    if modality == "depth":
        return (x * _DEPTH_SCALE_MM + 0.5).astype(np.uint16)
    return x.astype(np.float32)


def to_model_input(modality: str, data: np.ndarray) -> np.ndarray:
    """Raw sensor data -> float32 ``(C, 64, 64)`` in [0, 1], what the dataset storage gives (radar
    without its float16 rounding); ValueError naming a bad input."""
    if modality == "radar":
        return np.clip(subsample(_validate(modality, data)).astype(np.float32), 0.0, 1.0)[None]
    return from_storage(modality, to_storage(modality, data))
