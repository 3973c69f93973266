"""QoS profiles of every admn_ros node (one place, so publishers and subscribers match):
best-effort sensor data (a best-effort subscriber matches best-effort and reliable publishers)
and reliable outputs (allocations, embeddings, estimates). Keep last, volatile."""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def sensor_qos(depth: int = 5) -> QoSProfile:
    """Best effort, keep last ``depth``, volatile: for high-rate sensor data."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable, keep last ``depth``, volatile: for allocations and outputs."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """QoS of an ``image_reliability`` parameter: ``reliable``, else sensor data QoS."""
    return reliable_qos(depth) if reliability == "reliable" else sensor_qos(depth)
