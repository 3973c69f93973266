"""Preprocessing: nearest pixel-centre subsampling, scaling, storage round trip, errors."""
from __future__ import annotations

import numpy as np
import pytest

from admn_ros.core.noise import add_gaussian_noise
from admn_ros.core.preprocess import (MODEL_INPUT, STORAGE_DTYPES, from_storage, sample_indices, subsample,
                                      to_model_input, to_storage)
from admn_ros.core.streams import DEPTH_MAX_M


def _rgb(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _depth(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).integers(0, 10000, (h, w)).astype(np.uint16)
    d[:5] = 0
    return d


def _radar(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.2, 1.2, (64, 64)).astype(np.float32)


def test_model_input_size() -> None:
    assert MODEL_INPUT == 64


def test_sample_indices_are_pixel_centres() -> None:
    np.testing.assert_array_equal(sample_indices(320), 2 + 5 * np.arange(64))
    np.testing.assert_array_equal(sample_indices(240), np.floor((np.arange(64) + 0.5) * 3.75))
    np.testing.assert_array_equal(sample_indices(64), np.arange(64))
    assert sample_indices(32).max() == 31  # upsampling repeats pixels


def test_subsample_picks_pixels() -> None:
    img = _rgb()
    s = subsample(img)
    assert s.shape == (64, 64, 3)
    assert np.array_equal(s[10, 20], img[sample_indices(240)[10], sample_indices(320)[20]])


@pytest.mark.parametrize("modality, data, c", [("rgb", _rgb(), 3), ("depth", _depth(), 1),
                                               ("radar", _radar(), 1)])
def test_shapes_and_ranges(modality: str, data: np.ndarray, c: int) -> None:
    x = to_model_input(modality, data)
    assert x.shape == (c, 64, 64) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_rgb_scaling_and_channel_order() -> None:
    img = np.zeros((48, 96, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 51, 0
    x = to_model_input("rgb", img)
    np.testing.assert_allclose(x[:, 0, 0], [1.0, 0.2, 0.0], atol=1e-7)


def test_depth_scaling_zero_stays_zero_and_far_clips() -> None:
    d = np.full((240, 320), 4000, np.uint16)
    d[:120] = 0
    d[-10:] = 12000
    x = to_model_input("depth", d)
    assert x[0, 0, 0] == 0.0
    assert x[0, 40, 0] == pytest.approx(4000 / (DEPTH_MAX_M * 1000))
    assert x[0, -1, 0] == 1.0


def test_depth_float_metres_matches_millimetres() -> None:
    mm = _depth()
    metres = mm.astype(np.float32) / 1000.0
    metres[mm == 0] = np.nan  # REP-118: NaN = invalid in 32FC1
    np.testing.assert_array_equal(to_model_input("depth", metres), to_model_input("depth", mm))
    metres[0, 0] = np.inf
    metres[100, 100] = -1.0
    assert to_model_input("depth", metres).min() == 0.0
    np.testing.assert_array_equal(to_storage("depth", metres), to_storage("depth", mm))


def test_depth_accepts_trailing_channel() -> None:
    d = _depth()
    np.testing.assert_array_equal(to_model_input("depth", d[..., None]), to_model_input("depth", d))


def test_radar_clipped() -> None:
    r = _radar()
    x = to_model_input("radar", r)
    np.testing.assert_array_equal(x[0], np.clip(r, 0, 1))


def test_noise_statistics_survive_subsampling() -> None:
    rng = np.random.default_rng(0)
    clean = np.full((240, 320), 0.5, np.float32)
    noisy = add_gaussian_noise(clean, 0.1, rng)
    x = to_model_input("radar", noisy)
    assert np.std(x) == pytest.approx(np.std(noisy), rel=0.05)
    assert np.std(x) == pytest.approx(0.1, rel=0.05)


@pytest.mark.parametrize("modality, data", [("rgb", _rgb()), ("depth", _depth()), ("radar", _radar())])
def test_storage_round_trip(modality: str, data: np.ndarray) -> None:
    st = to_storage(modality, data)
    assert st.dtype == STORAGE_DTYPES[modality]
    assert st.shape == ((3, 64, 64) if modality == "rgb" else (64, 64))
    back = from_storage(modality, st)
    want = to_model_input(modality, data)
    if modality == "radar":
        np.testing.assert_allclose(back, want, atol=1e-3)
    else:
        np.testing.assert_array_equal(back, want)
    batch = from_storage(modality, np.stack([st, st]))
    assert batch.shape == (2, *want.shape)


@pytest.mark.parametrize("modality, data, match", [
    ("rgb", np.zeros((240, 320), np.uint8), r"rgb.*\(H, W, 3\)"),
    ("rgb", np.zeros((240, 320, 3), np.float32), "rgb.*uint8"),
    ("rgb", np.zeros((240, 320, 4), np.uint8), "rgb"),
    ("depth", np.zeros((240, 320), np.int32), "depth.*uint16"),
    ("depth", np.zeros((2, 240, 320), np.uint16), "depth.*2-D"),
    ("radar", np.zeros((64, 64), np.uint8), "radar.*float"),
    ("radar", np.full((64, 64), np.nan, np.float32), "radar.*NaN"),
    ("lidar", np.zeros((64, 64), np.float32), "unknown modality"),
    ("rgb", np.zeros((0, 0, 3), np.uint8), "empty"),
])
def test_bad_input_raises(modality: str, data: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        to_model_input(modality, data)


def test_from_storage_checks_dtype_and_shape() -> None:
    with pytest.raises(ValueError, match="depth.*uint16"):
        from_storage("depth", np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="rgb.*shape"):
        from_storage("rgb", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="radar.*NaN"):
        from_storage("radar", np.full((64, 64), np.nan, np.float16))
