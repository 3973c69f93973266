"""ADMN window node (``activity_node``): a sensor node's synchronized frames -> the task's estimate per sliding
window, the whole pipeline in one node (:meth:`Runtime.infer`); docs/DEPLOY.md, "Activity recognition graph"."""
from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import UInt16
from visualization_msgs.msg import MarkerArray

from admn_ros.core.health import stream_status, unhealthy
from admn_ros.core.runtime import FrameWindow, Result
from admn_ros.core.streams import budget_from_fraction, validate_budget
from admn_ros.core.sync import SyncedSet
from admn_ros.core.tasks import TASKS, get_task
from admn_ros.core.window_viz import WindowView, render_window_dashboard, window_markers
from admn_ros.msg import LayerAllocation
from admn_ros.ros import topics
from admn_ros.ros.convert import make_header, mask_to_allocation, message_class, ns_to_stamp, numpy_to_image
from admn_ros.ros.lifecycle import AdmnNode, model_specs, stream_specs
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.telemetry import HopWindows, LatencyWindow, RateMeter
from admn_ros.ros.viz_node import marker_array, view_specs

#: the default task of the node (its shipped models and sensor nodes): the first windowed task
WINDOW_TASK = next(t for t in TASKS.values() if t.graph == "window")


class ActivityNode(AdmnNode):
    NODE_NAME = "activity_node"
    AUTO_BUDGET = 0   # the budget parameter value meaning "25% of the model's blocks"
    SUMMARY = "window"

    def param_specs(self) -> list[ParamSpec]:
        return [
            ParamSpec("task", WINDOW_TASK.name, "The windowed task whose shipped models model_dir '' loads",
                      choices=tuple(n for n, t in TASKS.items() if t.graph == "window"), read_only=True),
            *model_specs(WINDOW_TASK),
            ParamSpec("budget", self.AUTO_BUDGET, "Layer budget L: active blocks over the window's streams, first "
                      "blocks included (0 = 25% of the model's blocks); also settable on topic admn/budget",
                      min=0, max=65535, validator=self._check_budget),
            ParamSpec("publish_every_n_frames", 1, "Estimate every n-th frame once the window is full (the window "
                      "still slides by one frame)", min=1, max=10000),
            ParamSpec("max_gap_s", 2.0, "A frame stamped more than this many seconds after the previous one "
                      "restarts the window", min=0.01, max=86400.0),
            *stream_specs(radar=False),
            ParamSpec("ground_truth", True, "Listen to the task's truth topic (simulated sensors) and show the "
                      "running metric; applied on activate"),
            ParamSpec("publish_markers", True, "Publish admn/markers with every estimate"),
            *view_specs(marker_lifetime=2.0),
        ]

    def resolved_budget(self, value: int | None = None) -> int:
        """``budget`` (or ``value``); AUTO_BUDGET = 25% of the streams' blocks, at least one per stream."""
        v, n = int(self.p["budget"] if value is None else value), self._n_streams()
        return max(n, budget_from_fraction(0.25, n)) if v == self.AUTO_BUDGET else v

    def on_parameter(self, name: str, value: Any) -> None:
        if name == "budget":
            self.budget = self.resolved_budget(int(value))
            self.get_logger().info(f"budget -> {self.budget}")

    def configure(self) -> None:
        task = get_task(self.p["task"])
        if not self.p["model_dir"] and not task.models_dir().is_dir():
            raise FileNotFoundError(f"{task.models_dir()}: no {task.name} models yet; train them with "
                                    f"`make models-{task.name}` or set the model_dir parameter")
        rt = self.load_runtime(task)
        self.task = rt.task
        self.ids = list(rt.stream_ids)
        self.budget = self.resolved_budget()
        validate_budget(self.budget, len(self.ids), rt.depth, bool(rt.cfg.first_block))
        rt.warmup()
        self.window = FrameWindow(rt.frames, self.ids)
        self._out_cls = message_class(self.task.output.type)
        self.out_pub = self.lifecycle_publisher(self._out_cls, self.task.output.topic, reliable_qos())
        self.alloc_pub = self.lifecycle_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos())
        self.marker_pub = self.lifecycle_publisher(MarkerArray, topics.MARKERS, reliable_qos(2))
        self.dash_pub = self.lifecycle_publisher(Image, topics.DASHBOARD, reliable_qos(2))
        self.infer_ms = LatencyWindow()
        self.e2e_ms = LatencyWindow()
        self.hops = HopWindows()
        self.out_rate = RateMeter()
        self.frames = 0                     # frames pushed into the window
        self.frames_incomplete = 0
        self.windows = 0                    # estimates published
        self.computed_last = 0
        self.computed_total = 0
        self._since_out = 0
        self._last_frame_ns: int | None = None
        self._status: dict[str, str] = {}   # stream -> status in the newest frame
        self.last: Result | None = None
        self.view = WindowView(self.ids, title=self.get_name())
        self._gt: OrderedDict[int, Any] = OrderedDict()                   # stamp ns -> truth
        self._pending: OrderedDict[int, dict[str, Any]] = OrderedDict()   # estimates waiting for their truth
        self.scores: list[float] = []
        self.get_logger().info(f"{rt.describe()}; budget {self.budget} of {len(self.ids) * rt.depth} blocks")

    def activate(self) -> None:
        p = self.p
        self.window.clear()
        self._last_frame_ns = None
        self.subscribe_streams(self.ids, self._on_frame)
        self.subscribe(UInt16, topics.BUDGET, self.budget_from_topic, reliable_qos())
        if p["ground_truth"]:
            self.subscribe(message_class(self.task.truth.type), self.task.truth.topic, self._on_ground_truth,
                           reliable_qos(50))
        if float(p["dashboard_rate"]) > 0:
            self.timer(1.0 / float(p["dashboard_rate"]), self.publish_dashboard)

    def _on_ground_truth(self, msg: Any) -> None:
        key = self.task.truth.topic
        ns = self.check_stamp(key, msg.header.stamp)
        if ns is None:
            return
        truth = self.task.read_truth(msg)
        labels = self.runtime.labels if self.runtime is not None else []
        if labels and truth not in labels:
            self.reject(key, "unknown_class", f"truth {truth!r} is not one of the model's labels {labels}")
            return
        self.monitor.accept(key, ns, self.now_s())
        self._gt[ns] = truth
        while len(self._gt) > 600:
            self._gt.popitem(last=False)
        est = self._pending.pop(ns, None)
        if est is not None:
            self.scores.append(self.task.score(est, truth))

    def _on_frame(self, fr: SyncedSet) -> None:
        self.window.forget(unhealthy(fr.status))
        self._status = fr.status
        stamp_ns = fr.stamp_ns
        if self._last_frame_ns is not None and (stamp_ns - self._last_frame_ns) * 1e-9 > float(self.p["max_gap_s"]):
            self.window.clear()                   # a long gap: do not mix old frames with new ones
            self._since_out = 0
            self.monitor.drop("window_restart")
        try:
            self.window.push(stamp_ns, fr.items)
        except ValueError as exc:
            self.monitor.drop("frame_order")
            self.warn_throttled("frame_order", f"frame not added to the window: {exc}")
            return
        self._last_frame_ns = stamp_ns
        self.frames += 1
        if fr.missing:
            self.frames_incomplete += 1
        self._since_out += 1
        if not self.window.full:
            return
        if self.windows and self._since_out < int(self.p["publish_every_n_frames"]):
            return
        self._since_out = 0
        self._infer(stamp_ns)

    def _infer(self, stamp_ns: int) -> None:
        rt, task, t_in, stamp = self.runtime, self.task, self.now_ns(), ns_to_stamp(stamp_ns)
        try:
            res = rt.infer(self.window, self.budget)
        except ValueError as exc:
            self.monitor.drop("infer_error")
            self.warn_throttled("infer_error", f"inference failed: {exc}")
            return
        out = self._out_cls(header=make_header(stamp, task.frame_id))
        self.out_pub.publish(task.fill_output(out, res.estimate, window_frames=len(self.window)))
        a = res.allocation
        self.alloc_pub.publish(mask_to_allocation(a.mask, self.ids, budget=a.budget, header=make_header(stamp),
                                                  present=a.present, estimated_noise=a.est_noise,
                                                  controller=a.controller, decision_ms=a.ms,
                                                  first_block_forced=bool(rt.cfg.first_block),
                                                  stream_status=stream_status(self.ids, a.present, self._status)))
        self.windows += 1
        self.out_rate.tick(self.now_s())
        self.computed_last = int(res.computed)
        self.computed_total += int(res.computed)
        self.infer_ms.add(res.ms)
        self.hops.add(sensor_to_controller=(t_in - stamp_ns) * 1e-6, controller=a.ms, backbone=res.ms - a.ms)
        self.e2e_ms.add((self.now_ns() - stamp_ns) * 1e-6)
        self.last = res
        truth = self._gt.get(stamp_ns)
        if truth is not None:
            self.scores.append(task.score(res.estimate, truth))
        elif self.p["ground_truth"]:
            self._pending[stamp_ns] = res.estimate
            while len(self._pending) > 100:
                self._pending.popitem(last=False)
        self.view = WindowView.from_result(task, res, self.ids, truth, self.metric_text(), self.get_name())
        self.stamp = stamp
        if self.p["publish_markers"]:
            self.marker_pub.publish(self.markers())

    def metric(self) -> float | None:
        """Mean of the task's metric over the estimates whose truth arrived (``None`` = none yet)."""
        return float(np.mean(self.scores)) if self.scores else None

    def metric_text(self) -> str:
        m = self.metric()
        return "" if m is None else f"{self.task.metric.name} {self.task.metric.fmt(m)}"

    def markers(self) -> MarkerArray:
        return marker_array(window_markers(self.view), str(self.p["frame_id"]), getattr(self, "stamp", None),
                            float(self.p["marker_lifetime"]))

    def publish_dashboard(self) -> None:
        self.view.metric = self.metric_text()
        img = render_window_dashboard(self.view, int(self.p["dashboard_width"]), int(self.p["dashboard_height"]))
        self.dash_pub.publish(numpy_to_image(img, "rgb8", make_header(getattr(self, "stamp", None),
                                                                      str(self.p["frame_id"]))))

    def diagnostic_statuses(self):
        res, rt, sync = self.last, self.runtime, self.sync
        out = self.stream_statuses(self.ids, res.allocation if res is not None else None, lambda sid: {
            "frames_absent": sync.missing_count.get(sid, 0) if sync is not None else 0})
        out += [self.input_status(k, {}, 1e9) for k in (topics.BUDGET, self.task.truth.topic)
                if k in self.monitor.inputs]
        metric = self.metric()
        values: dict[str, Any] = {
            "task": rt.task.name, "frames": self.frames, "frames_incomplete": self.frames_incomplete,
            "windows": self.windows, "output_rate_hz": self.out_rate.rate(self.now_s()), "window_frames": rt.frames,
            "budget": self.budget, "computed_last": self.computed_last, "computed_total": self.computed_total,
            "estimate": self.task.text(res.estimate) if res is not None else "",
            "controller": res.allocation.controller if res is not None else "",
            "metric": float(metric) if metric is not None else float("nan"), "judged": len(self.scores),
            "backend": rt.engine_backend, **self.infer_ms.report("infer"),
            **self.e2e_ms.report("e2e"), **self.hops.values()}
        msg = (f"{values['windows']} estimates, last {values['estimate'] or '-'}, L={values['budget']}"
               + (f", {self.metric_text()}" if metric is not None else ""))  # a configure error replaces it
        return out + [self.summary_status(msg, values)]


main = ActivityNode.main  # python -m admn_ros.ros.activity_node --ros-args -p model_dir:=models/activity -p budget:=9


if __name__ == "__main__":
    sys.exit(main())
