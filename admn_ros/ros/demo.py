"""The live demo's monitor (``admn-ros demo``) for any task: :class:`Monitor` listens to the running graph,
starts the sensors' scenario at the first estimate, prints the live line and at the end compares Naive
Allocation and the Upper Bound on the recorded inputs (:class:`~admn_ros.core.demo.DemoRecord`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import Image

from admn_ros.core.demo import DemoRecord
from admn_ros.core.image_convert import decode_stream
from admn_ros.core.preprocess import to_storage
from admn_ros.core.sim.timeline import Timeline
from admn_ros.core.tasks import Task
from admn_ros.core.sync import stamp_to_ns
from admn_ros.msg import LayerAllocation, StreamQoI
from admn_ros.ros import topics
from admn_ros.ros.convert import allocation_to_mask, image_bridge, message_class
from admn_ros.ros.qos import reliable_qos, sensor_qos
from admn_ros.ros.telemetry import RateMeter, hop_lines, hops_of

#: Window (s) of the live sensor rates.
RATE_WINDOW_S = 3.0
#: The scenario starts this long after the first estimate (s): no frame rendered before the sensor
#: node got the parameters falls into it.
START_DELAY_S = 0.5
#: The scenario's parameters are sent again when unanswered after RESEND_S (a request sent before
#: DDS has matched both sides of the service is lost), and the demo fails after GIVE_UP_S.
RESEND_S, GIVE_UP_S = 2.0, 20.0


class Monitor:
    """See the module docstring; the scenario's parameters are set on ``sensor_node``."""

    def __init__(self, node: Any, stream_ids: list[str], task: Task, scenario: Timeline | None = None) -> None:
        self.node, self.task, self.ids = node, task, list(stream_ids)
        self.rec = DemoRecord(task, self.ids, scenario)
        self.scenario = scenario
        self.rates = {sid: RateMeter(RATE_WINDOW_S) for sid in self.ids}
        self.last_alloc = ""            # the last allocation as ``L=27 [controller] n1/rgb:4 ...``
        self.last: Any = None            # the frame of the last estimate
        self.estimates = 0
        self.params = AsyncParameterClient(node, "sensor_node") if scenario is not None else None
        self._set: Any = None          # the future of the scenario's parameters
        self._start_s: float | None = None   # the scenario's start (node clock, s) once the first estimate came
        self._asked_s: float | None = None   # when the parameters were last sent (node clock, s)
        sub = node.create_subscription
        sub(message_class(task.truth.type), task.truth.topic, self._on_truth, reliable_qos(50))
        sub(message_class(task.output.type), task.output.topic, self._on_estimate, reliable_qos(50))
        sub(LayerAllocation, topics.ALLOCATION, self._on_alloc, reliable_qos(50))
        sub(Image, topics.DASHBOARD, self._on_dashboard, reliable_qos(1))
        sub(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, reliable_qos(20))
        for sid in self.ids:
            sub(StreamQoI, topics.qoi_topic(sid), self._on_qoi, sensor_qos())
            sub(Image, topics.image_topic(sid), lambda m, s=sid: self._on_image(s, m), sensor_qos())

    def _now_s(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _on_image(self, sid: str, msg: Any) -> None:
        self.rates[sid].tick(self._now_s())
        mod = sid.split("/")[1]
        try:
            arr = decode_stream(msg, "image", mod, to_array=image_bridge().imgmsg_to_cv2)
            self.rec.add_input(stamp_to_ns(msg.header.stamp), sid, to_storage(mod, arr))
        except ValueError:
            pass  # the graph rejects it too (and counts it on /diagnostics)

    def _on_qoi(self, msg: Any) -> None:
        if msg.stream_id in self.rates:
            self.rec.add_noise(stamp_to_ns(msg.header.stamp), msg.stream_id, float(msg.severity))

    def _on_alloc(self, msg: Any) -> None:
        try:
            a = allocation_to_mask(msg)
        except ValueError:
            return  # the graph rejects it too
        blocks = a.mask.sum(1)
        self.last_alloc = f"L={a.budget} [{a.controller}] " + " ".join(
            f"{sid.replace('node', 'n')}:{c}" for sid, c in zip(a.stream_ids, blocks))
        if a.stream_ids == self.ids:
            f = self.rec.frame(stamp_to_ns(msg.header.stamp))
            f.blocks = blocks
            f.est_noise = a.estimated_noise.astype(np.float64)
            self.rec.budget = a.budget

    def _on_truth(self, msg: Any) -> None:
        self.rec.frame(stamp_to_ns(msg.header.stamp)).truth = self.task.read_truth(msg)

    def _on_estimate(self, msg: Any) -> None:
        ns = stamp_to_ns(msg.header.stamp)
        f = self.rec.frame(ns)
        f.estimate = self.task.read_output(msg)
        f.latency_ms = self._now_s() * 1e3 - ns * 1e-6
        self.estimates += 1
        self.last = f
        if self.rec.start_ns is None:
            self._start(ns)

    def _on_dashboard(self, msg: Any) -> None:
        phase = self.rec.phase(int(self._now_s() * 1e9))
        if phase is not None and msg.encoding == "rgb8":
            self.rec.dashboards[phase] = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3).copy()

    def _on_diagnostics(self, msg: Any) -> None:
        for st in msg.status:
            hops = hops_of({kv.key: kv.value for kv in st.values})
            if hops:
                self.rec.hops = hops

    def _start(self, first_ns: int) -> None:
        """Start the scenario shortly after the first estimate (without one: phase 0 from here)."""
        if self.params is None:
            self.rec.start_ns = first_ns
            return
        self._start_s = round(self._now_s() + START_DELAY_S, 3)
        self.rec.start_ns = int(round(self._start_s * 1e9))
        self.check_scenario()

    def check_scenario(self) -> str | None:
        """Send the scenario's parameters to the sensor node once its parameter services are matched,
        again while unanswered; why the node refused them or did not answer (None: fine or pending)."""
        if self._start_s is None or self.params is None:
            return None
        now = self._now_s()
        if self._set is not None and self._set.done():
            try:
                bad = [r.reason for r in self._set.result().results if not r.successful]
            except Exception as exc:  # noqa: BLE001 - service call failed
                bad = [str(exc)]
            return "; ".join(bad) or None
        if now - self._start_s > GIVE_UP_S:
            return f"no answer to the scenario's parameters within {GIVE_UP_S:g} s"
        if self.params.services_are_ready() and (self._asked_s is None or now - self._asked_s >= RESEND_S):
            self._asked_s = now
            self._set = self.params.set_parameters([
                Parameter("timeline_file", value=str(Path(self.scenario.source))),
                Parameter("timeline_start", value=self._start_s)])
        return None

    def done(self) -> bool:
        """The scenario's last phase is over (never without a scenario)."""
        return (self.scenario is not None and self.rec.start_ns is not None
                and self._now_s() > self.rec.start_ns * 1e-9 + self.scenario.duration_s + 1.0)

    def line(self, elapsed: float) -> str:
        """The live status line (``admn-ros demo`` prints one every second)."""
        now = self._now_s()
        rates = [r.rate(now) for r in self.rates.values()]
        parts = [f"t={elapsed:5.1f}s"]
        if self.scenario is not None:
            ns = int(now * 1e9)
            i = self.rec.phase(ns)
            if i is None:
                parts.append("starting" if self.rec.start_ns is None else "scenario starts")
            else:
                p = self.scenario.phases[i]
                left = max(0.0, p.end_s - (ns - self.rec.start_ns) * 1e-9)
                parts.append(f"phase {i + 1}/{len(self.scenario.phases)} {p.name!r} ({left:.0f} s left)")
        parts.append(f"sensors {min(rates):4.1f}-{max(rates):4.1f} Hz x{len(rates)}")
        f = self.last
        if f is not None:
            recent = [g for g in list(self.rec.frames.values())[-45:] if g.estimate is not None]
            scores = [self.task.score(g.estimate, g.truth) for g in recent if g.truth is not None][-30:]
            parts += [f"estimates {self.estimates}", self.task.text(f.estimate, f.truth),
                      f"latency p50 {np.median([g.latency_ms for g in recent[-30:]]):5.1f} ms"]
            if scores:
                parts.append(f"{self.task.metric.name}(last30) {self.task.metric.fmt(np.mean(scores))}")
        return " | ".join(parts + ([self.last_alloc] if self.last_alloc else []))

    def finish(self, elapsed: float, out_dir: str | Path, model_dir: str | Path, compare: int = 300) -> str:
        """The summary: rates, estimates, the per-phase comparison (computed now), latency by hop,
        and the picture and JSON written to ``out_dir``."""
        m = self.task.metric
        now = max((r.times[-1] for r in self.rates.values() if r.times), default=self._now_s())  # graph stopped
        judged = [self.task.score(f.estimate, f.truth) for f in self.rec.frames.values()
                  if f.estimate is not None and f.truth is not None]
        lines = ["", f"== admn_ros {self.task.name} demo summary ==", f"duration        {elapsed:.1f} s",
                 f"sensor rates    (last {RATE_WINDOW_S:g} s) " + ", ".join(
                     f"{sid} {r.rate(now):.1f} Hz" for sid, r in self.rates.items()),
                 f"estimates       {self.estimates}"]
        if self.scenario is not None:
            lines.append(f"scenario        {self.scenario.name!r} ({self.scenario.source})")
        if judged:
            lines.append(f"{m.name:<15} {m.describe(judged)} over {len(judged)} {self.task.unit}s "
                         f"({self.task.output.topic} vs {self.task.truth.topic} at the same stamp)")
        if compare > 0 and self.rec.budget:
            print("\n".join(lines + [f"comparing       Naive Allocation and Upper Bound on up to {compare} of the "
                                      "recorded frames ..."]), flush=True)
            lines = []
            self.rec.compare(model_dir, self.rec.budget, compare)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        png, js = out / f"demo_{self.task.name}.png", out / f"demo_{self.task.name}.json"
        table, doc = self.rec.report([png, js])
        lines += table
        if self.rec.hops:
            lines += ["", "latency by hop (p50 / p99, the graph's /diagnostics over its last 1000 frames)",
                      *hop_lines(self.rec.hops)]
        self.rec.plot(png)
        js.write_text(json.dumps({**doc, "duration_s": elapsed, "sensor_rates_hz": {
            sid: r.rate(now) for sid, r in self.rates.items()}}, indent=1, default=float))
        lines += ["", f"picture         {png}", f"summary (JSON)  {js}"]
        return "\n".join(lines)
