"""Decode bag image messages into the arrays each modality's pipeline expects.

Works on any object with the ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``
fields (rosbags' deserialised dataclasses, rclpy messages), so it needs no rclpy.

Outputs, per modality (what :class:`admn_ros.core.sim.StreamFrame` holds too):

* ``rgb``: ``uint8 (H, W, 3)`` in RGB order. Image ``rgb8``, ``bgr8``, ``8UC3`` (OpenCV
  BGR), ``rgba8``, ``bgra8``, ``mono8``/``8UC1`` (replicated); CompressedImage ``jpeg`` /
  ``png`` (image_transport's ``"rgb8; jpeg compressed bgr8"`` formats included).
* ``depth``: ``uint16 (H, W)`` millimetres, 0 = invalid (REP-118). Image ``16UC1`` /
  ``mono16`` as is; ``32FC1`` metres converted exactly like the sensor node does
  (:func:`admn_ros.ros.convert.depth_m_to_mm16`: rounded, NaN/inf/<=0/>65.535 m -> 0);
  CompressedImage 16-bit ``png`` and ``compressedDepth`` (compressed_depth_image_transport:
  12-byte header + PNG; 16UC1 stored as is, 32FC1 as quantised inverse depth).
* ``radar``: ``float32 (R, A)``. Image ``32FC1`` (``64FC1`` cast).

Anything else raises :class:`DecodeError` naming the encoding and what is supported.
Returned arrays are writable and own their memory.
"""
from __future__ import annotations

import struct
import sys

import cv2
import numpy as np

from admn_ros.ros.convert import depth_m_to_mm16

#: Image encodings -> (dtype, channels).
RAW_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3), "bgr8": (np.dtype(np.uint8), 3), "8UC3": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4), "bgra8": (np.dtype(np.uint8), 4), "8UC4": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1), "8UC1": (np.dtype(np.uint8), 1),
    "16UC1": (np.dtype(np.uint16), 1), "mono16": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1), "64FC1": (np.dtype(np.float64), 1),
}

#: What each modality accepts: Image encodings and CompressedImage kinds.
SUPPORTED: dict[str, dict[str, tuple[str, ...]]] = {
    "rgb": {"image": ("rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "8UC4", "mono8", "8UC1"),
            "compressed": ("jpeg", "png")},
    "depth": {"image": ("16UC1", "mono16", "32FC1"), "compressed": ("png", "compressedDepth")},
    "radar": {"image": ("32FC1", "64FC1"), "compressed": ()},
}

IMAGE_TYPES = ("sensor_msgs/Image",)
COMPRESSED_TYPES = ("sensor_msgs/CompressedImage",)

_HOST_BIG = sys.byteorder == "big"


class DecodeError(ValueError):
    """A message cannot be decoded for its stream (unsupported encoding, bad size, ...)."""


def supported_text(modality: str) -> str:
    """Human-readable list of what ``modality`` accepts."""
    s = SUPPORTED[modality]
    txt = f"Image encodings {list(s['image'])}"
    if s["compressed"]:
        txt += f" or CompressedImage formats {list(s['compressed'])}"
    return txt


def compressed_kind(fmt: str) -> str:
    """CompressedImage ``format`` -> ``compressedDepth`` | ``png`` | ``jpeg`` | the format itself.

    image_transport writes e.g. ``"rgb8; jpeg compressed bgr8"``, ``"16UC1; compressedDepth png"``;
    other drivers just ``"jpeg"``.
    """
    f = fmt.lower()
    if "compresseddepth" in f:
        return "compressedDepth"
    if "png" in f:
        return "png"
    if "jpeg" in f or "jpg" in f:
        return "jpeg"
    return fmt.strip()


def message_encoding(msg: object, compressed: bool) -> str:
    """The encoding (Image) or compressed kind (CompressedImage) of ``msg``."""
    return compressed_kind(str(msg.format)) if compressed else str(msg.encoding)  # type: ignore[attr-defined]


def check_supported(modality: str, encoding: str, compressed: bool) -> bool:
    return encoding in SUPPORTED[modality]["compressed" if compressed else "image"]


# ---------------------------------------------------------------------------- raw images


def image_array(msg: object) -> np.ndarray:
    """``sensor_msgs/Image`` -> numpy in its own encoding (``(H, W)`` or ``(H, W, C)``),
    dropping row padding and byte-swapping big-endian data; raises :class:`DecodeError`."""
    enc = str(msg.encoding)  # type: ignore[attr-defined]
    if enc not in RAW_ENCODINGS:
        raise DecodeError(f"unsupported Image encoding {enc!r}; known: {sorted(RAW_ENCODINGS)}")
    dtype, ch = RAW_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)  # type: ignore[attr-defined]
    raw = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)  # type: ignore[attr-defined]
    row = w * ch * dtype.itemsize
    if h == 0 or w == 0:
        raise DecodeError(f"empty {enc} image ({h}x{w})")
    if step < row or raw.size < h * step:
        raise DecodeError(f"{enc} image {h}x{w}: step {step} / data size {raw.size} too small "
                          f"(need step >= {row} and size >= height*step = {h * step})")
    rows = raw[: h * step].reshape(h, step)[:, :row]
    dt = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype  # type: ignore[attr-defined]
    out = np.ascontiguousarray(rows).view(dt).astype(dtype, copy=True)  # native order, owned
    return out.reshape((h, w) if ch == 1 else (h, w, ch))


def _rgb_from(a: np.ndarray, enc: str) -> np.ndarray:
    if enc == "rgb8":
        return a
    if enc in ("bgr8", "8UC3"):
        return np.ascontiguousarray(a[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(a[:, :, :3])
    if enc in ("bgra8", "8UC4"):
        return np.ascontiguousarray(a[:, :, 2::-1])
    if enc in ("mono8", "8UC1"):
        return np.repeat(a[:, :, None], 3, axis=2)
    raise DecodeError(f"Image encoding {enc!r} cannot feed an rgb stream; supported: {supported_text('rgb')}")


def decode_image(msg: object, modality: str) -> np.ndarray:
    """``sensor_msgs/Image`` -> the modality's array (see the module docstring)."""
    enc = str(msg.encoding)  # type: ignore[attr-defined]
    if not check_supported(modality, enc, False):
        raise DecodeError(f"Image encoding {enc!r} cannot feed a {modality} stream; "
                          f"supported: {supported_text(modality)}")
    a = image_array(msg)
    if modality == "rgb":
        return _rgb_from(a, enc)
    if modality == "depth":
        return a if a.dtype == np.uint16 else depth_m_to_mm16(a)
    return a.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------- compressed


def _imdecode(buf: np.ndarray, flags: int, what: str) -> np.ndarray:
    img = cv2.imdecode(buf, flags)
    if img is None:
        raise DecodeError(f"cannot decode {what} ({buf.size} bytes): not a valid image")
    return img


def decode_compressed_depth(data: np.ndarray, fmt: str) -> np.ndarray:
    """compressed_depth_image_transport payload -> ``uint16`` mm.

    Layout: ``int32 format; float32 depthQuantA, depthQuantB`` (12 bytes, little endian)
    then a PNG. ``16UC1`` PNGs hold millimetres; ``32FC1`` ones hold
    ``depthQuantA / depth + depthQuantB`` (0 = invalid), inverted here and converted to mm.
    """
    if data.size <= 12:
        raise DecodeError(f"compressedDepth payload of {data.size} bytes is too short (12-byte header + PNG)")
    _, qa, qb = struct.unpack("<iff", data[:12].tobytes())
    img = _imdecode(data[12:], cv2.IMREAD_UNCHANGED, "compressedDepth PNG")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise DecodeError(f"compressedDepth PNG must be 16-bit single channel, got {img.dtype} {img.shape}")
    if fmt.lower().startswith("32fc1"):
        v = img.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth_m = np.float32(qa) / (v - np.float32(qb))
        depth_m[img == 0] = np.nan
        return depth_m_to_mm16(depth_m)
    return np.array(img, dtype=np.uint16)


def decode_compressed(msg: object, modality: str) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` -> the modality's array (see the module docstring)."""
    fmt = str(msg.format)  # type: ignore[attr-defined]
    kind = compressed_kind(fmt)
    if not check_supported(modality, kind, True):
        raise DecodeError(f"CompressedImage format {fmt!r} cannot feed a {modality} stream; "
                          f"supported: {supported_text(modality)}")
    data = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)  # type: ignore[attr-defined]
    if modality == "rgb":
        bgr = _imdecode(data, cv2.IMREAD_COLOR, f"{kind} image")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    if kind == "compressedDepth":
        return decode_compressed_depth(data, fmt)
    img = _imdecode(data, cv2.IMREAD_UNCHANGED, "png depth image")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise DecodeError(f"png depth image must be 16-bit single channel (mm), got {img.dtype} {img.shape}")
    return np.array(img, dtype=np.uint16)


def decode(msg: object, compressed: bool, modality: str) -> np.ndarray:
    """Decode an Image (``compressed=False``) or CompressedImage for ``modality``."""
    return decode_compressed(msg, modality) if compressed else decode_image(msg, modality)


__all__ = ["RAW_ENCODINGS", "SUPPORTED", "IMAGE_TYPES", "COMPRESSED_TYPES", "DecodeError",
           "supported_text", "compressed_kind", "message_encoding", "check_supported", "image_array",
           "decode_image", "decode_compressed", "decode_compressed_depth", "decode"]
