"""Message <-> numpy conversions: ``sensor_msgs/Image``, ``admn_ros/LayerAllocation`` and stamps.

Our own replacement for the few ``cv_bridge`` calls we need (the PyPI cv-bridge is
broken here), with the same semantics:

* :func:`numpy_to_image` (cv_bridge ``cv2_to_imgmsg``): ``step = width * channels *
  itemsize``, ``is_bigendian`` set to the host byte order, data copied with two
  buffer copies (no per-element Python work; do *not* set ``ROS_PYTHON_CHECK_FIELDS``,
  which makes the payload assignment ~100x slower).
* :func:`image_to_numpy` (cv_bridge ``imgmsg_to_cv2``): honours ``step`` (row
  padding is dropped), swaps bytes when ``is_bigendian`` differs from the host, and
  can convert ``rgb8`` <-> ``bgr8`` / ``mono8`` -> colour via ``desired_encoding``.

Supported encodings: ``rgb8``, ``bgr8``, ``mono8``, ``16UC1`` (REP-118 depth in
millimetres, 0 = invalid) and ``32FC1`` (metres or any float map; NaN/inf allowed
unless ``allow_nonfinite=False``). Every error is a ``ValueError`` that names the
problem (encoding, expected vs. actual size, ...).

Also: LayerAllocation <-> boolean ``(n_streams, depth)`` mask (row-major
``active_blocks``), float seconds / integer nanoseconds <-> ``builtin_interfaces/Time``, and
message type names -> rclpy classes (a task's estimate and truth messages are filled by
the task: :meth:`~admn_ros.core.tasks.base.Task.fill_output`).
"""
from __future__ import annotations

import array
import math
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from admn_ros.core.streams import DEPTH, allocation_fields

# ---------------------------------------------------------------------------- encodings


@dataclass(frozen=True)
class EncodingInfo:
    """dtype and channel count of one ``sensor_msgs/Image`` encoding."""

    dtype: np.dtype
    channels: int
    is_float: bool


ENCODINGS: dict[str, EncodingInfo] = {
    "rgb8": EncodingInfo(np.dtype(np.uint8), 3, False),
    "bgr8": EncodingInfo(np.dtype(np.uint8), 3, False),
    "mono8": EncodingInfo(np.dtype(np.uint8), 1, False),
    "16UC1": EncodingInfo(np.dtype(np.uint16), 1, False),
    "32FC1": EncodingInfo(np.dtype(np.float32), 1, True),
}

_HOST_BIG_ENDIAN = sys.byteorder == "big"


def encoding_info(encoding: str) -> EncodingInfo:
    """Return the :class:`EncodingInfo` of ``encoding`` or raise a ``ValueError`` naming it."""
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}") from None


def _shape_text(info: EncodingInfo) -> str:
    return "(H, W)" if info.channels == 1 else f"(H, W, {info.channels})"


def _check_finite(arr: np.ndarray, encoding: str, what: str) -> None:
    if arr.dtype.kind == "f":
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise ValueError(
                f"{what}: {encoding} image contains {n_bad} NaN/inf value(s) "
                "but allow_nonfinite=False")


# ---------------------------------------------------------------------------- stamps


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> ``builtin_interfaces/Time`` (exact)."""
    ns = int(ns)
    if ns < 0:
        raise ValueError(f"stamp must be >= 0 ns, got {ns}")
    sec, nsec = divmod(ns, 1_000_000_000)
    if sec > 2**31 - 1:
        raise ValueError(f"stamp {ns} ns overflows builtin_interfaces/Time.sec (int32)")
    return Time(sec=sec, nanosec=nsec)


def stamp_to_ns(stamp: Time) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds (exact)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def seconds_to_stamp(seconds: float) -> Time:
    """Float seconds (finite, >= 0) -> ``builtin_interfaces/Time``, rounded to the nanosecond."""
    s = float(seconds)
    if not math.isfinite(s):
        raise ValueError(f"stamp seconds must be finite, got {seconds}")
    if s < 0.0:
        raise ValueError(f"stamp seconds must be >= 0, got {seconds}")
    return ns_to_stamp(round(s * 1e9))


def stamp_to_seconds(stamp: Time) -> float:
    """``builtin_interfaces/Time`` -> float seconds."""
    return stamp_to_ns(stamp) * 1e-9


def make_header(stamp: Time | float | int | None = None, frame_id: str = "") -> Header:
    """A ``std_msgs/Header``; ``stamp`` may be a ``Time``, float seconds, or ``None`` (zero)."""
    if stamp is None:
        t = Time()
    elif isinstance(stamp, Time):
        t = stamp
    elif isinstance(stamp, (int, np.integer)) and not isinstance(stamp, bool):
        t = seconds_to_stamp(float(stamp))
    else:
        t = seconds_to_stamp(stamp)
    return Header(stamp=t, frame_id=frame_id)


# ---------------------------------------------------------------------------- images


def numpy_to_image(arr: np.ndarray, encoding: str, header: Header | None = None,
                   *, stamp: Time | float | None = None, frame_id: str = "",
                   allow_nonfinite: bool = True) -> Image:
    """numpy array -> ``sensor_msgs/Image`` (cv_bridge ``cv2_to_imgmsg`` semantics).

    ``arr`` must already have the encoding's dtype (``uint8`` for rgb8/bgr8/mono8,
    ``uint16`` for 16UC1, ``float32`` for 32FC1) and shape (``(H, W, 3)`` for colour,
    ``(H, W)`` or ``(H, W, 1)`` for single channel); nothing is cast silently.
    ``header`` wins over ``stamp``/``frame_id``.
    """
    info = encoding_info(encoding)
    a = np.asarray(arr)
    if a.dtype != info.dtype:
        raise ValueError(f"encoding {encoding!r} needs dtype {info.dtype} {_shape_text(info)}, "
                         f"got dtype {a.dtype} with shape {a.shape}")
    if info.channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    ok_shape = (a.ndim == 2) if info.channels == 1 else (a.ndim == 3 and a.shape[2] == info.channels)
    if not ok_shape:
        raise ValueError(f"encoding {encoding!r} needs shape {_shape_text(info)}, got {a.shape}")
    h, w = int(a.shape[0]), int(a.shape[1])
    if h == 0 or w == 0:
        raise ValueError(f"cannot encode an empty image (shape {a.shape})")
    if not allow_nonfinite:
        _check_finite(a, encoding, "numpy_to_image")
    msg = Image()
    msg.header = header if header is not None else make_header(stamp, frame_id)
    msg.height = h
    msg.width = w
    msg.encoding = encoding
    msg.is_bigendian = 1 if _HOST_BIG_ENDIAN else 0
    msg.step = w * info.channels * info.dtype.itemsize
    buf = array.array("B")
    buf.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))
    msg.data = buf
    return msg


def image_to_numpy(msg: Image, desired_encoding: str = "passthrough", *,
                   copy: bool = False, allow_nonfinite: bool = True) -> np.ndarray:
    """``sensor_msgs/Image`` -> numpy (cv_bridge ``imgmsg_to_cv2`` semantics).

    Returns ``(H, W)`` for single-channel encodings and ``(H, W, 3)`` for colour ones.
    Row padding (``step`` larger than ``width * bytes_per_pixel``) is dropped and big-endian
    payloads are byte-swapped. Without ``copy`` (and with no padding, byte swap or channel
    conversion) the result is a view on ``msg.data``.

    ``desired_encoding``: ``"passthrough"`` or the message's own encoding returns the
    data as is; ``rgb8`` <-> ``bgr8`` swaps channels; ``mono8`` -> ``rgb8``/``bgr8``
    replicates the channel. Other conversions raise ``ValueError``.
    """
    info = encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    n = len(msg.data)
    if h == 0 or w == 0 or n == 0:
        raise ValueError(f"empty {msg.encoding} image: height={h} width={w} len(data)={n}")
    row_bytes = w * info.channels * info.dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"{msg.encoding} image step {step} is smaller than width*bytes_per_pixel "
                         f"= {w}*{info.channels * info.dtype.itemsize} = {row_bytes}")
    if h * step != n:
        raise ValueError(f"{msg.encoding} image size mismatch: height*step = {h}*{step} = "
                         f"{h * step} != len(data) = {n}")
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if step != row_bytes:  # row padding
        raw = raw.reshape(h, step)[:, :row_bytes]
        raw = np.ascontiguousarray(raw)
    dt = info.dtype
    if dt.itemsize > 1:
        dt = dt.newbyteorder(">" if msg.is_bigendian else "<")
    out = raw.view(dt)
    if dt.itemsize > 1 and bool(msg.is_bigendian) != _HOST_BIG_ENDIAN:
        out = out.astype(info.dtype)  # byte swap into native order
    shape = (h, w) if info.channels == 1 else (h, w, info.channels)
    out = out.reshape(shape)
    if not allow_nonfinite:
        _check_finite(out, msg.encoding, "image_to_numpy")
    out = _convert_encoding(out, msg.encoding, desired_encoding)
    if copy and np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8)):
        out = out.copy()
    return out


def _convert_encoding(a: np.ndarray, src: str, dst: str) -> np.ndarray:
    if dst in ("passthrough", src):
        return a
    encoding_info(dst)
    if {src, dst} == {"rgb8", "bgr8"}:
        return np.ascontiguousarray(a[:, :, ::-1])
    if src == "mono8" and dst in ("rgb8", "bgr8"):
        return np.repeat(a[:, :, None], 3, axis=2)
    raise ValueError(f"cannot convert image encoding {src!r} to {dst!r}")


def depth_m_to_mm16(depth_m: np.ndarray) -> np.ndarray:
    """REP-118 depth conversion: float metres -> uint16 millimetres, 0 for invalid
    (NaN, inf, <= 0) and for values beyond 65.535 m."""
    d = np.asarray(depth_m, dtype=np.float32)
    mm = np.rint(d * 1000.0)
    bad = ~np.isfinite(mm) | (mm <= 0) | (mm > 65535)
    mm[bad] = 0
    return mm.astype(np.uint16)


def depth_mm16_to_m(depth_mm: np.ndarray) -> np.ndarray:
    """REP-118 inverse: uint16 millimetres -> float32 metres, NaN where 0 (invalid)."""
    mm = np.asarray(depth_mm)
    out = mm.astype(np.float32) * np.float32(1e-3)
    out[mm == 0] = np.nan
    return out


# ---------------------------------------------------------------------------- allocations


@dataclass
class Allocation:
    """A decoded ``admn_ros/LayerAllocation``."""

    mask: np.ndarray            # bool (n_streams, depth)
    stream_ids: list[str]
    budget: int
    present: np.ndarray         # bool (n_streams,)
    estimated_noise: np.ndarray  # float32 (n_streams,), NaN if not estimated
    controller: str
    decision_ms: float
    first_block_forced: bool
    header: Header


def mask_to_allocation(mask: np.ndarray, stream_ids: Sequence[str], *,
                       budget: int | None = None, header: Header | None = None,
                       stamp: Time | float | None = None,
                       present: Sequence[bool] | np.ndarray | None = None,
                       estimated_noise: Sequence[float] | np.ndarray | None = None,
                       controller: str = "", decision_ms: float = 0.0,
                       first_block_forced: bool = True):
    """Boolean ``(n_streams, depth)`` mask -> ``admn_ros/LayerAllocation``
    (:func:`admn_ros.core.streams.allocation_fields`)."""
    from admn_ros.msg import LayerAllocation

    f = allocation_fields(mask, stream_ids, budget=budget, present=present, estimated_noise=estimated_noise,
                          controller=controller, decision_ms=decision_ms, first_block_forced=first_block_forced)
    msg = LayerAllocation(**{**f, "active_blocks": f["active_blocks"].tolist(),
                             "stream_present": f["stream_present"].tolist()})
    msg.header = header if header is not None else make_header(stamp)
    return msg


def allocation_to_mask(msg) -> Allocation:
    """``admn_ros/LayerAllocation`` -> :class:`Allocation` (mask shape ``(n_streams, depth)``)."""
    ids = list(msg.stream_ids)
    n, depth = len(ids), int(msg.depth)
    if depth == 0:
        raise ValueError("LayerAllocation.depth is 0")
    if len(msg.active_blocks) != n * depth:
        raise ValueError(f"LayerAllocation size mismatch: len(active_blocks) = "
                         f"{len(msg.active_blocks)} != len(stream_ids) * depth = {n}*{depth}")
    mask = np.array(msg.active_blocks, dtype=bool).reshape(n, depth)
    present = (np.ones(n, bool) if len(msg.stream_present) == 0
               else np.array(msg.stream_present, dtype=bool))
    if present.shape != (n,):
        raise ValueError(f"LayerAllocation.stream_present has {present.size} entries, expected {n}")
    noise = (np.full(n, np.nan, np.float32) if len(msg.estimated_noise) == 0
             else np.frombuffer(msg.estimated_noise, dtype=np.float32).copy())
    if noise.shape != (n,):
        raise ValueError(f"LayerAllocation.estimated_noise has {noise.size} entries, expected {n}")
    return Allocation(mask=mask, stream_ids=ids, budget=int(msg.budget), present=present,
                      estimated_noise=noise, controller=msg.controller,
                      decision_ms=float(msg.decision_ms),
                      first_block_forced=bool(msg.first_block_forced), header=msg.header)


def message_class(msgtype: str) -> type:
    """``geometry_msgs/msg/PointStamped`` (or ``geometry_msgs/PointStamped``) -> the rclpy message
    class; ``RuntimeError`` naming the module when the interface package is not importable."""
    import importlib

    parts = str(msgtype).strip("/").split("/")
    pkg, name = parts[0], parts[-1]
    sub = parts[1] if len(parts) == 3 else "msg"
    try:
        return getattr(importlib.import_module(f"{pkg}.{sub}"), name)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"cannot import the Python message class of {msgtype!r} ({pkg}.{sub}.{name}): {e}; "
                           "is the interface package built and on PYTHONPATH?") from None


__all__ = [
    "message_class",
    "ENCODINGS", "EncodingInfo", "encoding_info", "numpy_to_image", "image_to_numpy",
    "depth_m_to_mm16", "depth_mm16_to_m", "ns_to_stamp", "stamp_to_ns", "seconds_to_stamp",
    "stamp_to_seconds", "make_header", "Allocation", "mask_to_allocation",
    "allocation_to_mask", "DEPTH",
]
