"""activity_node (the window node) over real DDS (localhost, this session's ROS_DOMAIN_ID), with
an untrained random activity model written to a tmp dir.

* (a) ``admn_ros/ActivityLabel`` round trip: every field survives publish/subscribe;
* (b) synthetic node1 rgb/depth/radar frames with one frame missing its depth message:
  as with message_filters that frame never completes and the window slides on without it;
  a label arrives for every other frame of a full window (``window_frames`` = F, scores sum to 1 in score order, the model's class
  names), the window's ``LayerAllocation`` uses exactly the budget; then depth dies for
  good: labels go on and depth gets 0 blocks; markers and the dashboard show the label;
* (c) bad input (wrong encoding, size, NaN radar, zero stamp) is rejected and counted by
  reason on /diagnostics, and the node keeps labelling;
* the entry point: ``admn-ros run activity`` / ``demo --task activity`` build the activity
  graph, and ``admn-ros demo --task activity`` runs it on the simulated activity sensors
  (sensor_node ``scenario:=activity``) with labels, truth and allocations.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from admn_ros.core.tasks import get_task
from fixtures import write_random_activity_models
from fixtures.lifecycle import state_label

pytestmark = pytest.mark.ros

CLASSES = ["standing", "walking", "sitting", "waving", "falling"]
FRAMES = 4
BUDGET = 9                      # 25% of 3 streams x 12 blocks (the node's default)
SIDS = ["node1/rgb", "node1/depth", "node1/radar"]
PERIOD_NS = 100_000_000         # 10 Hz
TASK = get_task("activity")


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("activity_models")
    write_random_activity_models(d, frames=FRAMES, classes=CLASSES, seed=1, budgets=(BUDGET,))
    return d


class Rig:
    """The activity node (in-process, autostarted) plus a test node publishing images and
    recording labels, allocations, markers, dashboards and diagnostics; one executor."""

    def __init__(self, model_dir: Path, **params) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray

        from admn_ros.msg import ActivityLabel, LayerAllocation
        from admn_ros.ros import topics
        from admn_ros.ros.activity_node import ActivityNode
        from admn_ros.ros.qos import reliable_qos

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        overrides = {"model_dir": str(model_dir), "backend": "torch", "image_reliability": "reliable",
                     "diagnostics_period": 0.3, "dashboard_rate": 10.0, "ground_truth": False, **params}
        self.node = ActivityNode(context=self.ctx,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        assert state_label(self.node) == "active", self.node.configure_error
        self.tn = rclpy.create_node("activity_test", context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.tn)
        self.labels: list = []
        self.allocs: list = []
        self.markers: list = []
        self.dash: list = []
        self.diag: dict[str, object] = {}
        t = self.tn
        t.create_subscription(ActivityLabel, TASK.output.topic, lambda m: self.labels.append(m), reliable_qos(100))
        t.create_subscription(LayerAllocation, topics.ALLOCATION, lambda m: self.allocs.append(m),
                              reliable_qos(100))
        t.create_subscription(MarkerArray, topics.MARKERS, lambda m: self.markers.append(m), reliable_qos(5))
        t.create_subscription(Image, topics.DASHBOARD, lambda m: self.dash.append(m), reliable_qos(5))
        t.create_subscription(DiagnosticArray, topics.DIAGNOSTICS,
                              lambda m: self.diag.update({s.name: s for s in m.status}), reliable_qos(20))
        self.pubs = {sid: t.create_publisher(Image, topics.image_topic(sid), reliable_qos(20)) for sid in SIDS}
        assert self.spin_until(lambda: all(p.get_subscription_count() >= 1 for p in self.pubs.values()), 10.0)
        self.t0 = time.time_ns() - 3_000_000_000      # frames of the last seconds: never "future"
        self.rng = np.random.default_rng(0)

    # ------------------------------------------------------------------ helpers
    def spin_until(self, cond, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            self.ex.spin_once(timeout_sec=0.01)
        return bool(cond())

    def stamp_ns(self, k: int) -> int:
        return self.t0 + k * PERIOD_NS

    def image(self, sid: str, k: int, **override):
        from admn_ros.ros.convert import make_header, ns_to_stamp, numpy_to_image

        h = make_header(ns_to_stamp(self.stamp_ns(k)), sid.replace("/", "_"))
        if sid.endswith("rgb"):
            msg = numpy_to_image(self.rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), "rgb8", h)
        elif sid.endswith("depth"):
            msg = numpy_to_image(self.rng.integers(500, 4000, (120, 160), dtype=np.uint16), "16UC1", h)
        else:
            msg = numpy_to_image(self.rng.random((64, 64), dtype=np.float32), "32FC1", h)
        for key, v in override.items():
            setattr(msg, key, v)
        return msg

    def publish_frame(self, k: int, skip: tuple[str, ...] = ()) -> None:
        for sid in SIDS:
            if sid not in skip:
                self.pubs[sid].publish(self.image(sid, k))
        self.spin_until(lambda: False, PERIOD_NS * 1e-9)

    def diag_values(self, suffix: str) -> dict[str, str]:
        for name, st in self.diag.items():
            if name.endswith(suffix):
                return {kv.key: kv.value for kv in st.values}
        return {}

    def close(self) -> None:
        import rclpy

        self.ex.shutdown()
        self.tn.destroy_node()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


# --------------------------------------------------------------------------- (a)
def test_activity_label_round_trip_over_dds():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from admn_ros.msg import ActivityLabel
    from admn_ros.ros.convert import make_header, ns_to_stamp
    from admn_ros.ros.qos import reliable_qos

    def label(classes, probs, window_frames=0):
        return TASK.fill_output(ActivityLabel(), {"classes": classes, "probs": probs}, window_frames)

    probs = np.array([0.1, 0.05, 0.6, 0.2, 0.05])
    stamp_ns = 1_767_225_600_123_456_789
    sent = label(CLASSES, probs, window_frames=FRAMES)
    sent.header = make_header(ns_to_stamp(stamp_ns), "node1_color_optical_frame")
    assert sent.class_id == 2 and sent.class_name == "sitting"
    assert list(sent.class_names) == ["sitting", "waving", "standing", "walking", "falling"]  # ties: index order
    with pytest.raises(ValueError):
        label(CLASSES, probs[:3])
    with pytest.raises(ValueError):
        label(CLASSES, [np.nan] * 5)

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        a = rclpy.create_node("label_pub", context=ctx)
        b = rclpy.create_node("label_sub", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(a)
        ex.add_node(b)
        got: list = []
        b.create_subscription(ActivityLabel, TASK.output.topic, got.append, reliable_qos())
        pub = a.create_publisher(ActivityLabel, TASK.output.topic, reliable_qos())
        end = time.monotonic() + 10.0
        while pub.get_subscription_count() < 1 and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.02)
        pub.publish(sent)
        while not got and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.02)
        assert got, "no ActivityLabel received within 10 s"
        m = got[0]
        assert _ns(m.header.stamp) == stamp_ns and m.header.frame_id == "node1_color_optical_frame"
        assert (m.class_id, m.class_name, m.window_frames) == (2, "sitting", FRAMES)
        assert m.confidence == pytest.approx(0.6, abs=1e-6)
        assert list(m.class_names) == list(sent.class_names)
        np.testing.assert_allclose(np.asarray(m.scores), [0.6, 0.2, 0.1, 0.05, 0.05], atol=1e-6)
        est = TASK.read_output(m)
        assert (est["class_name"], est["confidence"], est["class_id"]) == ("sitting", pytest.approx(0.6), 2)
        back = dict(zip(est["classes"], est["probs"]))
        np.testing.assert_allclose([back[c] for c in CLASSES], probs, atol=1e-6)
        ex.shutdown()
        a.destroy_node()
        b.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


# --------------------------------------------------------------------------- (b)
def test_window_with_a_missing_depth_frame_and_a_dead_stream(model_dir, tmp_path):
    """Labels are stamped like the offline replay's (the newest frame's stamp, the task's frame_id).
    Break tried: the label header without the task's frame_id (it was '')."""
    from admn_ros.core.image_convert import image_to_numpy
    from admn_ros.ros.convert import allocation_to_mask
    from fixtures.markers import render_markers, save_png

    rig = Rig(model_dir)
    try:
        n = 10
        for k in range(n):
            rig.publish_frame(k, skip=("node1/depth",) if k == 5 else ())
        # one label per frame of a full window; frame 5 lost its depth message: its rgb and
        # radar wait in their queues (message_filters) and it never completes
        want = [rig.stamp_ns(k) for k in range(FRAMES - 1, n) if k != 5]
        assert rig.spin_until(lambda: len(rig.labels) >= len(want), 3.0), \
            f"{len(rig.labels)} labels for {len(want)} full windows"
        assert [_ns(m.header.stamp) for m in rig.labels] == want, "a frame was dropped or labels are out of order"
        for m in rig.labels:
            assert m.window_frames == FRAMES and m.header.frame_id == TASK.frame_id
            s = np.asarray(m.scores, np.float64)
            assert s.sum() == pytest.approx(1.0, abs=1e-5)
            assert (np.diff(s) <= 1e-7).all(), "scores not in score order"
            assert sorted(m.class_names) == sorted(CLASSES)
            assert m.class_name == m.class_names[0] and m.confidence == pytest.approx(s[0])
            assert m.class_id == CLASSES.index(m.class_name)
        # the frame without depth did not enter the window; no stream was missing
        node = rig.node
        assert node.frames == n - 1 and node.frames_incomplete == 0
        assert node.sync.missing_count == {"node1/rgb": 0, "node1/depth": 0, "node1/radar": 0}
        assert node.sync.stats.queued == 2
        assert rig.spin_until(lambda: len(rig.allocs) >= len(want), 2.0)
        for msg in rig.allocs[:len(want)]:
            a = allocation_to_mask(msg)
            assert a.stream_ids == SIDS and a.budget == BUDGET
            assert int(a.mask.sum()) == BUDGET and a.present.all() and a.mask[:, 0].all()
        assert [_ns(m.header.stamp) for m in rig.allocs[:len(want)]] == want

        # depth dies for good: labels keep coming; once it is gone from the window it gets 0 blocks
        t_dead = time.monotonic()
        n_before = len(rig.labels)
        for k in range(n, n + 10):
            rig.publish_frame(k, skip=("node1/depth",))
        assert rig.spin_until(lambda: len(rig.labels) - n_before >= 9, 2.0), \
            f"only {len(rig.labels) - n_before} labels after depth died"
        times_ok = time.monotonic() - t_dead < 5.0
        assert times_ok
        last = allocation_to_mask(rig.allocs[-1])
        assert not last.present[1] and not last.mask[1].any(), "a stream absent from the window got blocks"
        assert int(last.mask.sum()) == BUDGET
        assert node.frames >= n - 1 + 9

        # diagnostics, markers and the dashboard
        assert rig.spin_until(lambda: rig.diag_values("activity_node: window").get("windows", "0") != "0", 3.0)
        v = rig.diag_values("activity_node: window")
        assert int(v["frames_incomplete"]) >= 1 and int(v["computed_total"]) > 0 and v["window_frames"] == "4"
        assert "infer_ms_p50" in v and int(v["budget"]) == BUDGET and v["task"] == "activity"
        assert int(rig.diag_values("input node1/depth")["frames_absent"]) >= 1
        assert rig.spin_until(lambda: rig.markers and rig.dash, 3.0), "no markers / dashboard"
        ma = rig.markers[-1]
        by_ns: dict[str, list] = {}
        for mk in ma.markers:
            by_ns.setdefault(mk.ns, []).append(mk)
        for ns in ("activity_label", "activity_scores", "allocation_bars", "allocation_text", "window_tokens"):
            assert ns in by_ns, f"marker namespace {ns} missing"
        assert rig.labels[-1].class_name in by_ns["activity_label"][0].text
        bars = sorted(by_ns["allocation_bars"], key=lambda m: m.id)
        assert [round(b.scale.z / 0.6 * 12) for b in bars[:2]] == [int(last.mask[0].sum()), 0] or \
            bars[1].scale.z == pytest.approx(0.005)
        assert len(by_ns["activity_scores"]) == len(CLASSES)
        img = render_markers(ma)
        assert save_png(img, tmp_path / "activity_markers.png").stat().st_size > 3000
        d = image_to_numpy(rig.dash[-1])
        assert d.shape == (480, 640, 3) and d.std() > 10
        save_png(d, tmp_path / "activity_dashboard.png")
    finally:
        rig.close()


# --------------------------------------------------------------------------- (c)
def test_bad_input_is_rejected_and_counted(model_dir):
    from builtin_interfaces.msg import Time

    rig = Rig(model_dir, log_throttle_s=0.1)
    try:
        for k in range(3):
            rig.publish_frame(k)
        bad = [
            ("node1/rgb", rig.image("node1/rgb", 3, encoding="mono16"), "bad_encoding"),
            ("node1/depth", rig.image("node1/depth", 3, height=4, width=4, step=8, data=bytes(32)), "bad_size"),
            ("node1/radar", None, "non_finite"),
            ("node1/rgb", rig.image("node1/rgb", 3), "zero_stamp"),
        ]
        nan_radar = rig.image("node1/radar", 3)
        arr = np.frombuffer(bytes(nan_radar.data), np.float32).copy()
        arr[7] = np.nan
        nan_radar.data = arr.tobytes()
        bad[2] = ("node1/radar", nan_radar, "non_finite")
        bad[3][1].header.stamp = Time()
        for sid, msg, _ in bad:
            rig.pubs[sid].publish(msg)
        rig.spin_until(lambda: False, 0.3)
        for k in range(4, 8):                        # the good stream goes on
            rig.publish_frame(k)
        node = rig.node
        assert state_label(node) == "active"
        for sid, _, reason in bad:
            assert node.monitor.rejected(sid)[reason] == 1, (sid, reason, node.monitor.rejected(sid))
        assert rig.spin_until(lambda: len(rig.labels) >= 3, 3.0), f"{len(rig.labels)} labels after bad input"
        assert rig.spin_until(lambda: rig.diag_values("input node1/radar").get("rejected.non_finite") == "1", 3.0)
        assert rig.diag_values("input node1/rgb")["rejected.bad_encoding"] == "1"
        assert rig.diag_values("input node1/depth")["rejected.bad_size"] == "1"
        # a bad budget on the topic is rejected with the reason, a good one applies
        from std_msgs.msg import UInt16

        from admn_ros.ros import topics
        from admn_ros.ros.qos import reliable_qos

        pb = rig.tn.create_publisher(UInt16, topics.BUDGET, reliable_qos())
        assert rig.spin_until(lambda: pb.get_subscription_count() >= 1, 5.0)
        pb.publish(UInt16(data=500))
        assert rig.spin_until(lambda: node.monitor.rejected(topics.BUDGET)["bad_budget"] == 1, 3.0)
        pb.publish(UInt16(data=18))
        assert rig.spin_until(lambda: node.budget == 18, 3.0)
        n0 = len(rig.allocs)
        for k in range(8, 10):
            rig.publish_frame(k)
        assert rig.spin_until(lambda: len(rig.allocs) > n0 and rig.allocs[-1].budget == 18, 2.0)
        assert sum(rig.allocs[-1].active_blocks) == 18
    finally:
        rig.close()


# --------------------------------------------------------------------------- graph / entry point
def test_activity_graph_specs_and_cli():
    """``admn-ros run activity`` / ``--task activity`` build the activity graph with its own
    defaults (config/activity.yaml, models/activity, budget 0 = 25%); tracking is unchanged."""
    from admn_ros.core.paths import config_path
    from admn_ros.ros.graph import GraphOptions, build_graph
    from admn_ros.ros.runner import options_from_args, parse_args

    def graph_specs(a):
        return build_graph(options_from_args(a))

    a = parse_args("admn-ros run", ["activity", "--subject-id", "3", "--seed", "7"])
    assert (a.task, a.budget, a.sensor_nodes) == ("activity", 0, "node1")
    specs = {s.name: s for s in graph_specs(a)}
    assert list(specs) == ["sensor_node", "activity_node"]
    sp, ap = specs["sensor_node"].parameters, specs["activity_node"].parameters
    assert (sp["scenario"], sp["subject_id"], sp["seed"], sp["nodes"]) == ("activity", 3, 7, ["node1"])
    assert ap["model_dir"] == str(TASK.models_dir()) and ap["budget"] == 0 and ap["ground_truth"] is True
    assert specs["activity_node"].params_files == [str(config_path("activity.yaml"))]
    assert "--params-file" in specs["activity_node"].ros_args()
    b = parse_args("admn-ros demo", ["--task", "activity", "--budget", "12", "--no-sim-sensors"])
    names = [s.name for s in graph_specs(b)]
    assert names == ["activity_node"] and graph_specs(b)[0].parameters["budget"] == 12
    assert graph_specs(b)[0].parameters["ground_truth"] is False
    t = parse_args("admn-ros run", [])
    assert (t.task, t.budget) == ("tracking", 27) and graph_specs(t)[1].name == "controller_node"
    with pytest.raises(SystemExit):
        parse_args("admn-ros run", ["activity", "--task", "tracking"])
    opts = GraphOptions(task="activity", subject_id=2, model_dir="/m")
    assert [s.executable for s in build_graph(opts)] == ["sensor_node", "activity_node"]
    exe = (Path(__file__).resolve().parents[2] / "resource" / "executables").read_text()
    assert "activity_node         admn_ros.ros.activity_node:main" in exe


def test_demo_task_activity_on_simulated_sensors(tmp_path):
    sim = pytest.importorskip("admn_ros.core.sim.activity", reason="activity simulator not available")
    from admn_ros.core.paths import config_path

    models = tmp_path / "models"
    write_random_activity_models(models, frames=FRAMES, classes=list(sim.ACTIVITIES), seed=2, budgets=(BUDGET,))
    params = tmp_path / "activity.yaml"      # the shipped parameters, backend torch (no auto timing)
    params.write_text(config_path("activity.yaml").read_text().replace("backend: auto", "backend: torch"))
    cmd = [sys.executable, "-m", "admn_ros.cli", "demo", "--task", "activity", "--duration", "25", "--quiet",
           "--model-dir", str(models), "--params-file", str(params), "--subject-id", "1", "--seed", "3",
           "--scenario", "none", "--out", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    out = r.stdout
    assert r.returncode == 0, f"demo failed ({r.returncode}):\n{out[-3000:]}\n{r.stderr[-3000:]}"
    assert "== admn_ros activity demo summary ==" in out, out[-2000:]
    summary = out.split("summary ==")[1]
    assert int(re.search(r"estimates\s+(\d+)", summary).group(1)) >= 20, summary   # ~10 Hz once started
    assert re.search(r"accuracy\s+mean [\d.]+% over \d+ windows", summary), summary  # the truth arrived
    doc = json.loads((tmp_path / "out" / "demo_activity.json").read_text())
    assert sum(doc["phases"][0]["blocks"].values()) == pytest.approx(BUDGET, abs=0.01), summary


def test_sensor_node_activity_scenario():
    """sensor_node ``scenario:=activity``: node1's three streams from the activity simulator,
    the true activity on ground_truth/activity with the images' stamps, corruptions, no
    camera_info; bad settings are refused with the reason."""
    sim = pytest.importorskip("admn_ros.core.sim.activity", reason="activity simulator not available")
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from admn_ros.core.paths import config_path
    from admn_ros.msg import ActivityLabel, StreamQoI
    from admn_ros.ros import topics
    from admn_ros.ros.params import ParameterError
    from admn_ros.ros.qos import reliable_qos, sensor_qos
    from admn_ros.ros.sensor_node import SensorNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        with pytest.raises(ParameterError, match="node2"):
            SensorNode(context=ctx, parameter_overrides=[Parameter("scenario", value="activity"),
                                                         Parameter("nodes", value=["node2"])])
        with pytest.raises(ParameterError, match="corruption.node2.rgb"):    # tracking's sensor_node.yaml
            SensorNode(context=ctx, cli_args=["--ros-args", "--params-file", str(config_path("sensor_node.yaml")),
                                              "-p", "scenario:=activity", "-p", "nodes:=[node1]"],
                       use_global_arguments=False)
        node = SensorNode(context=ctx, cli_args=["--ros-args", "--params-file", str(config_path("activity.yaml")),
                                                 "-p", "rate_hz:=20.0", "-p", "subject_id:=4",
                                                 "-p", "corruption.node1.depth:=dropout"],
                          use_global_arguments=False)
        tn = rclpy.create_node("activity_sensor_test", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        ex.add_node(tn)
        imgs: dict[str, list] = {s: [] for s in SIDS}
        qoi: dict[str, list] = {s: [] for s in SIDS}
        gt: list = []
        for sid in SIDS:
            tn.create_subscription(Image, topics.image_topic(sid), imgs[sid].append, sensor_qos(50))
            tn.create_subscription(StreamQoI, topics.qoi_topic(sid), qoi[sid].append, sensor_qos(50))
        tn.create_subscription(ActivityLabel, TASK.truth.topic, gt.append, reliable_qos(50))
        end = time.monotonic() + 10.0
        while time.monotonic() < end and (len(gt) < 12 or len(imgs["node1/rgb"]) < 12):
            ex.spin_once(timeout_sec=0.01)
        assert len(gt) >= 12 and len(imgs["node1/rgb"]) >= 12, (len(gt), {s: len(v) for s, v in imgs.items()})
        rgb, radar = imgs["node1/rgb"][-1], imgs["node1/radar"][-1]
        assert (rgb.encoding, rgb.height, rgb.width) == ("rgb8", 120, 160)
        assert (radar.encoding, radar.height, radar.width) == ("32FC1", 64, 64)
        assert rgb.header.frame_id == "node1_color_optical_frame"
        assert imgs["node1/depth"] == [] and qoi["node1/depth"][-1].corruption == "dropout"   # dropout: no image
        g = gt[-1]
        assert g.class_name in sim.ACTIVITIES and g.confidence == 1.0 and g.window_frames == 1
        assert sorted(g.class_names) == sorted(sim.ACTIVITIES) and list(g.scores)[0] == 1.0 and sum(g.scores) == 1.0
        gt_stamps = {_ns(m.header.stamp) for m in gt}
        assert {_ns(m.header.stamp) for m in imgs["node1/rgb"]} & gt_stamps, "truth and images share no stamp"
        names = [t for t, _ in tn.get_topic_names_and_types()]
        assert not any("camera_info" in t for t in names) and "/ground_truth/target" not in names
        ex.shutdown()
        tn.destroy_node()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
