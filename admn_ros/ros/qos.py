"""QoS profiles of every admn_ros node, in one place so publishers and subscribers match: keep last,
volatile; best-effort sensor data (matches best-effort and reliable publishers), reliable outputs."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """Keep last ``depth``, volatile, ``reliable`` or else best effort (an ``image_reliability`` parameter)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), durability=DurabilityPolicy.VOLATILE,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else
                      ReliabilityPolicy.BEST_EFFORT)


def sensor_qos(depth: int = 5) -> QoSProfile:
    """Best effort: for high-rate sensor data."""
    return image_qos("best_effort", depth)


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable: for allocations and outputs."""
    return image_qos("reliable", depth)
