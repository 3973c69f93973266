"""Message <-> numpy conversions of the nodes: ``sensor_msgs/Image`` through cv_bridge,
``admn_ros/LayerAllocation``, ``admn_ros/ActivityLabel`` and stamps.

Images: :func:`image_bridge` is ``cv_bridge.CvBridge()`` when cv_bridge is importable and
otherwise :class:`admn_ros.core.image_convert.ImageBridge`, which gives the same results
(the conversions themselves live in :mod:`admn_ros.core.image_convert`). The nodes read
images with its ``imgmsg_to_cv2`` and publish them with :func:`numpy_to_image`
(``cv2_to_imgmsg``: ``step = width * channels * itemsize``, ``is_bigendian`` from the
array's byte order, the data copied in one buffer copy; do *not* set
``ROS_PYTHON_CHECK_FIELDS``, which makes the payload assignment ~100x slower).

Also: LayerAllocation <-> boolean ``(n_streams, depth)`` mask (row-major
``active_blocks``), class probabilities <-> ``admn_ros/ActivityLabel``, and float seconds /
integer nanoseconds <-> ``builtin_interfaces/Time``.
"""
from __future__ import annotations

import array
import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from admn_ros.core.image_convert import ImageBridge
from admn_ros.core.streams import DEPTH, split_stream_id

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


@functools.lru_cache(maxsize=1)
def image_bridge() -> Any:
    """``cv_bridge.CvBridge()`` if cv_bridge is importable, else our :class:`ImageBridge`
    (same API and results: ``imgmsg_to_cv2`` / ``cv2_to_imgmsg``)."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return ImageBridge(Image)
    return CvBridge()


def numpy_to_image(arr: np.ndarray, encoding: str, header: Header | None = None,
                   *, stamp: Time | float | None = None, frame_id: str = "") -> Image:
    """numpy array -> ``sensor_msgs/Image`` through :func:`image_bridge` (``cv2_to_imgmsg``).

    ``arr`` must already have the encoding's type (``uint8 (H, W, 3)`` for rgb8, ``uint16``
    for 16UC1, ``float32`` for 32FC1, ...); nothing is cast. ``header`` wins over
    ``stamp``/``frame_id``.
    """
    return image_bridge().cv2_to_imgmsg(np.asarray(arr), encoding,
                                        header if header is not None else make_header(stamp, frame_id))


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
    """Boolean ``(n_streams, depth)`` mask -> ``admn_ros/LayerAllocation`` (row-major).

    ``budget`` defaults to the number of active blocks; ``present`` to all true;
    ``estimated_noise`` to NaN (not estimated).
    """
    from admn_ros.msg import LayerAllocation

    m = np.asarray(mask)
    ids = list(stream_ids)
    if m.ndim != 2:
        raise ValueError(f"allocation mask must be 2-D (n_streams, depth), got shape {m.shape}")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("allocation mask must be boolean (or 0/1)")
        m = m.astype(bool)
    n, depth = m.shape
    if n != len(ids):
        raise ValueError(f"allocation mask has {n} rows but {len(ids)} stream_ids were given")
    if not 0 < depth < 2**16:
        raise ValueError(f"allocation depth {depth} out of range")
    for sid in ids:
        split_stream_id(sid)
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate stream ids in {ids}")
    pres = np.ones(n, bool) if present is None else np.asarray(present, dtype=bool).reshape(-1)
    if pres.shape != (n,):
        raise ValueError(f"stream_present has {pres.size} entries, expected {n}")
    noise = (np.full(n, np.nan, np.float32) if estimated_noise is None
             else np.asarray(estimated_noise, dtype=np.float32).reshape(-1))
    if noise.shape != (n,):
        raise ValueError(f"estimated_noise has {noise.size} entries, expected {n}")
    b = int(m.sum()) if budget is None else int(budget)
    if not 0 <= b < 2**16:
        raise ValueError(f"budget {b} out of range for uint16")
    msg = LayerAllocation()
    msg.header = header if header is not None else make_header(stamp)
    msg.budget = b
    msg.depth = depth
    msg.first_block_forced = bool(first_block_forced)
    msg.stream_ids = ids
    msg.active_blocks = m.reshape(-1).tolist()
    msg.stream_present = pres.tolist()
    msg.estimated_noise = array.array("f", noise.tobytes())
    msg.controller = controller
    msg.decision_ms = float(decision_ms)
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


# ---------------------------------------------------------------------------- activity labels


def make_activity_label(classes: Sequence[str], probs: Sequence[float] | np.ndarray, *,
                        header: Header | None = None, window_frames: int = 0):
    """Class probabilities (model index order) -> ``admn_ros/ActivityLabel`` (fields and
    errors: :func:`admn_ros.core.activity_runtime.activity_label_fields`)."""
    from admn_ros.core.activity_runtime import activity_label_fields
    from admn_ros.msg import ActivityLabel

    f = activity_label_fields(classes, probs, window_frames)
    msg = ActivityLabel()
    msg.header = header if header is not None else Header()
    msg.class_id, msg.class_name, msg.confidence = f["class_id"], f["class_name"], f["confidence"]
    msg.class_names = f["class_names"]
    msg.scores = array.array("f", f["scores"].tobytes())
    msg.window_frames = f["window_frames"]
    return msg


def activity_label_probs(msg, classes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """``admn_ros/ActivityLabel`` -> ``(class names, float32 probabilities)``, in ``classes``
    order if given (absent classes get 0), else in the message's score order.
    Raises ``ValueError`` if ``class_names`` and ``scores`` differ in length."""
    names = list(msg.class_names)
    scores = np.asarray(msg.scores, dtype=np.float32).reshape(-1)
    if len(names) != scores.size:
        raise ValueError(f"ActivityLabel has {len(names)} class_names but {scores.size} scores")
    if classes is None:
        return names, scores
    by = dict(zip(names, scores.tolist()))
    return list(classes), np.array([by.get(c, 0.0) for c in classes], np.float32)


__all__ = [
    "make_activity_label", "activity_label_probs", "image_bridge", "numpy_to_image",
    "ns_to_stamp", "stamp_to_ns", "seconds_to_stamp",
    "stamp_to_seconds", "make_header", "Allocation", "mask_to_allocation",
    "allocation_to_mask", "DEPTH",
]
