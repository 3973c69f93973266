"""admn_ros.ros.msg_filters: the message_filters API the nodes use (the package when it is
installed, ours otherwise): implementation choice, the ROS clock for headerless messages,
and a Subscriber feeding a synchronizer over real DDS."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time

import pytest

from admn_ros.ros import msg_filters


def test_builtin_is_chosen_without_the_package_or_on_request():
    env = dict(os.environ, ADMN_MESSAGE_FILTERS="builtin")
    out = subprocess.run([sys.executable, "-c", "from admn_ros.ros import msg_filters as m; "
                          "print(m.IMPLEMENTATION, m.ApproximateTimeSynchronizer.__name__, m.Subscriber.__name__)"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["admn_ros", "BuiltinApproximateTimeSynchronizer", "BuiltinSubscriber"]
    bad = subprocess.run([sys.executable, "-c", "import admn_ros.ros.msg_filters"],
                         env=dict(os.environ, ADMN_MESSAGE_FILTERS="nope"), capture_output=True, text=True)
    assert bad.returncode != 0 and "ADMN_MESSAGE_FILTERS='nope'" in bad.stderr
    if importlib.util.find_spec("message_filters") is None:
        assert msg_filters.IMPLEMENTATION == "admn_ros"
    else:
        assert msg_filters.IMPLEMENTATION == "message_filters"


def test_headerless_messages_get_the_ros_clock():
    from rclpy.clock import ROSClock

    class Headerless:
        pass

    fs = [msg_filters.SimpleFilter(), msg_filters.SimpleFilter()]
    sync = msg_filters.BuiltinApproximateTimeSynchronizer(fs, 5, 0.5, allow_headerless=True)
    before = ROSClock().now().nanoseconds
    fs[0].signalMessage(Headerless())
    after = ROSClock().now().nanoseconds
    (stamp,) = sync.queues[0]
    assert before <= stamp <= after
    assert sync.slop.nanoseconds == 500_000_000        # an rclpy Duration, as in message_filters


def test_subscriber_feeds_a_synchronizer_over_dds():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from geometry_msgs.msg import PointStamped

    from admn_ros.ros.qos import reliable_qos

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("msg_filters_test", context=ctx)
        subs = [msg_filters.Subscriber(node, PointStamped, f"mf_test/{k}", qos_profile=reliable_qos(10)) for k in "ab"]
        assert [s.getTopic() for s in subs] == ["mf_test/a", "mf_test/b"]
        assert subs[0].topic_name.endswith("mf_test/a")        # subscription attributes pass through
        sync = msg_filters.ApproximateTimeSynchronizer(subs, 10, 0.01)
        got: list = []
        sync.registerCallback(lambda a, b: got.append((a.header.frame_id, b.header.frame_id)))
        pubs = [node.create_publisher(PointStamped, f"mf_test/{k}", reliable_qos(10)) for k in "ab"]
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        end = time.monotonic() + 10
        while time.monotonic() < end and not all(p.get_subscription_count() for p in pubs):
            ex.spin_once(timeout_sec=0.05)
        for k, p in zip("ab", pubs):
            m = PointStamped()
            m.header.frame_id = k
            m.header.stamp.sec = 42
            p.publish(m)
        end = time.monotonic() + 10
        while time.monotonic() < end and not got:
            ex.spin_once(timeout_sec=0.05)
        assert got == [("a", "b")]
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("name", ["SimpleFilter", "Subscriber", "TimeSynchronizer", "ApproximateTimeSynchronizer"])
def test_the_message_filters_names_are_there(name):
    assert callable(getattr(msg_filters, name))
