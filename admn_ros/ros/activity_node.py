"""ADMN activity node: a sensor node's rgb/depth/radar frames -> an activity label per
sliding window of ``F`` frames.

Subscribes (sensor-data QoS, ``message_filters`` ``Subscriber`` s, as the tracking graph's
controller) to every stream of the activity model (``node1/color/image_raw``,
``node1/depth/image_raw``, ``node1/radar/range_azimuth``;
:func:`admn_ros.ros.topics.image_topic`), decodes and preprocesses each image and
synchronizes them into frames as the controller does, and as offline replay
(:class:`admn_ros.bags.reader.BagFrames`) does: ``message_filters``
ApproximateTimeSynchronizer semantics plus stream timeouts (:mod:`admn_ros.ros.msg_filters`).
A stream silent for ``timeout`` s is missing (frames go on without it, its tokens are masked
and it gets 0 blocks), so a missing stream never blocks the labels; a frame whose message was
lost on one live stream does not fire (its other messages wait in their queues) and the
window slides on with the next frame; a frame older than the window's newest is dropped
(``stale_set``). Frames go into a
:class:`~admn_ros.core.activity_runtime.FrameWindow`; every ``publish_every_n_frames``
frames of a full window :meth:`ActivityRuntime.classify` runs (one allocation per window
and stream, ``budget`` blocks; cached embeddings when the allocation is unchanged) and
the node publishes, stamped with the window's newest frame:

=========================  ===============================  ===================================
topic                      type                             what
=========================  ===============================  ===================================
``admn/activity``          admn_ros/ActivityLabel           label, confidence, every class's
                                                            score (score order), window frames
``admn/allocation``        admn_ros/LayerAllocation         the window's allocation (the same
                                                            message the controller node sends)
``admn/markers``           visualization_msgs/MarkerArray   label text (+ truth), score bars,
                                                            per-stream block bars, window tokens
``admn/dashboard``         sensor_msgs/Image rgb8           the same as an image
                                                            (``dashboard_rate`` Hz)
``/diagnostics``           diagnostic_msgs/DiagnosticArray  per stream rate/age/rejections and
                                                            absent frames; frames, windows,
                                                            backbone passes, latency, accuracy
=========================  ===============================  ===================================

With ``ground_truth`` true it also listens to ``ground_truth/activity`` (ActivityLabel, the
simulated sensors' truth) and shows truth vs. estimate and the running accuracy.

Budget ``L``: parameter ``budget`` (0 = 25% of the model's blocks, 9 for 3 streams x 12)
or ``std_msgs/UInt16`` on ``admn/budget``; out-of-range values are rejected with the
reason. Bad input (wrong encoding, size, empty data, NaN/inf radar, zero or future stamps)
is rejected, counted per stream and reason on
``/diagnostics`` and logged throttled; it never stops the node.
"""
from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import UInt16
from visualization_msgs.msg import Marker, MarkerArray

from admn_ros.core.activity_runtime import ActivityResult, ActivityRuntime, FrameWindow
from admn_ros.core.activity_viz import ActivityView, render_activity_dashboard
from admn_ros.core.paths import activity_models_dir
from admn_ros.core.runtime import LatencyWindow, RateMeter
from admn_ros.core.streams import StreamSet, budget_from_fraction, validate_budget
from admn_ros.core.sync import SyncedSet
from admn_ros.msg import ActivityLabel, LayerAllocation
from admn_ros.ros import topics
from admn_ros.ros.convert import make_activity_label, make_header, mask_to_allocation, numpy_to_image
from admn_ros.ros.diagnostics import input_status, latency_values, summary_status
from admn_ros.ros.lifecycle import AdmnNode, image_qos, image_specs, model_specs, run_node, sync_specs
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.viz_node import _color, _marker

#: default sensor node of the activity models (MM-Fi style: one node with three modalities)
ACTIVITY_NODES: tuple[str, ...] = ("node1",)
#: budget parameter value meaning "25% of the model's blocks"
AUTO_BUDGET = 0


def auto_budget(n_streams: int) -> int:
    """25% of the window streams' blocks (9 for 3 streams x 12), at least one block per stream."""
    return max(int(n_streams), budget_from_fraction(0.25, int(n_streams)))


# --------------------------------------------------------------------------- markers
def build_activity_markers(view: ActivityView, frame_id: str = "map", stamp: Time | None = None,
                           lifetime_s: float = 1.0, origin: tuple[float, float] = (0.0, 0.0),
                           bar_height: float = 0.6, top_classes: int = 6) -> MarkerArray:
    """The activity node's MarkerArray, laid out in the ``x``/``y`` plane around ``origin``.

    Namespaces: ``activity_label`` (TEXT: ``walking 0.87 | truth walking``),
    ``activity_status`` (TEXT: budget, controller, accuracy), ``activity_scores`` (a bar per
    class, length = probability; ``activity_score_text`` its name), ``allocation_bars`` /
    ``allocation_capacity`` / ``allocation_text`` (per stream, as viz_node draws them) and
    ``window_tokens`` (an ``F x n`` grid: green = the (frame, stream) token had data).
    """
    stamp = stamp or Time()
    ox, oy = float(origin[0]), float(origin[1])
    out = MarkerArray()

    def text(ns: str, mid: int, x: float, y: float, z: float, size: float, s: str, rgba) -> None:
        t = _marker(ns, mid, Marker.TEXT_VIEW_FACING, frame_id, stamp, lifetime_s)
        t.pose.position.x, t.pose.position.y, t.pose.position.z = ox + x, oy + y, z
        t.scale.z = size
        t.color = _color(rgba)
        t.text = s
        out.markers.append(t)

    ok = view.truth is not None and view.probs is not None and view.truth == view.class_name
    head = (0.5, 1.0, 0.5, 1.0) if ok else ((1.0, 0.6, 0.5, 1.0) if view.truth is not None else (1, 1, 1, 1))
    text("activity_label", 0, 0.6, 1.25, 0.05, 0.22, view.label_text(), head)
    text("activity_status", 0, 0.6, 0.98, 0.05, 0.12, view.status_text() or "waiting for a full window",
         (0.85, 0.85, 0.85, 1.0))
    # class scores: horizontal bars to the right of the streams
    for k, (name, p) in enumerate(view.ranked(top_classes)):
        y = 0.6 - 0.16 * k
        length = max(float(p) * 1.2, 0.005)
        m = _marker("activity_scores", k, Marker.CUBE, frame_id, stamp, lifetime_s)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = ox + 0.9 + length / 2, oy + y, 0.02
        m.scale.x, m.scale.y, m.scale.z = length, 0.1, 0.04
        m.color = _color((1.0, 0.6, 0.15, 0.95) if name == view.class_name else (0.45, 0.6, 0.9, 0.9))
        out.markers.append(m)
        mark = " *" if view.truth is not None and name == view.truth else ""
        text("activity_score_text", k, 0.5, y, 0.06, 0.08, f"{name} {p:.2f}{mark}",
             (1.0, 1.0, 1.0, 1.0))
    # per-stream blocks (same look as viz_node's allocation bars)
    n = len(view.stream_ids)
    bw, spacing = 0.09, 0.14
    for i in range(n):
        x = (i - (n - 1) / 2) * spacing - 0.4
        frac = int(view.blocks[i]) / max(view.depth, 1)
        h = max(frac * bar_height, 0.005)
        cap = _marker("allocation_capacity", i, Marker.CUBE, frame_id, stamp, lifetime_s)
        cap.pose.position.x, cap.pose.position.y, cap.pose.position.z = ox + x, oy, bar_height / 2
        cap.scale.x = cap.scale.y = bw
        cap.scale.z = bar_height
        cap.color = _color((0.8, 0.8, 0.8, 0.15))
        out.markers.append(cap)
        b = _marker("allocation_bars", i, Marker.CUBE, frame_id, stamp, lifetime_s)
        b.pose.position.x, b.pose.position.y, b.pose.position.z = ox + x, oy, h / 2
        b.scale.x = b.scale.y = bw
        b.scale.z = h
        b.color = _color(view.stream_color(i))
        out.markers.append(b)
        text("allocation_text", i, -0.4, -0.3 - 0.13 * i, 0.02, 0.1, view.stream_label(i),
             (1.0, 1.0, 1.0, 1.0))
    # window tokens
    if view.tokens is not None:
        tok = np.asarray(view.tokens, bool)
        cell = 0.07
        for k in range(tok.shape[0]):
            for i in range(tok.shape[1]):
                m = _marker("window_tokens", k * tok.shape[1] + i, Marker.CUBE, frame_id, stamp, lifetime_s)
                m.pose.position.x = ox + 0.9 + k * (cell + 0.02)
                m.pose.position.y = oy - 0.45 - i * (cell + 0.02)
                m.pose.position.z = 0.01
                m.scale.x = m.scale.y = cell
                m.scale.z = 0.02
                m.color = _color((0.25, 0.8, 0.35, 0.95) if tok[k, i] else (0.3, 0.3, 0.3, 0.9))
                out.markers.append(m)
        text("window_tokens", 10_000, 0.9 + (tok.shape[0] - 1) * (cell + 0.02) / 2, -0.35, 0.02, 0.08,
             f"window {tok.shape[0]} frames (old -> new)", (0.85, 0.85, 0.85, 1.0))
    return out


# --------------------------------------------------------------------------- node
class ActivityNode(AdmnNode):
    """See the module docstring."""

    NODE_NAME = "activity_node"
    DEFAULT_SENSOR_NODES = ACTIVITY_NODES
    AUTO_BUDGET = AUTO_BUDGET
    SUMMARY = "activity"

    def param_specs(self) -> list[ParamSpec]:
        specs = [s for s in model_specs(with_nodes=False) if s.name != "model_dir"]
        return [
            ParamSpec("model_dir", "", "Directory with the activity model (activity.safetensors) and its "
                      "controllers ('' = the package's models/activity); applied on configure"),
            *specs,
            ParamSpec("sensor_nodes", list(ACTIVITY_NODES), "Sensor nodes whose streams form the window (must be "
                      "the model's nodes, in order); applied on configure"),
            ParamSpec("budget", AUTO_BUDGET, "Layer budget L: active backbone blocks over the window's streams "
                      "(one allocation per window; first blocks included). 0 = 25% of the model's blocks "
                      "(9 for 3 streams x 12); also settable on topic admn/budget",
                      min=0, max=65535, validator=self._budget_problem),
            ParamSpec("publish_every_n_frames", 1, "Classify and publish every n-th frame once the window is "
                      "full (1 = a label per frame; the window still slides by one frame)", min=1, max=10000),
            ParamSpec("max_gap_s", 2.0, "A frame stamped more than this many seconds after the previous one "
                      "restarts the window (old frames are not mixed with new ones)", min=0.01, max=86400.0),
            *sync_specs(slop=0.03, timeout=0.5),
            *image_specs(),
            ParamSpec("ground_truth", True, "Listen to ground_truth/activity (simulated sensors) and show "
                      "truth vs. estimate and the running accuracy; applied on activate"),
            ParamSpec("frame_id", "map", "frame_id of the markers and the dashboard"),
            ParamSpec("publish_markers", True, "Publish admn/markers with every label"),
            ParamSpec("marker_lifetime", 2.0, "Lifetime (s) of the markers (0 = forever)", min=0.0, max=3600.0),
            ParamSpec("dashboard_rate", 5.0, "Dashboard image rate (Hz) on admn/dashboard; 0 = off",
                      min=0.0, max=60.0),
            ParamSpec("dashboard_width", 640, "Dashboard width (pixels)", min=160, max=4096),
            ParamSpec("dashboard_height", 480, "Dashboard height (pixels)", min=120, max=4096),
        ]

    # ------------------------------------------------------------------ parameters
    def resolved_budget(self, value: int | None = None) -> int:
        v = int(self.p["budget"] if value is None else value)
        return auto_budget(self._n_streams()) if v == AUTO_BUDGET else v

    def on_parameter(self, name: str, value: Any) -> None:
        if name == "budget":
            self.budget = self.resolved_budget(int(value))
            self.get_logger().info(f"budget -> {self.budget}")

    # ------------------------------------------------------------------ lifecycle
    def configure(self) -> None:
        p = self.p
        self.runtime = None
        streams = StreamSet(tuple(p["sensor_nodes"]))
        model_dir = p["model_dir"] or str(activity_models_dir())
        if not p["model_dir"] and not activity_models_dir().is_dir():
            raise FileNotFoundError(f"{model_dir}: no activity models yet; train them with `make models-activity` "
                                    "or set the model_dir parameter")
        rt = ActivityRuntime.load(model_dir, p["backend"], p["device"], threads=p["threads"], streams=streams)
        self.runtime = rt
        self.ids = list(rt.stream_ids)
        self.budget = self.resolved_budget()
        validate_budget(self.budget, len(self.ids), rt.depth, bool(rt.cfg.first_block))
        rt.warmup()
        self.window = FrameWindow(rt.frames, self.ids)
        self.sync = None                    # made on activate
        self.label_pub = self.lifecycle_publisher(ActivityLabel, topics.ACTIVITY, reliable_qos())
        self.alloc_pub = self.lifecycle_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos())
        self.marker_pub = self.lifecycle_publisher(MarkerArray, topics.MARKERS, reliable_qos(2))
        self.dash_pub = self.lifecycle_publisher(Image, topics.DASHBOARD, reliable_qos(2))
        self.classify_ms = LatencyWindow()
        self.e2e_ms = LatencyWindow()
        self.label_rate = RateMeter()
        self.frames = 0                     # frames pushed into the window
        self.frames_incomplete = 0
        self.windows = 0                    # labels published
        self.computed_last = 0
        self.computed_total = 0
        self._since_label = 0
        self._last_frame_ns: int | None = None
        self.last: ActivityResult | None = None
        self.view = ActivityView(rt.classes, self.ids, title=self.get_name())
        self._gt: OrderedDict[int, str] = OrderedDict()       # stamp ns -> true class
        self._pending: OrderedDict[int, str] = OrderedDict()  # labels waiting for their truth
        self.correct = 0
        self.judged = 0
        self.get_logger().info(f"{rt.describe()}; budget {self.budget} of {len(self.ids) * rt.depth} blocks")

    def activate(self) -> None:
        p = self.p
        self.sync = self.make_sync(self.ids)
        self.window.clear()
        self._last_frame_ns = None
        q = image_qos(p)
        for sid in self.ids:
            self.subscribe_filter(*self.stream_input(sid), q).registerCallback(self._on_image, sid)
        self.subscribe(UInt16, topics.BUDGET, self._on_budget, reliable_qos())
        if p["ground_truth"]:
            self.subscribe(ActivityLabel, topics.ACTIVITY_GROUND_TRUTH, self._on_ground_truth, reliable_qos(50))
        self.timer(float(p["poll_period"]), self._on_poll)
        if float(p["dashboard_rate"]) > 0:
            self.timer(1.0 / float(p["dashboard_rate"]), self.publish_dashboard)

    def cleanup(self) -> None:
        self.runtime = None
        self.sync = None

    # ------------------------------------------------------------------ inputs
    def _on_image(self, msg: Image, sid: str) -> None:
        item = self.image_item(sid, msg)
        if item is not None:
            self.sync_offer(sid, item, self._on_frame)

    def _on_poll(self) -> None:
        self.sync_poll(self._on_frame)

    def _on_budget(self, msg: UInt16) -> None:
        v = int(msg.data)
        res = self.set_parameters([Parameter("budget", Parameter.Type.INTEGER, v)])[0]
        if not res.successful:
            self.reject(topics.BUDGET, "bad_budget", f"budget {v} from {topics.BUDGET} rejected: {res.reason}")

    def _on_ground_truth(self, msg: ActivityLabel) -> None:
        key = topics.ACTIVITY_GROUND_TRUTH
        ns = self.check_stamp(key, msg.header.stamp)
        if ns is None:
            return
        name = str(msg.class_name)
        if self.runtime is not None and name not in self.runtime.classes:
            self.reject(key, "unknown_class", f"class {name!r} is not one of the model's classes "
                        f"{self.runtime.classes}")
            return
        self.monitor.accept(key, ns, self.now_s())
        self._gt[ns] = name
        while len(self._gt) > 600:
            self._gt.popitem(last=False)
        est = self._pending.pop(ns, None)
        if est is not None:
            self._judge(est, name)

    def _judge(self, estimate: str, truth: str) -> None:
        self.judged += 1
        self.correct += int(estimate == truth)
        self.view.truth = truth

    # ------------------------------------------------------------------ frames -> windows
    def _on_frame(self, fr: SyncedSet) -> None:
        newest = max((it for it in fr.items.values() if it is not None), key=lambda it: it[2])
        stamp_ns = int(newest[2])
        if self._last_frame_ns is not None and (stamp_ns - self._last_frame_ns) * 1e-9 > float(self.p["max_gap_s"]):
            self.window.clear()                   # a long gap: do not mix old frames with new ones
            self._since_label = 0
            self.monitor.drop("window_restart")
        try:
            self.window.push(stamp_ns, {sid: (it[0] if it is not None else None) for sid, it in fr.items.items()})
        except ValueError as exc:
            self.monitor.drop("frame_order")
            self.warn_throttled("frame_order", f"frame not added to the window: {exc}")
            return
        self._last_frame_ns = stamp_ns
        self.frames += 1
        if fr.missing:
            self.frames_incomplete += 1
        self._since_label += 1
        if not self.window.full:
            return
        if self.windows and self._since_label < int(self.p["publish_every_n_frames"]):
            return
        self._since_label = 0
        self._classify(newest[1], stamp_ns)

    def _classify(self, stamp: Time, stamp_ns: int) -> None:
        rt = self.runtime
        try:
            res = rt.classify(self.window, self.budget)
        except ValueError as exc:
            self.monitor.drop("classify_error")
            self.warn_throttled("classify_error", f"classification failed: {exc}")
            return
        header = make_header(stamp)
        self.label_pub.publish(make_activity_label(res.classes, res.probs, header=header,
                                                   window_frames=len(self.window)))
        a = res.allocation
        self.alloc_pub.publish(mask_to_allocation(a.mask, self.ids, budget=a.budget, header=make_header(stamp),
                                                  present=a.present, estimated_noise=a.est_noise,
                                                  controller=a.controller, decision_ms=a.ms,
                                                  first_block_forced=bool(rt.cfg.first_block)))
        self.windows += 1
        self.label_rate.tick(self.now_s())
        self.computed_last = int(res.computed)
        self.computed_total += int(res.computed)
        self.classify_ms.add(res.ms)
        self.e2e_ms.add((self.now_ns() - stamp_ns) * 1e-6)
        self.last = res
        truth = self._gt.get(stamp_ns)
        if truth is not None:
            self._judge(res.class_name, truth)
        elif self.p["ground_truth"]:
            self._pending[stamp_ns] = res.class_name
            while len(self._pending) > 100:
                self._pending.popitem(last=False)
        self.view = ActivityView.from_result(res, self.ids, truth if truth is not None else self.view.truth,
                                             self.accuracy(), self.get_name())
        self.stamp = stamp
        if self.p["publish_markers"]:
            self.marker_pub.publish(self.markers())

    def accuracy(self) -> float | None:
        """Fraction of judged windows whose label equals the truth at their newest frame."""
        return self.correct / self.judged if self.judged else None

    # ------------------------------------------------------------------ outputs
    def markers(self) -> MarkerArray:
        return build_activity_markers(self.view, str(self.p["frame_id"]), getattr(self, "stamp", None),
                                      float(self.p["marker_lifetime"]))

    def publish_dashboard(self) -> None:
        if getattr(self, "view", None) is None:
            return
        self.view.accuracy = self.accuracy()
        img = render_activity_dashboard(self.view, int(self.p["dashboard_width"]), int(self.p["dashboard_height"]))
        self.dash_pub.publish(numpy_to_image(img, "rgb8", make_header(getattr(self, "stamp", None),
                                                                      str(self.p["frame_id"]))))

    # ------------------------------------------------------------------ diagnostics
    def diagnostic_statuses(self):
        name = self.get_fully_qualified_name()
        now_s, now_ns = self.now_s(), self.now_ns()
        out = []
        res = self.last
        sync = getattr(self, "sync", None)
        for i, sid in enumerate(getattr(self, "ids", [])):
            extra: dict[str, Any] = {"frames_absent": sync.missing_count.get(sid, 0) if sync is not None else 0}
            if res is not None:
                extra.update({"est_sigma": float(res.allocation.est_noise[i]),
                              "blocks": int(res.allocation.mask[i].sum()),
                              "present": bool(res.allocation.present[i])})
            out.append(input_status(name, sid, self.monitor, now_s, now_ns, self.p["stale_s"], extra,
                                    self._prev_rejected.get(sid, 0)))
        for key in (topics.BUDGET, topics.ACTIVITY_GROUND_TRUTH):
            if key in self.monitor.inputs:
                out.append(input_status(name, key, self.monitor, now_s, now_ns, 1e9, {},
                                        self._prev_rejected.get(key, 0)))
        acc = self.accuracy() if hasattr(self, "correct") else None
        values: dict[str, Any] = {
            "frames": getattr(self, "frames", 0), "frames_incomplete": getattr(self, "frames_incomplete", 0),
            "windows": getattr(self, "windows", 0),
            "label_rate_hz": self.label_rate.rate(now_s) if hasattr(self, "label_rate") else 0.0,
            "window_frames": self.runtime.frames if getattr(self, "runtime", None) is not None else 0,
            "budget": getattr(self, "budget", self.p["budget"]),
            "computed_last": getattr(self, "computed_last", 0),
            "computed_total": getattr(self, "computed_total", 0),
            "label": res.class_name if res is not None else "",
            "confidence": float(res.confidence) if res is not None else float("nan"),
            "controller": res.allocation.controller if res is not None else "",
            "accuracy": float(acc) if acc is not None else float("nan"),
            "judged": getattr(self, "judged", 0),
            "backend": self.runtime.engine_backend if getattr(self, "runtime", None) is not None else "",
        }
        if hasattr(self, "classify_ms"):
            values.update(latency_values("classify", self.classify_ms))
            values.update(latency_values("e2e", self.e2e_ms))
        values.update(self.sync_diagnostics())
        msg = ""
        if self.configure_error is None:
            msg = (f"{values['windows']} labels, last {values['label'] or '-'}"
                   + (f" {values['confidence']:.2f}" if res is not None else "")
                   + f", L={values['budget']}" + (f", acc {100 * acc:.0f}%" if acc is not None else ""))
        out.append(summary_status(name, self.SUMMARY, msg, values, self.monitor.dropped, self._prev_dropped,
                                  self.configure_error))
        return out


def main(args: Sequence[str] | None = None) -> int:
    """``python -m admn_ros.ros.activity_node --ros-args -p model_dir:=models/activity -p budget:=9``."""
    return run_node(ActivityNode, list(args) if args is not None else None)


__all__ = ["ActivityNode", "build_activity_markers", "auto_budget", "main"]

if __name__ == "__main__":
    sys.exit(main())
