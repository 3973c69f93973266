"""Live and replayed allocations agree on a bag with a frozen stream.

A simulated bag (``record_sim``) whose node1 camera is frozen twice (the simulator's
``frozen`` corruption, flickering) is replayed offline (:func:`admn_ros.bags.replay.replay`,
what ``admn-ros replay`` runs) and fed, message by message in log order, to the live node of
its task (the controller node for tracking, the window node for activity: their
``message_filters`` subscribers' callbacks, as in ``test_sync_replay``). Both apply the stream
health check: the frozen stream gets 0 blocks with ``stream_status`` ``frozen`` from the same
frame on, rejoins at the same frame, and every allocation (mask and status) is the same.
Untrained weights in a tmp dir.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from admn_ros.bags.pipeline import make_pipeline
from admn_ros.bags.reader import BagFrames, _open_reader
from admn_ros.bags.record import DEFAULT_START_TIME, record_sim
from admn_ros.bags.replay import replay
from admn_ros.core.health import HealthConfig
from admn_ros.core.sim import CorruptionSpec
from admn_ros.core.tasks import get_task
from fixtures import write_random_activity_models, write_random_models
from fixtures.lifecycle import state_label

pytestmark = pytest.mark.ros

# node1/rgb frozen during the first 1.2 s of every 3 s: twice in 5 s
FROZEN = CorruptionSpec("frozen", schedule="flicker", period_s=3.0, duty=0.4)
CASES = {"tracking": dict(frames=75, budget=27), "activity": dict(frames=50, budget=9)}


@pytest.fixture(scope="module", params=list(CASES))
def frozen_bag(request, tmp_path_factory):
    task = request.param
    d = tmp_path_factory.mktemp(f"health_{task}")
    if task == "tracking":
        write_random_models(d / "models", seed=1, budgets=(27,))
    else:
        write_random_activity_models(d / "models", frames=4, budgets=(9,))
    record_sim(d / "bag", task=task, frames=CASES[task]["frames"], seed=2, corruptions={"node1/rgb": FROZEN})
    return task, d


def _offline(task: str, d: Path) -> dict[int, tuple[np.ndarray, list[str]]]:
    """stamp -> (mask, stream_status) of the allocations ``admn-ros replay`` writes to its output bag."""
    with BagFrames(d / "bag", get_task(task).mapping) as bf:
        ids = bf.stream_ids
    pipe = make_pipeline("admn", ids, CASES[task]["budget"], model_dir=str(d / "models"), backend="torch", task=task)
    replay(d / "bag", pipe, d / "offline", task=task)
    out: dict[int, tuple[np.ndarray, list[str]]] = {}
    reader = _open_reader(d / "offline" / "outputs")
    try:
        for conn, _, raw in reader.messages():
            if conn.topic.strip("/") == "admn/allocation":
                m = reader.deserialize(raw, conn.msgtype)
                ns = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
                out[ns] = (np.asarray(m.active_blocks, bool).reshape(len(m.stream_ids), -1), list(m.stream_status))
    finally:
        reader.close()
    return out


def _live(task: str, d: Path) -> dict[int, tuple[np.ndarray, list[str]]]:
    """The same from the task's live node, fed the bag's image messages in log order."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from admn_ros.ros import topics
    from admn_ros.ros.activity_node import ActivityNode
    from admn_ros.ros.controller_node import ControllerNode
    from admn_ros.core.sync import stamp_to_ns
    from admn_ros.ros.convert import allocation_to_mask

    t = get_task(task)
    with BagFrames(d / "bag", t.mapping) as bf:
        sync = bf.sync_parameters
        ids = bf.stream_ids
    # fed as fast as it goes: the wall clock barely moves, so no stream may time out (none does offline)
    params = {"model_dir": str(d / "models"), "backend": "torch", "max_future_s": 0.0, "diagnostics_period": 0.0,
              "budget": CASES[task]["budget"], **sync, "timeout": 30.0}
    if t.graph == "window":
        cls = ActivityNode
        params.update(ground_truth=False, publish_markers=False, dashboard_rate=0.0, sensor_nodes=["node1"])
    else:
        cls = ControllerNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    out: dict[int, tuple[np.ndarray, list[str]]] = {}
    try:
        node = cls(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        assert state_label(node) == "active", node.configure_error
        publish = node.alloc_pub.publish

        def keep(msg):
            a = allocation_to_mask(msg)
            out[stamp_to_ns(msg.header.stamp)] = (a.mask, a.stream_status)
            publish(msg)

        node.alloc_pub.publish = keep
        by_topic = {topics.image_topic(sid).strip("/"): sid for sid in ids}
        reader = _open_reader(d / "bag")
        try:
            for conn, _, raw in reader.messages():
                sid = by_topic.get(conn.topic.strip("/"))
                if sid is not None:
                    node.input_filters[topics.image_topic(sid)].callback(deserialize_message(bytes(raw), Image))
        finally:
            reader.close()
        assert node.sync.health["node1/rgb"].events["frozen"] == 2
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
    return out


def test_live_and_replayed_allocations_agree_on_a_frozen_stream(frozen_bag):
    """Break tried: building the bag reader's synchronizer without the health check (replay gave
    the frozen stream blocks, the live node did not); not dropping a frozen stream's frames from
    replay's window (activity: replay kept giving it blocks from the window's older frames)."""
    task, d = frozen_bag
    offline, live = _offline(task, d), _live(task, d)
    assert offline and sorted(live) == sorted(offline)
    rgb = 0                                        # node1/rgb is the first stream of both tasks
    frozen = [s for s in sorted(offline) if offline[s][1][rgb] == "frozen"]
    for s in sorted(offline):
        np.testing.assert_array_equal(live[s][0], offline[s][0], err_msg=f"allocation at {s}")
        assert live[s][1] == offline[s][1], s
        if s in frozen:
            assert not offline[s][0][rgb].any()
    # two freezes (frames [a, a + n) of each 3 s); the first frozen frame repeats the one before it
    # (at frame 0: none), so the stream is frozen from the frozen_frames-th repeat on, and ok again
    # at the recover_frames-th changed frame
    rate = 15.0 if task == "tracking" else 10.0
    h, n, a2 = HealthConfig(), round(FROZEN.duty * FROZEN.period_s * rate), round(FROZEN.period_s * rate)
    k = [round((s - DEFAULT_START_TIME * 1e9) * 1e-9 * rate) for s in frozen]
    runs = np.split(np.array(k), np.flatnonzero(np.diff(k) > 1) + 1)
    assert [(r[0], r[-1]) for r in runs] == [(h.frozen_frames, n + h.recover_frames - 2),
                                            (a2 + h.frozen_frames - 1, a2 + n + h.recover_frames - 2)]
    assert any(st[rgb] == "ok" and m[rgb].any() for m, st in offline.values())
