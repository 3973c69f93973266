"""Live and replayed synchronization agree on a bag with reordered and late messages.

The bag (written here with rosbags) holds nine image streams at 10 Hz in an arrival order
a real network can produce: frames interleaved across streams, one stream's message for
frame 1 arriving after its message for frame 2, frame 3's last message arriving after frame
4 was complete (message_filters fires frame 3 after frame 4: dropped as stale), frame 5
losing one message (never complete), and a repeated stamp. The expected frames are 0, 1, 2,
4, 6, 7, each with every stream.

* offline: :class:`admn_ros.bags.reader.BagFrames` synchronises it;
* the live path without DDS: the controller node's ``message_filters`` subscribers get the
  same messages in the same order (their ``callback``, what a subscription calls);
* the live graph over DDS: ``admn-ros play`` publishes the bag to a running controller node,
  whose allocations name the frames (stamp, streams present).

All three give the same frames."""
from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from admn_ros.bags import msgs
from admn_ros.bags.mapping import load_mapping
from admn_ros.bags.reader import BagFrames
from admn_ros.bags.record import open_writer
from admn_ros.bags.typestore import get_admn_typestore
from fixtures import write_random_models
from fixtures.lifecycle import state_label

pytestmark = pytest.mark.ros

T0 = 1_700_000_000 * 10**9
PERIOD = 100_000_000
SLOP, QUEUE, TIMEOUT = 0.03, 10, 30.0
EXPECTED = [0, 1, 2, 4, 6, 7]
ENC = {"rgb": "rgb8", "depth": "16UC1", "radar": "32FC1"}


def _stamp(sid_index: int, k: int) -> int:
    return T0 + k * PERIOD + (sid_index * 1_300_000) % 9_000_000     # per-stream offsets < 9 ms


def _arrival_order(sids: list[str]) -> list[tuple[str, int]]:
    """(stream, frame) in arrival order; see the module docstring."""
    rng = random.Random(5)
    r1, d2, r3 = sids[0], sids[4], sids[8]                 # node1/rgb, node2/depth, node3/radar

    def frame(k, skip=()):
        f = [(s, k) for s in sids if s not in skip]
        rng.shuffle(f)
        return f

    order = frame(0)
    order += frame(1, skip=(r1,))
    order += [(r1, 2), (r1, 1)]                            # node1/rgb: frame 2 overtakes frame 1
    order += frame(2, skip=(r1,))
    order += frame(3, skip=(d2,))
    order += frame(4)
    order += [(d2, 3)]                                     # late: frame 3 completes after frame 4
    order += frame(5, skip=(r3,))                          # node3/radar's frame 5 is lost
    order += frame(6) + [(sids[1], 6)]                     # node1/depth frame 6 again
    order += frame(7)
    return order


@pytest.fixture(scope="module")
def reordered_bag(tmp_path_factory) -> tuple[Path, list[str], list[tuple[str, int]]]:
    mapping = load_mapping("default")
    sids = mapping.stream_ids
    d = tmp_path_factory.mktemp("sync_replay")
    ts = get_admn_typestore()
    w = open_writer(d / "bag", "sqlite3")
    conns = {sid: w.add_connection(mapping.stream(sid).topic, "sensor_msgs/msg/Image", typestore=ts) for sid in sids}
    rng = np.random.default_rng(0)
    order = _arrival_order(sids)
    for n, (sid, k) in enumerate(order):
        mod = sid.split("/")[1]
        if mod == "rgb":
            arr = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        elif mod == "depth":
            arr = rng.integers(500, 4000, (32, 32), dtype=np.uint16)
        else:
            arr = rng.random((32, 32), dtype=np.float32)
        msg = msgs.image(arr, ENC[mod], msgs.header(_stamp(sids.index(sid), k), sid.replace("/", "_")))
        w.write(conns[sid], T0 + 500_000_000 + n * 60_000_000, msgs.serialize(msg))   # log time = arrival
    w.close()
    write_random_models(d / "models", seed=2, budgets=(27,))
    return d, sids, order


def _offline(bag_dir: Path):
    with BagFrames(bag_dir / "bag", "default", slop=SLOP, timeout=TIMEOUT, queue_size=QUEUE) as bf:
        frames = [(f.stamp_ns, dict(f.stream_stamps_ns)) for f in bf]
        return frames, bf.stats


def _controller(ctx, model_dir: Path, **extra):
    from rclpy.parameter import Parameter

    from admn_ros.ros.controller_node import ControllerNode

    params = {"model_dir": str(model_dir), "backend": "torch", "slop": SLOP, "queue_size": QUEUE,
              "timeout": TIMEOUT, "image_reliability": "reliable", "qos_depth": 50, "max_future_s": 0.0,
              "diagnostics_period": 0.2, **extra}
    node = ControllerNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    assert state_label(node) == "active", node.configure_error
    return node


def test_offline_frames_are_the_message_filters_sets(reordered_bag):
    """Break tried: emitting the stale set puts frame 3 after frame 4 and fails this test."""
    d, sids, _ = reordered_bag
    frames, stats = _offline(d)
    assert [(s - T0) // PERIOD for s, _ in frames] == EXPECTED
    for (stamp, per_stream), k in zip(frames, EXPECTED):
        assert per_stream == {sid: _stamp(i, k) for i, sid in enumerate(sids)}
        assert stamp == max(per_stream.values())
    assert stats.stale_sets >= 1 and stats.sets == len(EXPECTED)


def test_the_node_path_forms_the_same_frames_as_offline_replay(reordered_bag):
    """The controller's message_filters subscribers get the bag's messages in log order.

    Break tried: rejecting out-of-order stamps before the synchronizer (the nodes' former
    stamp check) loses frame 1; emitting stale sets adds frame 3 after frame 4."""
    import rclpy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from admn_ros.bags.reader import _open_reader
    from admn_ros.ros import topics

    d, sids, _ = reordered_bag
    offline, _ = _offline(d)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = _controller(ctx, d / "models")
        live: list = []
        process = node._process
        node._process = lambda fs: (live.append((fs.stamp_ns, dict(fs.stamps_ns))), process(fs))
        by_topic = {topics.image_topic(sid).lstrip("/"): sid for sid in sids}
        reader = _open_reader(d / "bag")
        try:
            for conn, _, raw in reader.messages():
                sid = by_topic[conn.topic.lstrip("/")]
                node.input_filters[topics.image_topic(sid)].callback(deserialize_message(bytes(raw), Image))
        finally:
            reader.close()
        assert live == offline
        assert node.sync.stats.stale_sets == 1 and node.monitor.dropped["stale_set"] == 1
        assert node.frames == len(EXPECTED) and not any(node.monitor.rejected(s) for s in sids)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_the_controller_over_dds_playing_the_bag_allocates_the_offline_frames(reordered_bag):
    """``admn-ros play`` -> controller_node over DDS: one allocation per offline frame, with
    the frame's stamp and every stream present, and the late frame counted as stale.

    Break tried: rejecting out-of-order stamps before the synchronizer loses frame 1."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from admn_ros.bags.play import play
    from admn_ros.msg import LayerAllocation
    from admn_ros.ros import topics
    from admn_ros.core.sync import stamp_to_ns
    from admn_ros.ros.qos import reliable_qos

    d, sids, _ = reordered_bag
    offline, _ = _offline(d)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    stop = threading.Event()
    try:
        node = _controller(ctx, d / "models")
        tn = rclpy.create_node("sync_replay_test", context=ctx)
        player = rclpy.create_node("sync_replay_player", context=ctx)
        allocs: list = []
        tn.create_subscription(LayerAllocation, topics.ALLOCATION, allocs.append, reliable_qos(50))
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        ex.add_node(tn)

        def spin():
            while not stop.is_set():
                ex.spin_once(timeout_sec=0.01)

        th = threading.Thread(target=spin, daemon=True)
        th.start()
        stats = play(d / "bag", player, rate=1.0, clock=False, start_delay=0.5, match_timeout=10.0)
        assert stats.messages == len(_arrival_order(sids))
        end = time.monotonic() + 5.0
        while len(allocs) < len(offline) and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        th.join(5.0)
        got = [(stamp_to_ns(m.header.stamp), list(m.stream_present)) for m in allocs]
        assert got == [(stamp, [True] * len(sids)) for stamp, _ in offline], stats.text()
        assert node.sync.stats.stale_sets == 1
        assert node.monitor.dropped["stale_set"] == 1
        ex.shutdown()
        for n in (node, tn, player):
            n.destroy_node()
    finally:
        stop.set()
        rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize("offset_ms", [0, 40])
def test_a_stream_stamped_further_than_slop_from_the_others_is_named_on_diagnostics(reordered_bag, offset_ms):
    """Every input sends, but node1/rgb is stamped 40 ms (more than ``slop``, less than ``timeout``) after the
    others: no frame completes, and the controller's summary on /diagnostics says so (WARN, naming ``slop``)
    rather than staying OK. Without the offset the frames complete and no such warning appears.
    Break tried: no stuck-synchronizer check in ``summary_status`` (the summary stayed OK with sync_sets 0)."""
    import rclpy

    from admn_ros.ros import topics
    from admn_ros.ros.convert import make_header, ns_to_stamp, numpy_to_image
    from admn_ros.ros.diagnostics import WARN

    d, sids, _ = reordered_bag
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = _controller(ctx, d / "models")
        rng = np.random.default_rng(1)
        for k in range(25):
            for i, sid in enumerate(sids):
                mod = sid.split("/")[1]
                arr = {"rgb": lambda: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                       "depth": lambda: rng.integers(500, 4000, (32, 32), dtype=np.uint16),
                       "radar": lambda: rng.random((32, 32), dtype=np.float32)}[mod]()
                stamp = _stamp(i, k) + (offset_ms * 10**6 if i == 0 else 0)
                msg = numpy_to_image(arr, ENC[mod], make_header(ns_to_stamp(stamp)))
                node.input_filters[topics.image_topic(sid)].callback(msg)
        summary = next(s for s in node.diagnostic_statuses() if s.name.endswith(node.SUMMARY))
        if offset_ms:
            assert node.sync.stats.sets == 0 and node.sync.stats.discarded > 0
            assert summary.level == WARN and "slop" in summary.message, summary.message
        else:
            assert node.sync.stats.sets >= 20 and "slop" not in summary.message, summary.message
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
