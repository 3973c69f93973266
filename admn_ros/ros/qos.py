"""QoS profiles used by every admn_ros node (one place, so publishers and subscribers match).

* :func:`sensor_qos` for camera/depth/radar images and QoI: best effort, keep last,
  small depth, volatile (``rclpy.qos.qos_profile_sensor_data`` semantics). A best-effort
  subscriber matches both best-effort and reliable publishers.
* :func:`reliable_qos` for layer allocations, embeddings, estimates and other outputs
  that must not be lost: reliable, keep last, volatile.
* :func:`latched_qos` for rarely changing state (e.g. a config description): reliable,
  transient local, depth 1.
"""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

SENSOR_DEPTH = 5
RELIABLE_DEPTH = 10


def sensor_qos(depth: int = SENSOR_DEPTH) -> QoSProfile:
    """Best effort, keep last ``depth``, volatile: for high-rate sensor data."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = RELIABLE_DEPTH) -> QoSProfile:
    """Reliable, keep last ``depth``, volatile: for allocations and outputs."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """Reliable + transient local, depth 1: late joiners get the last message."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


PROFILES = {"sensor": sensor_qos, "reliable": reliable_qos, "latched": latched_qos}


def qos_by_name(name: str, depth: int | None = None) -> QoSProfile:
    """Profile by name (``sensor``, ``reliable``, ``latched``), e.g. from a string parameter."""
    try:
        factory = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown QoS profile {name!r}; known: {sorted(PROFILES)}") from None
    if depth is None or name == "latched":
        return factory()
    return factory(depth)
