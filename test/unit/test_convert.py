"""admn_ros.ros.convert: numpy <-> sensor_msgs/Image, mask <-> LayerAllocation, stamps.

Pure Python (message classes only, no rclpy.init, no DDS)."""
from __future__ import annotations

import array
import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from admn_ros.ros import convert as cv
from admn_ros.core.streams import DEPTH, StreamSet, naive_allocation

RNG = np.random.default_rng(0)


def _arr(encoding: str, h: int = 7, w: int = 5) -> np.ndarray:
    info = cv.ENCODINGS[encoding]
    shape = (h, w) if info.channels == 1 else (h, w, info.channels)
    if info.is_float:
        return RNG.standard_normal(shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(info.dtype).max, size=shape, dtype=info.dtype)


# ------------------------------------------------------------------ image round trips

@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "16UC1", "32FC1"])
def test_image_round_trip(encoding):
    a = _arr(encoding)
    msg = cv.numpy_to_image(a, encoding, stamp=12.5, frame_id="node1_color_optical_frame")
    info = cv.ENCODINGS[encoding]
    assert msg.encoding == encoding
    assert (msg.height, msg.width) == a.shape[:2]
    assert msg.step == a.shape[1] * info.channels * info.dtype.itemsize
    assert len(msg.data) == msg.height * msg.step
    assert msg.is_bigendian == (1 if np.little_endian is False else 0)
    assert isinstance(msg.data, array.array)
    assert msg.header.frame_id == "node1_color_optical_frame"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 500_000_000)
    b = cv.image_to_numpy(msg)
    assert b.dtype == info.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_single_channel_with_trailing_axis_and_noncontiguous():
    a = _arr("16UC1", 6, 8)
    msg = cv.numpy_to_image(a[:, :, None], "16UC1")
    np.testing.assert_array_equal(cv.image_to_numpy(msg), a)
    rgb = _arr("rgb8", 6, 8)
    view = rgb[:, ::2]  # non-contiguous
    np.testing.assert_array_equal(cv.image_to_numpy(cv.numpy_to_image(view, "rgb8")), view)


def test_decode_row_padding():
    a = _arr("16UC1", 4, 3)
    pad = 10
    rows = [a[i].tobytes() + bytes(pad) for i in range(4)]
    msg = Image(height=4, width=3, encoding="16UC1", is_bigendian=0, step=3 * 2 + pad)
    msg.data = b"".join(rows)
    out = cv.image_to_numpy(msg)
    np.testing.assert_array_equal(out, a)
    rgb = _arr("rgb8", 3, 5)
    msg = Image(height=3, width=5, encoding="rgb8", step=16)
    msg.data = b"".join(rgb[i].tobytes() + b"\x07" for i in range(3))
    np.testing.assert_array_equal(cv.image_to_numpy(msg), rgb)


@pytest.mark.parametrize("encoding,dtype", [("16UC1", ">u2"), ("32FC1", ">f4")])
def test_decode_big_endian(encoding, dtype):
    a = _arr(encoding, 3, 4)
    msg = Image(height=3, width=4, encoding=encoding, is_bigendian=1, step=4 * 4 if dtype == ">f4" else 8)
    msg.data = a.astype(dtype).tobytes()
    out = cv.image_to_numpy(msg)
    assert out.dtype == cv.ENCODINGS[encoding].dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_zero_copy_view_and_copy_flag():
    a = _arr("mono8")
    msg = cv.numpy_to_image(a, "mono8")
    view = cv.image_to_numpy(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    copied = cv.image_to_numpy(msg, copy=True)
    assert not np.shares_memory(copied, np.frombuffer(msg.data, np.uint8))


def test_desired_encoding_conversions():
    rgb = _arr("rgb8")
    msg = cv.numpy_to_image(rgb, "rgb8")
    np.testing.assert_array_equal(cv.image_to_numpy(msg, "bgr8"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(cv.image_to_numpy(msg, "rgb8"), rgb)
    mono = _arr("mono8")
    out = cv.image_to_numpy(cv.numpy_to_image(mono, "mono8"), "rgb8")
    assert out.shape == mono.shape + (3,)
    np.testing.assert_array_equal(out[:, :, 2], mono)
    with pytest.raises(ValueError, match="cannot convert image encoding '16UC1' to 'rgb8'"):
        cv.image_to_numpy(cv.numpy_to_image(_arr("16UC1"), "16UC1"), "rgb8")
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        cv.image_to_numpy(msg, "yuv422")


def test_nonfinite_float_allowed_by_default_and_rejected_on_request():
    a = np.ones((3, 3), np.float32)
    a[0, 0], a[1, 1], a[2, 2] = np.nan, np.inf, -np.inf
    msg = cv.numpy_to_image(a, "32FC1")  # REP-117/118: allowed
    out = cv.image_to_numpy(msg)
    assert np.isnan(out[0, 0]) and np.isposinf(out[1, 1]) and np.isneginf(out[2, 2])
    with pytest.raises(ValueError, match=r"contains 3 NaN/inf value\(s\)"):
        cv.numpy_to_image(a, "32FC1", allow_nonfinite=False)
    with pytest.raises(ValueError, match=r"image_to_numpy: 32FC1 image contains 3 NaN/inf"):
        cv.image_to_numpy(msg, allow_nonfinite=False)


# ------------------------------------------------------------------ image errors

def test_encode_errors():
    with pytest.raises(ValueError, match=r"unsupported image encoding 'rgba8'; supported: \["):
        cv.numpy_to_image(_arr("rgb8"), "rgba8")
    with pytest.raises(ValueError, match=r"encoding 'rgb8' needs dtype uint8 \(H, W, 3\), got dtype float32"):
        cv.numpy_to_image(_arr("rgb8").astype(np.float32), "rgb8")
    with pytest.raises(ValueError, match=r"encoding '16UC1' needs dtype uint16"):
        cv.numpy_to_image(np.zeros((2, 2), np.int32), "16UC1")
    with pytest.raises(ValueError, match=r"encoding 'rgb8' needs shape \(H, W, 3\), got \(4, 4\)"):
        cv.numpy_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match=r"encoding 'mono8' needs shape \(H, W\), got \(4, 4, 3\)"):
        cv.numpy_to_image(np.zeros((4, 4, 3), np.uint8), "mono8")
    with pytest.raises(ValueError, match=r"cannot encode an empty image \(shape \(0, 4\)\)"):
        cv.numpy_to_image(np.zeros((0, 4), np.uint8), "mono8")


def test_decode_errors():
    good = cv.numpy_to_image(_arr("16UC1", 4, 4), "16UC1")
    bad = Image(height=4, width=4, encoding="yuv422", step=8)
    bad.data = bytes(32)
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        cv.image_to_numpy(bad)
    short = Image(height=4, width=4, encoding="16UC1", step=8)
    short.data = bytes(30)
    with pytest.raises(ValueError, match=r"size mismatch: height\*step = 4\*8 = 32 != len\(data\) = 30"):
        cv.image_to_numpy(short)
    narrow = Image(height=4, width=4, encoding="16UC1", step=6)
    narrow.data = bytes(24)
    with pytest.raises(ValueError, match=r"step 6 is smaller than width\*bytes_per_pixel = 4\*2 = 8"):
        cv.image_to_numpy(narrow)
    empty = Image(height=0, width=4, encoding="mono8", step=4)
    with pytest.raises(ValueError, match=r"empty mono8 image: height=0 width=4 len\(data\)=0"):
        cv.image_to_numpy(empty)
    nodata = Image(height=2, width=2, encoding="mono8", step=2)
    with pytest.raises(ValueError, match=r"empty mono8 image: .*len\(data\)=0"):
        cv.image_to_numpy(nodata)
    assert cv.image_to_numpy(good).shape == (4, 4)


# ------------------------------------------------------------------ depth units

def test_depth_mm_conversion():
    m = np.array([[0.0, 1.2345, np.nan], [np.inf, -1.0, 70.0]], np.float32)
    mm = cv.depth_m_to_mm16(m)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[0, 1234, 0], [0, 0, 0]])  # 1.2345 m -> 1234 (float32 rint)
    back = cv.depth_mm16_to_m(np.array([[0, 1500]], np.uint16))
    assert np.isnan(back[0, 0]) and back[0, 1] == pytest.approx(1.5)


# ------------------------------------------------------------------ stamps

def test_stamp_helpers():
    t = cv.seconds_to_stamp(1.25)
    assert (t.sec, t.nanosec) == (1, 250_000_000)
    assert cv.stamp_to_seconds(t) == 1.25
    t = cv.seconds_to_stamp(3.9999999999)  # rounds up into the next second
    assert (t.sec, t.nanosec) == (4, 0)
    assert cv.stamp_to_ns(cv.ns_to_stamp(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="stamp seconds must be"):
            cv.seconds_to_stamp(bad)
    with pytest.raises(ValueError, match="stamp must be >= 0 ns"):
        cv.ns_to_stamp(-1)
    with pytest.raises(ValueError, match="overflows"):
        cv.ns_to_stamp(2**31 * 1_000_000_000)
    h = cv.make_header(2.5, "map")
    assert h.frame_id == "map" and h.stamp.sec == 2 and h.stamp.nanosec == 500_000_000
    assert cv.make_header(Time(sec=3)).stamp.sec == 3
    assert cv.make_header().stamp.sec == 0


# ------------------------------------------------------------------ allocations

def test_allocation_round_trip():
    ss = StreamSet()
    mask = naive_allocation(len(ss), 27)
    noise = np.linspace(0, 2, len(ss)).astype(np.float32)
    present = np.ones(len(ss), bool)
    present[4] = False
    msg = cv.mask_to_allocation(mask, ss.ids, stamp=5.0, present=present, estimated_noise=noise,
                                controller="naive", decision_ms=1.5)
    assert msg.budget == 27 and msg.depth == DEPTH and msg.first_block_forced
    assert len(msg.active_blocks) == len(ss) * DEPTH
    # row-major: row i = stream_ids[i]
    assert msg.active_blocks[DEPTH:2 * DEPTH] == mask[1].tolist()
    a = cv.allocation_to_mask(msg)
    np.testing.assert_array_equal(a.mask, mask)
    assert a.mask.dtype == np.bool_
    assert a.stream_ids == ss.ids and a.budget == 27 and a.controller == "naive"
    np.testing.assert_array_equal(a.present, present)
    np.testing.assert_array_equal(a.estimated_noise, noise)
    assert a.decision_ms == pytest.approx(1.5) and a.header.stamp.sec == 5


def test_allocation_defaults_and_errors():
    ids = ["node1/rgb", "node1/depth"]
    m = np.zeros((2, DEPTH), bool)
    m[:, 0] = True
    msg = cv.mask_to_allocation(m.astype(np.uint8), ids, budget=6)
    a = cv.allocation_to_mask(msg)
    assert a.budget == 6 and a.present.all() and np.isnan(a.estimated_noise).all()
    with pytest.raises(ValueError, match="has 2 rows but 3 stream_ids"):
        cv.mask_to_allocation(m, ids + ["node2/rgb"])
    with pytest.raises(ValueError, match="must be 2-D"):
        cv.mask_to_allocation(m.ravel(), ids)
    with pytest.raises(ValueError, match="boolean"):
        cv.mask_to_allocation(m * 2, ids)
    with pytest.raises(ValueError, match="invalid stream id 'rgb'"):
        cv.mask_to_allocation(m, ["rgb", "node1/depth"])
    with pytest.raises(ValueError, match="duplicate stream ids"):
        cv.mask_to_allocation(m, ["node1/rgb", "node1/rgb"])
    with pytest.raises(ValueError, match="estimated_noise has 1 entries, expected 2"):
        cv.mask_to_allocation(m, ids, estimated_noise=[0.1])
    msg.active_blocks = msg.active_blocks[:-1]
    with pytest.raises(ValueError, match=r"size mismatch: len\(active_blocks\) = 23 != "
                                         r"len\(stream_ids\) \* depth = 2\*12"):
        cv.allocation_to_mask(msg)
