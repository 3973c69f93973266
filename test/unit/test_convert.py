"""admn_ros.ros.convert: sensor_msgs/Image through the bridge, mask <-> LayerAllocation, stamps.

Pure Python (message classes only, no rclpy.init, no DDS)."""
from __future__ import annotations

import array
import sys

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from admn_ros.ros import convert as cv
from admn_ros.core.streams import DEPTH, StreamSet, naive_allocation
from admn_ros.core.sync import stamp_to_ns

RNG = np.random.default_rng(0)
#: encoding -> (dtype, channels) of the arrays the nodes publish
KINDS = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1), "16UC1": (np.uint16, 1),
         "32FC1": (np.float32, 1)}


def _arr(encoding: str, h: int = 7, w: int = 5) -> np.ndarray:
    dt, ch = KINDS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if np.dtype(dt).kind == "f":
        return RNG.standard_normal(shape).astype(dt)
    return RNG.integers(0, np.iinfo(dt).max, size=shape, dtype=dt)


# ------------------------------------------------------------------ images (conversions: test_image_convert.py)

@pytest.mark.parametrize("encoding", sorted(KINDS))
def test_image_round_trip(encoding):
    a = _arr(encoding)
    msg = cv.numpy_to_image(a, encoding, cv.make_header(cv.ns_to_stamp(12_500_000_000), "node1_color_optical_frame"))
    dt, ch = KINDS[encoding]
    assert isinstance(msg, Image) and msg.encoding == encoding
    assert (msg.height, msg.width) == a.shape[:2]
    assert msg.step == a.shape[1] * ch * np.dtype(dt).itemsize
    assert len(msg.data) == msg.height * msg.step
    assert msg.is_bigendian == (1 if np.little_endian is False else 0)
    assert isinstance(msg.data, array.array)
    assert msg.header.frame_id == "node1_color_optical_frame"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 500_000_000)
    b = cv.image_bridge().imgmsg_to_cv2(msg)
    assert b.dtype == dt and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_encode_errors():
    with pytest.raises(ValueError, match=r"encoding 'rgb8' needs an image of type 8UC3, got 32FC3"):
        cv.numpy_to_image(_arr("rgb8").astype(np.float32), "rgb8")
    with pytest.raises(ValueError, match=r"encoding 'mono8' needs an image of type 8UC1, got 8UC3"):
        cv.numpy_to_image(np.zeros((4, 4, 3), np.uint8), "mono8")
    with pytest.raises(ValueError, match=r"cannot encode an empty image \(shape \(0, 4\)\)"):
        cv.numpy_to_image(np.zeros((0, 4), np.uint8), "mono8")


def test_cv_bridge_is_used_when_importable(monkeypatch):
    """With a ``cv_bridge`` module importable, :func:`image_bridge` is its CvBridge, so the
    nodes' images go through imgmsg_to_cv2 / cv2_to_imgmsg (and decode_sensor_image asks it
    for rgb8). Break tried: image_bridge returning ImageBridge unconditionally fails here."""
    import types

    from admn_ros.core.image_convert import ImageBridge
    from admn_ros.ros.lifecycle import decode_sensor_image

    calls = []

    class CvBridge(ImageBridge):
        def __init__(self):
            super().__init__(Image)

        def imgmsg_to_cv2(self, img_msg, desired_encoding="passthrough"):
            calls.append(("imgmsg_to_cv2", img_msg.encoding, desired_encoding))
            return super().imgmsg_to_cv2(img_msg, desired_encoding)

        def cv2_to_imgmsg(self, cvim, encoding="passthrough", header=None):
            calls.append(("cv2_to_imgmsg", encoding))
            return super().cv2_to_imgmsg(cvim, encoding, header)

    fake = types.ModuleType("cv_bridge")
    fake.CvBridge = CvBridge
    monkeypatch.setitem(sys.modules, "cv_bridge", fake)
    cv.image_bridge.cache_clear()
    try:
        assert isinstance(cv.image_bridge(), CvBridge)
        bgr = _arr("bgr8", 16, 16)
        msg = cv.numpy_to_image(bgr, "bgr8")
        out = decode_sensor_image("node1/rgb", msg)
        np.testing.assert_array_equal(out, bgr[:, :, ::-1])
        assert calls == [("cv2_to_imgmsg", "bgr8"), ("imgmsg_to_cv2", "bgr8", "rgb8")]
    finally:
        cv.image_bridge.cache_clear()
    monkeypatch.setitem(sys.modules, "cv_bridge", None)   # import fails -> ours
    try:
        assert type(cv.image_bridge()) is ImageBridge
    finally:
        cv.image_bridge.cache_clear()


def test_decode_sensor_image_reasons():
    from admn_ros.core.image_convert import ConversionError
    from admn_ros.ros.lifecycle import decode_sensor_image

    def rejected(sid, msg, **kw):
        with pytest.raises(ConversionError) as e:
            decode_sensor_image(sid, msg, **kw)
        return e.value

    e = rejected("node1/rgb", cv.numpy_to_image(_arr("16UC1", 16, 16), "16UC1"))
    assert e.reason == "bad_encoding" and "'16UC1' cannot feed a rgb stream" in str(e)
    e = rejected("node1/depth", cv.numpy_to_image(_arr("16UC1", 4, 16), "16UC1"))
    assert e.reason == "bad_size"
    bad = cv.numpy_to_image(_arr("16UC1", 16, 16), "16UC1")
    bad.step = 30
    assert rejected("node1/depth", bad).reason == "bad_layout"
    # what the nodes now accept beyond what the simulator publishes
    rgba = np.dstack([_arr("rgb8", 16, 16), np.full((16, 16), 9, np.uint8)])
    np.testing.assert_array_equal(decode_sensor_image("node1/rgb", cv.numpy_to_image(rgba, "rgba8")), rgba[:, :, :3])
    mm = decode_sensor_image("node1/depth", cv.numpy_to_image(np.full((16, 16), 1.5, np.float32), "32FC1"))
    assert mm.dtype == np.uint16 and (mm == 1500).all()


# ------------------------------------------------------------------ stamps

def test_stamp_helpers():
    t = cv.ns_to_stamp(1_250_000_000)
    assert (t.sec, t.nanosec) == (1, 250_000_000)
    assert stamp_to_ns(cv.ns_to_stamp(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789
    with pytest.raises(ValueError, match="stamp must be >= 0 ns"):
        cv.ns_to_stamp(-1)
    with pytest.raises(ValueError, match="overflows"):
        cv.ns_to_stamp(2**31 * 1_000_000_000)
    h = cv.make_header(cv.ns_to_stamp(2_500_000_000), "map")
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
    msg = cv.mask_to_allocation(mask, ss.ids, header=cv.make_header(Time(sec=5)), present=present,
                                estimated_noise=noise, controller="naive", decision_ms=1.5)
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
