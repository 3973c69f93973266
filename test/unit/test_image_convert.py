"""admn_ros.core.image_convert on hand-built messages: cv_bridge's imgmsg_to_cv2 /
cv2_to_imgmsg results for rgb8, bgr8, rgba8, bgra8, mono8, mono16, 16UC1 and 32FC1,
padded rows, is_bigendian, desired_encoding, and the stream decoders of the nodes and bags.

Every message is built from literal bytes and every expected value is written out here
(colour to grey uses OpenCV's documented weights 0.299 R + 0.587 G + 0.114 B; 8 <-> 16 bit
rescaling is x 257 and / 257 as cv_bridge does). No ROS import: the messages are plain
namespaces, as the module is duck-typed."""
from __future__ import annotations

import array
import struct
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from admn_ros.core import image_convert as ic


def img(encoding: str, h: int, w: int, data: bytes, *, step: int | None = None, big: int = 0) -> NS:
    row = len(data) // h
    return NS(height=h, width=w, encoding=encoding, is_bigendian=big, step=row if step is None else step,
              data=data, header=NS())


def padded(data: bytes, h: int, pad: int, fill: int = 0xEE) -> bytes:
    """Append ``pad`` junk bytes to each of the ``h`` rows of ``data``."""
    row = len(data) // h
    return b"".join(data[i * row:(i + 1) * row] + bytes([fill]) * pad for i in range(h))


#: encoding -> (height, width, little-endian data, expected passthrough array). Written out by hand.
CASES = {
    "rgb8": (1, 2, bytes([1, 2, 3, 4, 5, 6]), np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)),
    "bgr8": (1, 2, bytes([1, 2, 3, 4, 5, 6]), np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)),
    "rgba8": (1, 2, bytes(range(1, 9)), np.array([[[1, 2, 3, 4], [5, 6, 7, 8]]], np.uint8)),
    "bgra8": (2, 1, bytes(range(1, 9)), np.array([[[1, 2, 3, 4]], [[5, 6, 7, 8]]], np.uint8)),
    "mono8": (2, 2, bytes([0, 9, 200, 255]), np.array([[0, 9], [200, 255]], np.uint8)),
    "mono16": (2, 2, struct.pack("<4H", 1, 256, 65535, 4660), np.array([[1, 256], [65535, 4660]], np.uint16)),
    "16UC1": (1, 3, struct.pack("<3H", 0, 1500, 40000), np.array([[0, 1500, 40000]], np.uint16)),
    "32FC1": (2, 2, struct.pack("<4f", 0.5, -1.25, 3.0e38, 7.0), np.array([[0.5, -1.25], [3.0e38, 7.0]], np.float32)),
}
#: The encodings whose conversions are tested against cv_bridge's behaviour.
COMMON_ENCODINGS = tuple(CASES)
BIG = {"mono16": ">4H", "16UC1": ">3H", "32FC1": ">4f"}


@pytest.mark.parametrize("encoding", COMMON_ENCODINGS)
def test_passthrough_returns_the_data_as_is(encoding):
    """Break tried: giving rgba8 3 channels in the encoding table fails here."""
    h, w, data, want = CASES[encoding]
    out = ic.image_to_numpy(img(encoding, h, w, data))
    assert out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("encoding", COMMON_ENCODINGS)
@pytest.mark.parametrize("pad", [1, 3, 8])
def test_padded_rows_are_dropped(encoding, pad):
    """step > width * bytes per pixel: the padding bytes never reach the array.
    Break tried: ignoring ``step`` (viewing the data as height*width pixels) fails here."""
    h, w, data, want = CASES[encoding]
    row = len(data) // h
    out = ic.image_to_numpy(img(encoding, h, w, padded(data, h, pad), step=row + pad))
    np.testing.assert_array_equal(out, want)
    assert out.dtype == want.dtype


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
@pytest.mark.parametrize("pad", [0, 2])
def test_big_endian_data_comes_out_in_host_order(encoding, pad):
    """Break tried: taking is_bigendian as the host order (no swap) fails here."""
    h, w, _, want = CASES[encoding]
    data = struct.pack(BIG[encoding], *want.reshape(-1).tolist())
    row = len(data) // h
    out = ic.image_to_numpy(img(encoding, h, w, padded(data, h, pad), step=row + pad, big=1))
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, want)


def test_is_bigendian_does_not_matter_for_bytes():
    h, w, data, want = CASES["rgb8"]
    np.testing.assert_array_equal(ic.image_to_numpy(img("rgb8", h, w, data, big=1)), want)


def test_data_of_every_container_type():
    """rclpy gives array.array('B'), rosbags numpy uint8, others bytes or a list."""
    h, w, data, want = CASES["16UC1"]
    for d in (data, array.array("B", data), np.frombuffer(data, np.uint8), list(data)):
        np.testing.assert_array_equal(ic.image_to_numpy(img("16UC1", h, w, d)), want)


# ---------------------------------------------------------------------------- desired_encoding

# red, green, blue, (10, 20, 30) in one row
RGB = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
BGR = bytes([0, 0, 255, 0, 255, 0, 255, 0, 0, 30, 20, 10])
RGBA = bytes([255, 0, 0, 7, 0, 255, 0, 7, 0, 0, 255, 7, 10, 20, 30, 7])
BGRA = bytes([0, 0, 255, 7, 0, 255, 0, 7, 255, 0, 0, 7, 30, 20, 10, 7])
GREY = [76, 150, 29, 18]          # round(0.299 R + 0.587 G + 0.114 B)
GREY16 = [v * 257 for v in GREY]  # 8 -> 16 bit: x 65535/255
AS_RGB = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]


def _rows(px):
    return np.array([px])


@pytest.mark.parametrize("src,data", [("rgb8", RGB), ("bgr8", BGR), ("rgba8", RGBA), ("bgra8", BGRA)])
def test_colour_conversions(src, data):
    """Between the colour encodings, what cv_bridge's cvtColor table gives.
    Break tried: giving bgra8 the rgba channel order in the encoding table fails here."""
    m = img(src, 1, 4, data)
    alpha = 7 if src in ("rgba8", "bgra8") else 255  # alpha kept, or 255 when added
    np.testing.assert_array_equal(ic.image_to_numpy(m, "rgb8"), _rows(AS_RGB))
    np.testing.assert_array_equal(ic.image_to_numpy(m, "bgr8"), _rows([p[::-1] for p in AS_RGB]))
    np.testing.assert_array_equal(ic.image_to_numpy(m, "rgba8"), _rows([p + [alpha] for p in AS_RGB]))
    np.testing.assert_array_equal(ic.image_to_numpy(m, "bgra8"), _rows([p[::-1] + [alpha] for p in AS_RGB]))
    grey = ic.image_to_numpy(m, "mono8")
    assert grey.shape == (1, 4) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, [GREY])
    grey16 = ic.image_to_numpy(m, "mono16")
    assert grey16.dtype == np.uint16
    np.testing.assert_array_equal(grey16, [GREY16])


def test_mono_conversions():
    """mono8 <-> mono16 rescales (x 257, / 257 rounded); grey -> colour replicates.
    Break tried: casting mono16 -> mono8 without the 255/65535 scale (saturating at 255) fails here."""
    m8 = img("mono8", 1, 3, bytes([0, 128, 255]))
    np.testing.assert_array_equal(ic.image_to_numpy(m8, "mono16"), [[0, 32896, 65535]])
    np.testing.assert_array_equal(ic.image_to_numpy(m8, "rgb8"), [[[0, 0, 0], [128, 128, 128], [255, 255, 255]]])
    np.testing.assert_array_equal(ic.image_to_numpy(m8, "bgra8"),
                                  [[[0, 0, 0, 255], [128, 128, 128, 255], [255, 255, 255, 255]]])
    m16 = img("mono16", 1, 4, struct.pack("<4H", 0, 257, 65535, 1000))
    np.testing.assert_array_equal(ic.image_to_numpy(m16, "mono8"), [[0, 1, 255, 4]])   # 1000 / 257 = 3.89
    np.testing.assert_array_equal(ic.image_to_numpy(m16, "rgb8"),
                                  [[[0, 0, 0], [1, 1, 1], [255, 255, 255], [4, 4, 4]]])
    np.testing.assert_array_equal(ic.image_to_numpy(m16, "16UC1"), [[0, 257, 65535, 1000]])  # same type: as is


def test_generic_encodings_cast_among_themselves_only():
    """16UC1 / 32FC1 depth: passthrough as is; numeric casts between generic types
    (saturating, half to even, NaN -> 0); never to a colour encoding (cv_bridge raises).
    Break tried: letting 16UC1 convert to mono16 fails here."""
    d16 = img("16UC1", 1, 3, struct.pack("<3H", 0, 1500, 40000))
    f = ic.image_to_numpy(d16, "32FC1")
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, [[0.0, 1500.0, 40000.0]])
    d32 = img("32FC1", 1, 6, struct.pack("<6f", 1.5, 2.5, -3.0, 70000.0, float("nan"), 7.4))
    np.testing.assert_array_equal(ic.image_to_numpy(d32, "16UC1"), [[2, 2, 0, 65535, 0, 7]])
    np.testing.assert_array_equal(ic.image_to_numpy(img("mono8", 1, 2, bytes([3, 250])), "32FC1"), [[3.0, 250.0]])
    for src, dst in (("16UC1", "mono16"), ("16UC1", "rgb8"), ("32FC1", "mono8"), ("8UC3", "rgb8")):
        h, w, data = (1, 1, bytes(3)) if src == "8UC3" else (1, 1, bytes(4 if src == "32FC1" else 2))
        with pytest.raises(ic.ConversionError, match=f"'{src}'.*not a colour encoding but '{dst}' is"):
            ic.image_to_numpy(img(src, h, w, data), dst)
    with pytest.raises(ic.ConversionError, match="3 vs 1 channels"):
        ic.image_to_numpy(img("rgb8", *CASES["rgb8"][:3]), "32FC1")
    with pytest.raises(ic.ConversionError, match="unknown image encoding 'yuv444'"):
        ic.image_to_numpy(img("rgb8", *CASES["rgb8"][:3]), "yuv444")


def test_same_encoding_copies_and_passthrough_shares():
    h, w, data, _ = CASES["mono8"]
    buf = array.array("B", data)
    m = img("mono8", h, w, buf)
    assert np.shares_memory(ic.image_to_numpy(m), np.frombuffer(buf, np.uint8))
    assert not np.shares_memory(ic.image_to_numpy(m, "mono8"), np.frombuffer(buf, np.uint8))


def test_layout_errors_name_the_problem():
    with pytest.raises(ic.ConversionError, match="unknown image encoding 'nv12'") as e:
        ic.image_to_numpy(img("nv12", 1, 1, bytes(2)))
    assert e.value.reason == "bad_encoding"
    with pytest.raises(ic.ConversionError, match=r"height\*step = 4\*8 = 32 != len\(data\) = 30") as e:
        ic.image_to_numpy(img("16UC1", 4, 4, bytes(30), step=8))
    assert e.value.reason == "bad_layout"
    with pytest.raises(ic.ConversionError, match=r"step 6 is smaller than width\*bytes_per_pixel = 4\*2 = 8"):
        ic.image_to_numpy(img("16UC1", 4, 4, bytes(24), step=6))
    with pytest.raises(ic.ConversionError, match=r"empty mono8 image: height=0 width=4") as e:
        ic.image_to_numpy(NS(height=0, width=4, encoding="mono8", is_bigendian=0, step=4, data=b""))
    assert e.value.reason == "empty"
    # known to cv_bridge: passthrough works, conversions do not
    assert ic.image_to_numpy(img("yuv422", 1, 2, bytes(4))).shape == (1, 2, 2)
    with pytest.raises(ic.ConversionError, match="cannot convert image encoding 'yuv422' to 'rgb8'"):
        ic.image_to_numpy(img("yuv422", 1, 2, bytes(4)), "rgb8")


# ---------------------------------------------------------------------------- array -> message


def test_message_fields_like_cv2_to_imgmsg():
    """step = width * channels * itemsize, is_bigendian from the dtype, passthrough names
    the OpenCV type. Break tried: step = width * itemsize (channels dropped) fails here."""
    a = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)
    f = ic.image_message_fields(a, "rgb8")
    assert (f["height"], f["width"], f["encoding"], f["step"], f["is_bigendian"]) == (1, 2, "rgb8", 6, 0)
    assert bytes(f["data"]) == bytes([1, 2, 3, 4, 5, 6])
    assert ic.image_message_fields(a)["encoding"] == "8UC3"
    d = np.array([[1, 258]], dtype=">u2")
    f = ic.image_message_fields(d, "16UC1")
    assert f["is_bigendian"] == 1 and f["step"] == 4 and bytes(f["data"]) == b"\x00\x01\x01\x02"
    np.testing.assert_array_equal(ic.image_to_numpy(NS(**f)), [[1, 258]])
    assert ic.image_message_fields(np.zeros((2, 3, 2), np.int16))["encoding"] == "16SC2"
    assert ic.image_message_fields(np.zeros((2, 3, 1), np.uint16), "mono16")["step"] == 6
    view = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)[:, ::2]  # not contiguous
    assert bytes(ic.image_message_fields(view, "bgr8")["data"]) == view.tobytes()
    with pytest.raises(ic.ConversionError, match=r"encoding 'rgb8' needs an image of type 8UC3, got 32FC3"):
        ic.image_message_fields(a.astype(np.float32), "rgb8")
    with pytest.raises(ic.ConversionError, match=r"'mono8' needs an image of type 8UC1, got 8UC3"):
        ic.image_message_fields(a, "mono8")
    with pytest.raises(ic.ConversionError, match="empty image"):
        ic.image_message_fields(np.zeros((0, 4), np.uint8), "mono8")
    with pytest.raises(ic.ConversionError, match="no image encoding for dtype bool"):
        ic.image_message_fields(np.zeros((2, 2), bool))


@pytest.mark.parametrize("encoding", COMMON_ENCODINGS)
def test_bridge_round_trip(encoding):
    """ImageBridge.cv2_to_imgmsg -> imgmsg_to_cv2 gives the array back, into an rclpy-like
    message whose data is an array.array('B')."""
    _, _, _, want = CASES[encoding]
    bridge = ic.ImageBridge(lambda: NS(header=None, height=0, width=0, encoding="", is_bigendian=0, step=0,
                                       data=array.array("B")))
    msg = bridge.cv2_to_imgmsg(want, encoding, header="h")
    assert msg.header == "h" and isinstance(msg.data, array.array)
    assert msg.step == want.shape[1] * want.itemsize * (want.shape[2] if want.ndim == 3 else 1)
    np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg), want)


# ---------------------------------------------------------------------------- stream decoding


def test_rgb_stream_from_every_colour_encoding():
    """Break tried: reading 8UC3 as RGB instead of OpenCV's BGR fails here."""
    want = _rows(AS_RGB).astype(np.uint8)
    for enc, data in (("rgb8", RGB), ("bgr8", BGR), ("rgba8", RGBA), ("bgra8", BGRA), ("8UC3", BGR), ("8UC4", BGRA)):
        out = ic.decode_image(img(enc, 1, 4, data), "rgb")
        np.testing.assert_array_equal(out, want, err_msg=enc)
        assert out.flags.owndata and out.flags.writeable
    for enc in ("mono8", "8UC1"):
        np.testing.assert_array_equal(ic.decode_image(img(enc, 1, 2, bytes([5, 200])), "rgb"),
                                      [[[5, 5, 5], [200, 200, 200]]])


def test_depth_and_radar_streams():
    d = ic.decode_image(img("16UC1", 1, 3, padded(struct.pack(">3H", 0, 1500, 40000), 1, 2), step=8, big=1), "depth")
    np.testing.assert_array_equal(d, [[0, 1500, 40000]])
    assert d.flags.owndata and d.flags.writeable
    np.testing.assert_array_equal(ic.decode_image(img("mono16", 1, 1, struct.pack("<H", 777)), "depth"), [[777]])
    # 32FC1 metres -> REP-118 mm: rounded; NaN, <= 0 and beyond 65.535 m are invalid (0)
    m = img("32FC1", 2, 3, struct.pack("<6f", 0.5, 1.2345, float("nan"), 0.0, -1.0, 70.0))
    out = ic.decode_image(m, "depth")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [[500, 1234, 0], [0, 0, 0]])
    r = ic.decode_image(img("64FC1", 1, 2, struct.pack("<2d", 0.25, 1.0)), "radar")
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r, [[0.25, 1.0]])


def test_depth_unit_helpers():
    mm = ic.depth_m_to_mm16(np.array([[0.0, 1.2345, np.nan], [np.inf, -1.0, 70.0]], np.float32))
    np.testing.assert_array_equal(mm, [[0, 1234, 0], [0, 0, 0]])
    np.testing.assert_array_equal(ic.sensor_array("rgb", np.array([[[0.0, 0.5, 1.0]]])), [[[0, 128, 255]]])
    np.testing.assert_array_equal(ic.sensor_array("depth", np.array([[1.5]], np.float32)), [[1500]])


def test_compressed_streams():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    m = NS(format="rgb8; png compressed bgr8", data=png.tobytes())
    np.testing.assert_array_equal(ic.decode_compressed(m, "rgb"), rgb)
    smooth = np.full((16, 24, 3), (200, 40, 90), np.uint8)
    ok, jpg = cv2.imencode(".jpg", smooth[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = ic.decode_compressed(NS(format="jpeg", data=jpg.tobytes()), "rgb")
    assert np.abs(out.astype(int) - smooth).max() <= 4
    depth = rng.integers(1, 8000, (10, 12), dtype=np.uint16)
    ok, dpng = cv2.imencode(".png", depth)
    np.testing.assert_array_equal(ic.decode_compressed(NS(format="16UC1; png", data=dpng.tobytes()), "depth"), depth)
    cd = struct.pack("<iff", 0, 0.0, 0.0) + dpng.tobytes()
    np.testing.assert_array_equal(
        ic.decode_compressed(NS(format="16UC1; compressedDepth png", data=cd), "depth"), depth)
    # 32FC1 compressedDepth: quantised inverse depth q = A / d + B
    qa, qb = 100.0, 10.0
    d_m = np.array([[0.5, 1.0, 2.0], [4.0, 0.0, 2.5]], np.float32)
    q = np.where(d_m > 0, np.rint(qa / np.where(d_m > 0, d_m, 1) + qb), 0).astype(np.uint16)
    ok, qpng = cv2.imencode(".png", q)
    m = NS(format="32FC1; compressedDepth png", data=struct.pack("<iff", 0, qa, qb) + qpng.tobytes())
    np.testing.assert_array_equal(ic.decode_compressed(m, "depth"), [[500, 1000, 2000], [4000, 0, 2500]])
    assert ic.compressed_kind("rgb8; jpeg compressed bgr8") == "jpeg"


def test_streams_reject_what_they_cannot_use():
    """An Image's error lists the Image encodings only: the nodes subscribe to Image, not CompressedImage.
    Break tried: listing every kind the stream reads from a bag ("... or CompressedImage formats [...]")."""
    with pytest.raises(ic.ConversionError, match=r"'16UC1' cannot feed a rgb stream; supported: Image encodings \[") as e:
        ic.decode_image(img("16UC1", 1, 1, bytes(2)), "rgb")
    assert e.value.reason == "bad_encoding" and "CompressedImage" not in str(e.value)
    with pytest.raises(ic.ConversionError, match="'yuv422' cannot feed a rgb stream"):
        ic.decode_image(img("yuv422", 1, 2, bytes(4)), "rgb")
    with pytest.raises(ic.ConversionError, match="'jpeg' cannot feed a radar stream"):
        ic.decode_compressed(NS(format="jpeg", data=b"xx"), "radar")
    with pytest.raises(ic.ConversionError, match="not a valid image") as e:
        ic.decode_compressed(NS(format="png", data=b"not an image"), "rgb")
    assert e.value.reason == "bad_data"
    with pytest.raises(ic.ConversionError, match="PointCloud2 cannot feed a depth stream"):
        ic.decode_stream(NS(), "pointcloud2", "depth")
    with pytest.raises(ic.ConversionError, match=r"height\*step"):
        ic.decode_image(img("rgb8", 2, 2, bytes(11), step=6), "rgb")


def test_side_range_is_checked_after_emptiness_and_before_the_layout():
    """A side outside ``side_range`` is ``bad_size`` even when the layout is also wrong (a huge
    header over a few bytes); an empty image stays ``empty``.
    Break tried: the side check after the layout check fails the first assertion (``bad_layout``)."""
    with pytest.raises(ic.ConversionError, match=r"image 100000x2 outside the accepted side range \[8, 8192\]") as e:
        ic.decode_stream(img("rgb8", 2, 100000, bytes(12), step=6), "image", "rgb", side_range=(8, 8192))
    assert e.value.reason == "bad_size"
    with pytest.raises(ic.ConversionError) as e:
        ic.decode_image(img("mono16", 1, 0, b""), "depth", side_range=(8, 8192))
    assert e.value.reason == "empty"
    assert ic.decode_image(img("mono16", 1, 2, bytes(4)), "depth").shape == (1, 2)


def test_decode_image_uses_the_given_bridge_and_wraps_its_errors():
    """With cv_bridge importable the nodes pass ``CvBridge().imgmsg_to_cv2``: the stream
    decoder asks it for rgb8 (or passthrough) and turns its own exceptions into a
    ConversionError naming the encoding."""
    calls = []

    def to_array(msg, desired):
        calls.append((msg.encoding, desired))
        return ic.image_to_numpy(msg, desired)

    ic.decode_image(img("bgr8", 1, 4, BGR), "rgb", to_array)
    ic.decode_image(img("8UC3", 1, 4, BGR), "rgb", to_array)
    ic.decode_image(img("32FC1", 1, 1, bytes(4)), "depth", to_array)
    assert calls == [("bgr8", "rgb8"), ("8UC3", "passthrough"), ("32FC1", "passthrough")]

    class CvBridgeError(TypeError):
        pass

    def broken(msg, desired):
        raise CvBridgeError("boom")

    with pytest.raises(ic.ConversionError, match="cannot read bgr8 image: CvBridgeError: boom") as e:
        ic.decode_image(img("bgr8", 1, 4, BGR), "rgb", broken)
    assert e.value.reason == "bad_data"
