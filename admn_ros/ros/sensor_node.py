"""Simulated sensors as a ROS 2 node: runs the task's simulator (``scenario``) on a timer and publishes
each selected sensor node's images, camera_info, QoI, the scenario's truth and /diagnostics. Topics, the
shared time grid, corruptions and timelines: docs/DEPLOY.md, "What each node does".
"""
from __future__ import annotations

import math
import sys
import time
from collections import deque
from functools import partial
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from admn_ros.core.image_convert import sensor_array
from admn_ros.core.sim import CORRUPTION_KINDS, corruption_text, parse_corruption
from admn_ros.core.sim.timeline import Timeline
from admn_ros.core.streams import MODALITIES, StreamSet, split_stream_id, stream_id
from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task
from admn_ros.msg import StreamQoI
from admn_ros.ros import topics
from admn_ros.ros.convert import make_header, message_class, ns_to_stamp, numpy_to_image
from admn_ros.ros.diagnostics import OK, WARN, make_status
from admn_ros.ros.env import run_process
from admn_ros.ros.params import (ParamSpec, ParameterError, declare_parameters, install_validation,
                                 parameter_overrides)
from admn_ros.ros.qos import image_qos, reliable_qos
from admn_ros.ros.telemetry import RateMeter
from admn_ros.ros.topics import frame_id

NODE_NAME = "sensor_node"


def corruption_param(sid: str) -> str:
    """``node1/rgb`` -> ``corruption.node1.rgb``."""
    node, mod = split_stream_id(sid)
    return f"corruption.{node}.{mod}"


BASE_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("scenario", DEFAULT_TASK, "The task whose scenario is simulated: tracking (the GDTM-style car seen by "
              "every node of config_file) or activity (a subject performing activities in front of node1's rgb, "
              "depth and radar; publishes ground_truth/activity)", choices=tuple(TASKS), read_only=True),
    ParamSpec("subject_id", 0, "activity scenario: the simulated subject (drawn from seed and this id)",
              min=0, max=2**31 - 1, read_only=True),
    ParamSpec("config_file", "", "Simulator config YAML (scene, nodes, cameras, radar); "
              "'' = the shipped config/sensors.yaml (tracking scenario)", read_only=True),
    ParamSpec("rate_hz", 0.0, "Frame rate in Hz; 0 = the scenario's (rate_hz of the simulator config for "
              "tracking, 10 Hz for activity)", min=0.0, max=240.0, read_only=True),
    ParamSpec("seed", 0, "Scene random seed; processes sharing seed, episode, rate_hz and "
              "start_time publish the same scene", min=0, max=2**31 - 1, read_only=True),
    ParamSpec("episode", 0, "Episode index (a new scene per episode)", min=0, max=2**31 - 1, read_only=True),
    ParamSpec("nodes", [], "Sensor nodes this process publishes; [] = every node of the config",
              type=Parameter.Type.STRING_ARRAY, read_only=True),
    ParamSpec("start_time", -1.0, "Node-clock time (s) of frame 0; stamps are start_time + k / rate_hz. < 0: 10 ms "
              "after the node starts (one process; under sim time without /clock yet: the first timer tick). Give "
              "all processes the same value to align them", min=-1.0, max=4.0e9, read_only=True),
    ParamSpec("publish_ground_truth", True, "Publish the scenario's truth (tracking: ground_truth/target, "
              "activity: ground_truth/activity)", read_only=True),
    ParamSpec("publish_qoi", True, "Publish <node>/qoi/<modality> (admn_ros/StreamQoI)", read_only=True),
    ParamSpec("publish_camera_info", True, "Publish <node>/{color,depth}/camera_info", read_only=True),
    ParamSpec("image_reliability", "best_effort", "QoS reliability of the image, QoI and camera_info publishers "
              "(best_effort = sensor data QoS)", choices=("best_effort", "reliable"), read_only=True),
    ParamSpec("qos_depth", 5, "History depth of the sensor publishers", min=1, max=100, read_only=True),
    ParamSpec("max_catch_up", 1000, "When late, frames skipped (not rendered) per tick to get back onto the shared "
              "time grid; 0 = never skip (stamps then lag the clock)", min=0, max=1_000_000),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages (0 = off)", min=0.0, max=3600.0),
    ParamSpec("rate_window", 2.0, "Window (s) over which the achieved rate is measured", min=0.1, max=60.0,
              read_only=True),
    ParamSpec("timeline_file", "", "Scenario YAML: phases that corrupt streams for some seconds "
              "(config/demo_tracking.yaml); '' = none"),
    ParamSpec("timeline_start", -1.0, "Node-clock time (s) the scenario starts; < 0: at frame 0",
              min=-1.0, max=4.0e9),
)


#: Without start_time, frame 0 is due this long after the timer starts (ns).
_ANCHOR_DELAY_NS = 10_000_000
#: The periodic timer is started this long after a grid point (ns) ...
_PHASE_SLACK_NS = 500_000
#: ... and only if the phase callback ran at most this long after it; else it waits again
_PHASE_TOLERANCE_NS = 3_000_000
#: Bound on those waits (each at most one period); then the timer starts where it is
_PHASE_MAX_RETRIES = 20


class SensorNode(Node):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        kwargs.setdefault("allow_undeclared_parameters", True)  # so unknown names get a reason
        super().__init__(node_name, **kwargs)
        self._render_timer = None
        try:
            self._setup()
        except BaseException:
            self.destroy_node()  # do not leave a half-built node in the context
            raise

    def _setup(self) -> None:
        p = declare_parameters(self, BASE_SPECS)
        self.task = get_task(p["scenario"])
        try:
            self.sim = self.task.simulator(seed=int(p["seed"]), episode=int(p["episode"]),
                                           rate_hz=float(p["rate_hz"]) or None, subject_id=int(p["subject_id"]),
                                           config_file=p["config_file"] or None)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"parameter 'config_file': {e}") from None
        self.cfg = self.sim.cfg               # node poses and cameras (None: the scenario has none)
        self.streams = StreamSet.from_ids(self.sim.stream_ids)
        source = f"the {self.task.name} scenario ({self.task.describe_sim(self.sim)})"
        all_nodes = list(self.streams.nodes)
        unknown = [n for n in p["nodes"] if n not in all_nodes]
        if unknown:
            raise ParameterError(f"parameter 'nodes': unknown sensor node(s) {unknown}; "
                                 f"known nodes in {source}: {all_nodes}")
        self.nodes = list(dict.fromkeys(p["nodes"])) or all_nodes
        self.rate_hz = float(self.sim.rate_hz)
        self.period_ns = int(round(1e9 / self.rate_hz))

        ids = self.streams.ids
        corr_specs = tuple(ParamSpec(corruption_param(sid), "none", f"Corruption of stream {sid}: '<kind>[:sigma=..,"
                                     "severity=..,schedule=constant|flicker,period_s=..,duty=..]'",
                                     constraints="kinds: " + ", ".join(CORRUPTION_KINDS),
                                     validator=partial(parse_corruption, modality=split_stream_id(sid)[1]))
                           for sid in ids)
        self._specs = {s.name: s for s in BASE_SPECS + corr_specs}
        for name in parameter_overrides(self):
            if name.startswith("corruption.") and name not in self._specs:
                raise ParameterError(self._unknown_corruption_reason(name, ids))
        corr = declare_parameters(self, corr_specs)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        install_validation(self, BASE_SPECS + corr_specs)  # registered last: runs first

        self.corruption: dict[str, Any] = {}  # stream id -> CorruptionSpec as given (checked on declaration)
        for sid in ids:
            self._apply_corruption(sid, parse_corruption(corr[corruption_param(sid)], split_stream_id(sid)[1]))
        try:
            self.timeline = Timeline.load(p["timeline_file"], ids) if p["timeline_file"] else None
        except ValueError as e:
            raise ParameterError(f"parameter 'timeline_file': {e}") from None
        self.phase: int | None = None

        img_qos = image_qos(p["image_reliability"], p["qos_depth"])
        self.my_streams = [stream_id(n, m) for n in self.nodes for m in self.streams.modalities]
        self.image_pubs = {sid: self.create_publisher(Image, topics.image_topic(sid), img_qos)
                           for sid in self.my_streams}
        self.qoi_pubs = ({sid: self.create_publisher(StreamQoI, topics.qoi_topic(sid), img_qos)
                          for sid in self.my_streams} if p["publish_qoi"] else {})
        cams = ({sid: t for sid in self.my_streams if (t := topics.camera_info_topic(sid))}
                if p["publish_camera_info"] and self.cfg is not None else {})
        self.info_pubs = {sid: self.create_publisher(CameraInfo, topic, img_qos) for sid, topic in cams.items()}
        self.camera_info = {sid: self._make_camera_info(split_stream_id(sid)[0]) for sid in cams}
        self.gt_pub = None
        if p["publish_ground_truth"]:
            self._truth_cls = message_class(self.task.truth.type)
            self.gt_pub = self.create_publisher(self._truth_cls, self.task.truth.topic, reliable_qos())
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, reliable_qos())

        # start_time is rounded to the microsecond so every process derives the same grid
        self.start_ns: int | None = (None if p["start_time"] < 0
                                     else int(round(p["start_time"] * 1e6)) * 1000)
        self._phase_retries = 0
        self.next_k = 0                 # index of the frame the next sim.step() returns
        self.published_k = -1           # index of the last published frame
        self._ahead: tuple[int, Any, dict[str, Image]] | None = None   # the next frame, rendered ahead
        self.frames_published = 0
        self.frames_skipped = 0
        self.step_ms: deque[float] = deque(maxlen=100)
        #: node-clock time after a frame's messages went out minus the frame's stamp (ms)
        self.publish_lag_ms: deque[float] = deque(maxlen=100)
        self.meters = {sid: RateMeter(p["rate_window"]) for sid in self.my_streams}
        self.tick_meter = RateMeter(p["rate_window"])
        self._last_diag = time.monotonic()
        self._start_timer()
        self.get_logger().info(
            f"publishing {len(self.my_streams)} streams of {self.nodes} at {self.rate_hz:g} Hz "
            f"(seed {p['seed']}, episode {p['episode']}, {source})")

    @staticmethod
    def _unknown_corruption_reason(name: str, ids: list[str]) -> str:
        parts = name.split(".")
        what = "/".join(parts[1:]) if len(parts) == 3 else name[len("corruption."):]
        return (f"parameter {name!r}: unknown stream {what!r}; known streams: {ids} "
                f"(parameter names look like 'corruption.<node>.<modality>')")

    def _apply_corruption(self, sid: str, spec) -> None:
        self.sim.set_corruption(sid, spec)
        self.corruption[sid] = spec

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        ids = self.streams.ids
        todo: list[tuple[str, Any]] = []
        timeline = self.timeline
        for prm in params:
            if prm.name == "timeline_file":
                try:
                    timeline = Timeline.load(prm.value, ids) if prm.value else None
                except ValueError as e:
                    return SetParametersResult(successful=False, reason=f"parameter 'timeline_file': {e}")
            if prm.name not in self._specs:
                if prm.name.startswith("corruption."):
                    return SetParametersResult(successful=False, reason=self._unknown_corruption_reason(prm.name, ids))
                if prm.name == "use_sim_time" or prm.name.startswith("qos_overrides."):
                    continue
                return SetParametersResult(
                    successful=False, reason=f"parameter {prm.name!r} is not a parameter of {self.get_name()}")
            if prm.name.startswith("corruption."):
                if prm.type_ != Parameter.Type.STRING:  # NOT_SET: undeclaring it
                    return SetParametersResult(successful=False, reason=f"parameter {prm.name!r} must be a string")
                sid = "/".join(prm.name.split(".")[1:])
                todo.append((sid, parse_corruption(prm.value, split_stream_id(sid)[1])))
        for sid, c in todo:  # parsed for the stream's modality: the simulator takes it
            if self.corruption.get(sid) != c:
                self.get_logger().info(f"corruption of {sid} -> {c}")
            self._apply_corruption(sid, c)
        if any(prm.name.startswith("timeline_") for prm in params):
            self.timeline, self.phase = timeline, None
        return SetParametersResult(successful=True)

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _start_timer(self) -> None:
        """Start the periodic timer on a grid point so ticks land just after the frames' due times
        (all processes alike); anchoring at a free-running timer's first tick would offset every stamp
        by that tick's start-up delay."""
        now = self._now_ns()
        if self.start_ns is None:
            if now <= 0:  # use_sim_time and no /clock yet: anchor at the first tick
                self.create_timer(self.period_ns * 1e-9, self._on_timer)
                return
            self.start_ns = now + _ANCHOR_DELAY_NS
        self._arm_phase_timer(now)

    def _arm_phase_timer(self, now: int) -> None:
        """One-shot timer to just after the next grid point (sim time not received yet: in 10 ms)."""
        delay_ns = self.period_ns - (now - self.start_ns) % self.period_ns + _PHASE_SLACK_NS
        self._phase_timer = self.create_timer(delay_ns * 1e-9 if now > 0 else 0.01, self._phase_then_periodic)

    def _phase_then_periodic(self) -> None:
        """Start the periodic timer, or wait for the next grid point if this callback ran late."""
        self.destroy_timer(self._phase_timer)
        now = self._now_ns()
        if now <= 0:
            self._arm_phase_timer(now)
            return
        if (now - self.start_ns) % self.period_ns > _PHASE_TOLERANCE_NS and self._phase_retries < _PHASE_MAX_RETRIES:
            self._phase_retries += 1
            self._arm_phase_timer(now)
            return
        self.create_timer(self.period_ns * 1e-9, self._on_timer)
        self._on_timer()

    def frame_stamp_ns(self, k: int) -> int:
        return self.start_ns + int(round(k * 1e9 / self.rate_hz))

    def _on_timer(self) -> None:
        now = self._now_ns()
        if self.start_ns is None:
            if now <= 0:
                return  # use_sim_time and no /clock yet
            self.start_ns = now
        if now < self.start_ns - self.period_ns // 2:
            return  # before frame 0
        due = int(math.floor((now - self.start_ns) / self.period_ns + 0.5))
        if due <= self.published_k:
            return  # already published the frame due now (early tick)
        self._cancel_render_timer()
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == due:
            k, frame, images = ahead
        else:  # first frame, late, or not rendered ahead yet: the frame rendered ahead is skipped too
            self.frames_skipped += ahead is not None
            k, frame, images = self._render(due)
        self._publish(frame, k, images)
        self.published_k = k
        self._maybe_diagnostics()
        self._schedule_render(k + 1)

    def _schedule_render(self, k: int) -> None:
        """Render frame ``k`` ahead of its tick, in the idle part of the period: half a period after
        the frame just published (the graph is done with it by then, so the render does not take a
        core from it), or earlier if the recent renders need it (twice their p90 + 2 ms before the tick)."""
        lead_ns = int((2.0 * (np.percentile(self.step_ms, 90) if self.step_ms else 0.0) + 2.0) * 1e6)
        delay = self.frame_stamp_ns(k) - max(self.period_ns // 2, lead_ns) - self._now_ns()
        if delay <= 0:
            self._ahead = self._render(k)
            return
        self._render_timer = self.create_timer(delay * 1e-9, lambda: self._render_ahead(k))

    def _render_ahead(self, k: int) -> None:
        self._cancel_render_timer()
        if self._ahead is None and k == self.published_k + 1:
            self._ahead = self._render(k)

    def _cancel_render_timer(self) -> None:
        if self._render_timer is not None:
            self.destroy_timer(self._render_timer)
            self._render_timer = None

    def _render(self, k: int) -> tuple[int, Any, dict[str, Image]]:
        """Step the simulator to frame ``k`` (at most ``max_catch_up`` frames skipped unrendered, any number to the
        first frame); ``(index, frame, stamped image messages)``, none for a dropped-out stream."""
        cap = int(self.get_parameter("max_catch_up").value)
        late = min(k - self.next_k, cap if self.next_k > 0 or cap == 0 else k)
        t0 = time.perf_counter()
        if late > 0:
            self.sim.skip(late)  # not rendered
            self.next_k += late
            self.frames_skipped += late
        if self.timeline is not None:
            self._apply_timeline(self.frame_stamp_ns(self.next_k))
        frame = self.sim.step()
        k = self.next_k
        self.next_k += 1
        stamp = ns_to_stamp(self.frame_stamp_ns(k))
        images = {}
        for sid in self.my_streams:
            sf = frame.streams.get(sid)
            if sf is not None and sf.data is not None:  # dropout: no image
                node, mod = split_stream_id(sid)
                images[sid] = numpy_to_image(sensor_array(mod, sf.data), MODALITIES[mod].encoding,
                                             make_header(stamp, frame_id(node, mod)))
        self.step_ms.append((time.perf_counter() - t0) * 1e3)
        return k, frame, images

    def _apply_timeline(self, stamp_ns: int) -> None:
        """Set every stream's corruption to the scenario phase of ``stamp_ns`` when it changes."""
        start = float(self.get_parameter("timeline_start").value)
        start_ns = self.start_ns if start < 0 else int(round(start * 1e9))
        i = self.timeline.index_at((stamp_ns - start_ns) * 1e-9)
        if i is None or i == self.phase:
            return
        self.phase = i
        for sid, spec in self.timeline.specs(i, self.streams.ids).items():
            self._apply_corruption(sid, spec)
        ph = self.timeline.phases[i]
        self.get_logger().info(f"scenario phase {i + 1}/{len(self.timeline.phases)} {ph.name!r}: " + (", ".join(
            f"{sid} {corruption_text(c)}" for sid, c in self.corruption.items() if c.kind != "none") or "all clean"))

    def _publish(self, frame, k: int, images: dict[str, Image]) -> None:
        stamp = ns_to_stamp(self.frame_stamp_ns(k))
        now_s = self._now_ns() * 1e-9
        self.tick_meter.tick(now_s)
        for sid, img in images.items():  # images first: they are what the graph waits for
            self.image_pubs[sid].publish(img)
            self.meters[sid].tick(now_s)
        for sid in self.my_streams:
            sf = frame.streams.get(sid)
            if sf is None:
                continue
            header = images[sid].header if sid in images else make_header(stamp, frame_id(*split_stream_id(sid)))
            if sid in self.qoi_pubs:
                self.qoi_pubs[sid].publish(StreamQoI(header=header, stream_id=sid, corruption=str(sf.corruption),
                                                     noise_sigma=float(sf.sigma), severity=float(sf.severity)))
            info = self.camera_info.get(sid)
            if info is not None and sid in images:
                info.header = header
                self.info_pubs[sid].publish(info)
        if self.gt_pub is not None:  # the scenario's truth, stamped like the frame's images
            truth = self._truth_cls(header=make_header(stamp, self.task.frame_id))
            self.gt_pub.publish(self.task.fill_truth(truth, self.task.sim_truth(frame), self.task.sim_labels()))
        self.frames_published += 1
        self.publish_lag_ms.append((self._now_ns() - self.frame_stamp_ns(k)) * 1e-6)

    def _make_camera_info(self, node: str) -> CameraInfo:
        cam = self.cfg.node(node).camera
        return CameraInfo(width=int(cam.width), height=int(cam.height),
                          distortion_model="plumb_bob", d=[0.0] * 5, k=[float(x) for x in cam.K.reshape(-1)],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[cam.fx, 0.0, cam.cx, 0.0, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    def _maybe_diagnostics(self) -> None:
        period = float(self.get_parameter("diagnostics_period").value)
        if period <= 0 or time.monotonic() - self._last_diag < period:
            return
        self._last_diag = time.monotonic()
        name, now_s = self.get_fully_qualified_name(), self._now_ns() * 1e-9
        frame_rate = self.tick_meter.rate(now_s)
        values = {"target_hz": f"{self.rate_hz:g}", "achieved_hz": f"{frame_rate:.2f}",
                  "frames_published": str(self.frames_published), "frames_skipped": str(self.frames_skipped),
                  "step_ms_mean": f"{np.mean(self.step_ms) if self.step_ms else 0.0:.2f}",
                  "publish_lag_ms_p50": f"{np.median(self.publish_lag_ms) if self.publish_lag_ms else 0.0:.2f}"}
        if self.timeline is not None:
            values["scenario_phase"] = "" if self.phase is None else self.timeline.phases[self.phase].name
        statuses = [make_status(f"{name}: frames", f"{self.task.name}_sim", OK if frame_rate >= 0.8 * self.rate_hz
                                else WARN, f"{frame_rate:.1f} / {self.rate_hz:g} Hz", values)]
        for sid in self.my_streams:
            r, c = self.meters[sid].rate(now_s), self.corruption[sid]
            level, msg = (WARN, "dropout (publishing nothing)") if c.kind == "dropout" else (
                OK if r >= 0.8 * self.rate_hz else WARN, f"{r:.1f} Hz")
            statuses.append(make_status(f"{name}: {sid}", sid, level, msg, {
                "achieved_hz": f"{r:.2f}", "corruption": c.kind, "sigma": f"{c.sigma or 0.0:g}"}))
        self.diag_pub.publish(DiagnosticArray(header=make_header(self.get_clock().now().to_msg()), status=statuses))


def main(args: list[str] | None = None) -> int:
    """``python -m admn_ros.ros.sensor_node --ros-args -p rate_hz:=10 -p nodes:=[node1]``."""
    return run_process(SensorNode, NODE_NAME, (ValueError, FileNotFoundError, KeyError), args)


if __name__ == "__main__":
    sys.exit(main())
