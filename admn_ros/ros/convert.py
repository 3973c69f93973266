"""Message <-> numpy conversions of the nodes: images (:func:`image_bridge`; do *not* set
``ROS_PYTHON_CHECK_FIELDS``: it makes the payload assignment ~100x slower), ``admn_ros/LayerAllocation``,
stamps, and message type names -> rclpy classes.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from admn_ros.core.image_convert import ImageBridge
from admn_ros.core.streams import allocation_fields


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds (>= 0) -> ``builtin_interfaces/Time`` (exact)."""
    ns = int(ns)
    if ns < 0:
        raise ValueError(f"stamp must be >= 0 ns, got {ns}")
    sec, nsec = divmod(ns, 1_000_000_000)
    if sec > 2**31 - 1:
        raise ValueError(f"stamp {ns} ns overflows builtin_interfaces/Time.sec (int32)")
    return Time(sec=sec, nanosec=nsec)


def make_header(stamp: Time | None = None, frame_id: str = "") -> Header:
    """A ``std_msgs/Header`` (``stamp`` ``None``: zero)."""
    return Header(stamp=Time() if stamp is None else stamp, frame_id=frame_id)


@functools.lru_cache(maxsize=1)
def image_bridge() -> Any:
    """``cv_bridge.CvBridge()`` if cv_bridge is importable, else our :class:`ImageBridge`
    (same API and results: ``imgmsg_to_cv2`` / ``cv2_to_imgmsg``)."""
    try:
        from cv_bridge import CvBridge
    except ImportError:
        return ImageBridge(Image)
    return CvBridge()


def numpy_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """numpy array, already of the encoding's dtype (nothing is cast) -> ``sensor_msgs/Image``
    through :func:`image_bridge` (``header`` ``None``: a zero stamp and frame id)."""
    return image_bridge().cv2_to_imgmsg(np.asarray(arr), encoding, header if header is not None else make_header())


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
    stream_status: list[str] = field(default_factory=list)   # per stream: ok, missing, frozen, stalled


def mask_to_allocation(mask: np.ndarray, stream_ids: Sequence[str], *, header: Header | None = None,
                       **fields: Any):
    """Boolean ``(n_streams, depth)`` mask -> ``admn_ros/LayerAllocation``; ``fields`` (budget, present,
    estimated_noise, ...) as :func:`admn_ros.core.streams.allocation_fields` takes them."""
    from admn_ros.msg import LayerAllocation

    f = allocation_fields(mask, stream_ids, **fields)
    return LayerAllocation(header=make_header() if header is None else header,
                           **{**f, "active_blocks": f["active_blocks"].tolist(),
                              "stream_present": f["stream_present"].tolist()})


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
    present = np.ones(n, bool) if len(msg.stream_present) == 0 else np.array(msg.stream_present, dtype=bool)
    if present.shape != (n,):
        raise ValueError(f"LayerAllocation.stream_present has {present.size} entries, expected {n}")
    noise = (np.full(n, np.nan, np.float32) if len(msg.estimated_noise) == 0
             else np.frombuffer(msg.estimated_noise, dtype=np.float32).copy())
    if noise.shape != (n,):
        raise ValueError(f"LayerAllocation.estimated_noise has {noise.size} entries, expected {n}")
    return Allocation(mask=mask, stream_ids=ids, budget=int(msg.budget), present=present, estimated_noise=noise,
                      controller=msg.controller, decision_ms=float(msg.decision_ms),
                      first_block_forced=bool(msg.first_block_forced), header=msg.header,
                      stream_status=list(msg.stream_status))


def message_class(msgtype: str) -> type:
    """``geometry_msgs/msg/PointStamped`` (or ``geometry_msgs/PointStamped``) -> the rclpy message
    class; ``RuntimeError`` naming the module when the interface package is not importable."""
    parts = str(msgtype).strip("/").split("/")
    pkg, name = parts[0], parts[-1]
    sub = parts[1] if len(parts) == 3 else "msg"
    try:
        return getattr(importlib.import_module(f"{pkg}.{sub}"), name)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"cannot import the Python message class of {msgtype!r} ({pkg}.{sub}.{name}): {e}; "
                           "is the interface package built and on PYTHONPATH?") from None

