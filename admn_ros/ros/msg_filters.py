"""The ``message_filters`` API the nodes use: the ROS 2 package when it is importable, else :mod:`admn_ros.core.sync`
bound to the ROS clock and logger (``IMPLEMENTATION``: ``"message_filters"`` or ``"admn_ros"``; :data:`ENV` chooses)."""
from __future__ import annotations

import os
from typing import Any, Sequence

import rclpy.logging
from rclpy.clock import ROSClock
from rclpy.duration import Duration

from admn_ros.core import sync as _core

#: environment variable choosing the implementation: auto (default), builtin, message_filters
ENV = "ADMN_MESSAGE_FILTERS"


class BuiltinSubscriber(_core.SimpleFilter):
    """An rclpy subscription (``create_subscription`` arguments without the callback) as the first
    filter of a chain; unknown attributes are looked up on the subscription."""

    def __init__(self, node: Any, msg_type: Any, topic: str, qos_profile: Any = 10, **kwargs: Any) -> None:
        _core.SimpleFilter.__init__(self)
        self.node = node
        self.topic = topic
        self.sub = node.create_subscription(msg_type, topic, self.callback, qos_profile, **kwargs)

    def callback(self, msg: Any) -> None:
        self.signalMessage(msg)

    def getTopic(self) -> str:  # noqa: N802 - message_filters API
        return self.topic

    def __getattr__(self, key: str) -> Any:
        if key == "sub":
            raise AttributeError(key)
        return getattr(self.sub, key)


class BuiltinApproximateTimeSynchronizer(_core.ApproximateTimeSynchronizer):
    """:class:`admn_ros.core.sync.ApproximateTimeSynchronizer` with the ROS clock and logger;
    ``slop`` is an ``rclpy.duration.Duration``, as in the package."""

    def __init__(self, fs: Sequence[Any], queue_size: int, slop: float, queue_offset: Any = False,
                 allow_headerless: bool = False, sync_arrival_time: bool = False) -> None:
        super().__init__(fs, queue_size, slop, queue_offset, allow_headerless, sync_arrival_time,
                         clock=lambda: int(ROSClock().now().nanoseconds),
                         logger=rclpy.logging.get_logger("message_filters_approx"))
        self.slop = Duration(nanoseconds=self.slop_ns)


def _load(choice: str) -> tuple[str, Any, Any, Any, Any]:
    if choice not in ("auto", "builtin", "message_filters"):
        raise ValueError(f"{ENV}={choice!r}: use auto, builtin or message_filters")
    if choice != "builtin":
        try:
            import message_filters as mf

            return "message_filters", mf.SimpleFilter, mf.Subscriber, mf.TimeSynchronizer, \
                mf.ApproximateTimeSynchronizer
        except ImportError:
            if choice == "message_filters":
                raise
    return "admn_ros", _core.SimpleFilter, BuiltinSubscriber, _core.TimeSynchronizer, \
        BuiltinApproximateTimeSynchronizer


IMPLEMENTATION, SimpleFilter, Subscriber, TimeSynchronizer, ApproximateTimeSynchronizer = \
    _load(os.environ.get(ENV, "auto").strip().lower() or "auto")
