"""ADMN controller node: synchronized sensor frames -> per-stream layer allocation.

Subscribes (sensor-data QoS, ``message_filters`` ``Subscriber`` s) to every stream's image
topic (:func:`admn_ros.ros.topics.image_topic`: ``<node>/color/image_raw``,
``<node>/depth/image_raw``, ``<node>/radar/range_azimuth``), decodes and preprocesses each
image and synchronizes them with ``message_filters.ApproximateTimeSynchronizer`` semantics
(:mod:`admn_ros.ros.msg_filters`: the real package when installed; ``slop``,
``queue_size``) plus stream timeouts (:class:`admn_ros.core.sync.StreamSync`: a stream silent
for ``timeout`` s is *missing* and frames proceed without it, so that stream gets 0 blocks; a
timer calls ``poll()`` every ``poll_period`` so frames fire even when the dead stream sends
nothing; a frame older than one already processed is dropped as ``stale_set``), then calls
:meth:`Runtime.allocate`. Publishes
``admn_ros/LayerAllocation`` on ``admn/allocation`` (reliable) with the frame's stamp,
``stream_present``, ``estimated_noise``, the controller used and ``decision_ms``.

Budget ``L`` (active blocks over all streams, first blocks included):

* parameter ``budget`` (``ros2 param set /controller_node budget 40``), validated against
  the stream count (rejected with the reason if out of range);
* topic ``admn/budget`` (``std_msgs/UInt16``): sets the same parameter (so
  ``ros2 param get`` shows it); an out-of-range value is rejected with a warning;
* deadline mode (``deadline_ms`` > 0): the budget follows
  :class:`admn_ros.core.budget.DeadlineBudget`, fed with the **measured end-to-end
  latency** of each frame: the controller subscribes to the task's estimate (``admn/target``
  for tracking) and, for each estimate, takes ``receipt time - stamp`` (it carries the sensor stamp)
  together with the blocks it allocated for that stamp. That is what the deadline is
  about (sensor stamp -> estimate) and it includes the backbones, the fusion and DDS,
  which the controller cannot time on its own. It needs the fusion node's clock to be
  the controller's (same host, or synchronized clocks). ``budget`` is the starting value;
  with ``deadline_ms`` back at 0 the parameter rules again.

Images are read with cv_bridge when it is importable (same results without it,
:func:`admn_ros.ros.convert.image_bridge`). With ``radar_input: pointcloud2`` the radar
streams are ``sensor_msgs/PointCloud2`` detections on ``<node>/radar/points``, drawn into
the range-azimuth map of ``sensors_config`` (:mod:`admn_ros.core.radar_cloud`).

Bad input (an encoding the stream cannot use, size, empty data, NaN/inf radar, zero or
future stamps) is rejected, counted per stream and reason on ``/diagnostics`` and logged
throttled with the topic; the stream is missing in that frame and the node keeps running.
Reordered or repeated stamps go to the synchronizer, as with ``message_filters``.
"""
from __future__ import annotations

import math
import sys
from collections import OrderedDict
from typing import Any

from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import UInt16

from admn_ros.core.budget import DeadlineBudget
from admn_ros.core.runtime import Runtime
from admn_ros.core.streams import StreamSet, validate_budget
from admn_ros.msg import LayerAllocation
from admn_ros.ros import topics
from admn_ros.ros.convert import make_header, mask_to_allocation, message_class, stamp_to_ns
from admn_ros.ros.diagnostics import input_status, latency_values, summary_status
from admn_ros.ros.lifecycle import (AdmnNode, image_qos, image_specs, radar_specs,
                                    model_specs, resolve_model_dir, run_node, sync_specs)
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.telemetry import LatencyWindow


class ControllerNode(AdmnNode):
    """See the module docstring."""

    NODE_NAME = "controller_node"
    SUMMARY = "allocation"

    def param_specs(self) -> list[ParamSpec]:
        return [
            *model_specs(),
            ParamSpec("budget", 27, "Layer budget L: active backbone blocks over all streams, first "
                      "blocks included (27 = 25% of 9 x 12); also settable on topic admn/budget",
                      min=1, max=65535, validator=self._budget_problem),
            ParamSpec("deadline_ms", 0.0, "> 0: deadline mode, the budget follows the measured end-to-end "
                      "latency (sensor stamp -> target) so frames fit this many ms", min=0.0, max=60000.0),
            ParamSpec("deadline_margin", 0.15, "Deadline mode: fraction of deadline_ms kept free",
                      min=0.0, max=0.9),
            *sync_specs(),
            *image_specs(),
            *radar_specs(),
        ]

    # ------------------------------------------------------------------ parameters
    def on_parameter(self, name: str, value: Any) -> None:
        if name == "budget":
            self.budget = int(value)
            if self.deadline is not None:
                self.deadline_budget = int(value)
            self.get_logger().info(f"budget -> {value}")
        elif name in ("deadline_ms", "deadline_margin"):
            self._make_deadline()

    # ------------------------------------------------------------------ lifecycle
    def configure(self) -> None:
        p = self.p
        self.runtime = None
        streams = StreamSet(tuple(p["sensor_nodes"]))
        rt = Runtime.load(resolve_model_dir(p), p["backend"], p["device"], threads=p["threads"],
                                  streams=streams)
        self.runtime = rt
        validate_budget(int(p["budget"]), len(rt.stream_ids))
        rt.warmup(("allocate",))
        self.ids = rt.stream_ids
        self.budget = int(p["budget"])
        self.deadline: DeadlineBudget | None = None
        self.deadline_budget = self.budget
        self._make_deadline()
        self.sync = None                  # made on activate (its clock starts then)
        self.alloc_pub = self.lifecycle_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos())
        self.decision = LatencyWindow()
        self.e2e = LatencyWindow()
        self.frames = 0
        self.last: Any = None             # last runtime Allocation
        self._sent: OrderedDict[int, int] = OrderedDict()   # stamp ns -> blocks (deadline feedback)
        self.get_logger().info(rt.describe())

    def _make_deadline(self) -> None:
        rt = getattr(self, "runtime", None)
        d = float(self.p["deadline_ms"])
        if rt is None or d <= 0:
            self.deadline = None
            return
        lo, hi = rt.budget_range()
        self.deadline = DeadlineBudget(lo, hi, d, float(self.p["deadline_margin"]))
        self.deadline_budget = max(lo, min(hi, self.budget))
        self.get_logger().info(f"deadline mode: {d:g} ms (margin {self.p['deadline_margin']:g}), "
                               f"starting at budget {self.deadline_budget}")

    def activate(self) -> None:
        self.sync = self.make_sync(self.ids)
        q = image_qos(self.p)
        for sid in self.ids:
            self.subscribe_filter(*self.stream_input(sid), q).registerCallback(self._on_image, sid)
        self.subscribe(UInt16, topics.BUDGET, self._on_budget, reliable_qos())
        out = self.runtime.task.output
        self.subscribe(message_class(out.type), out.topic, self._on_target, reliable_qos())
        self.timer(float(self.p["poll_period"]), self._on_poll)

    def cleanup(self) -> None:
        self.runtime = None
        self.sync = None

    # ------------------------------------------------------------------ budget
    def effective_budget(self) -> int:
        return self.deadline_budget if self.deadline is not None else self.budget

    def _on_budget(self, msg: UInt16) -> None:
        v = int(msg.data)
        res = self.set_parameters([Parameter("budget", Parameter.Type.INTEGER, v)])[0]
        if not res.successful:
            self.reject(topics.BUDGET, "bad_budget", f"budget {v} from {topics.BUDGET} rejected: {res.reason}")

    def _on_target(self, msg: Any) -> None:
        if self.deadline is None:
            return
        ns = stamp_to_ns(msg.header.stamp)
        blocks = self._sent.pop(ns, None)
        if blocks is None:
            return
        lat = (self.now_ns() - ns) * 1e-6
        if not math.isfinite(lat) or lat < 0:
            return
        self.e2e.add(lat)
        self.deadline.update(blocks, lat)
        new = self.deadline.choose(self.deadline_budget)
        if new != self.deadline_budget:
            self.get_logger().debug(f"deadline mode: budget {self.deadline_budget} -> {new} (latency {lat:.1f} ms)")
        self.deadline_budget = new

    # ------------------------------------------------------------------ frames
    def _on_image(self, msg: Image, sid: str) -> None:
        item = self.image_item(sid, msg)
        if item is not None:
            self.sync_offer(sid, item, self._process)

    def _on_poll(self) -> None:
        self.sync_poll(self._process)

    def _process(self, fs) -> None:
        inputs = {sid: (it[0] if it is not None else None) for sid, it in fs.items.items()}
        newest = max((it for it in fs.items.values() if it is not None), key=lambda it: it[2])
        budget = self.effective_budget()
        try:
            a = self.runtime.allocate(inputs, budget)
        except ValueError as exc:
            self.monitor.drop("allocation_error")
            self.warn_throttled("allocation_error", f"allocation failed: {exc}")
            return
        msg = mask_to_allocation(a.mask, self.ids, budget=budget, header=make_header(newest[1]),
                                 present=a.present, estimated_noise=a.est_noise, controller=a.controller,
                                 decision_ms=a.ms, first_block_forced=bool(self.runtime.cfg.first_block))
        self.alloc_pub.publish(msg)
        self.frames += 1
        self.last = a
        self.decision.add(a.ms)
        if self.deadline is not None:
            self._sent[newest[2]] = int(a.mask.sum())
            while len(self._sent) > 300:
                self._sent.popitem(last=False)

    # ------------------------------------------------------------------ diagnostics
    def diagnostic_statuses(self):
        name = self.get_fully_qualified_name()
        now_s, now_ns = self.now_s(), self.now_ns()
        out = []
        a = self.last
        for i, sid in enumerate(getattr(self, "ids", [])):
            extra: dict[str, Any] = {}
            if a is not None:
                extra = {"est_sigma": float(a.est_noise[i]), "blocks": int(a.mask[i].sum()),
                         "present": bool(a.present[i])}
            out.append(input_status(name, sid, self.monitor, now_s, now_ns, self.p["stale_s"], extra,
                                    self._prev_rejected.get(sid, 0)))
        if topics.BUDGET in self.monitor.inputs:
            out.append(input_status(name, topics.BUDGET, self.monitor, now_s, now_ns, 1e9, {},
                                    self._prev_rejected.get(topics.BUDGET, 0)))
        values: dict[str, Any] = {
            "frames": getattr(self, "frames", 0), "budget": self.p["budget"],
            "effective_budget": self.effective_budget() if hasattr(self, "budget") else self.p["budget"],
            "deadline_ms": self.p["deadline_ms"],
            "controller": a.controller if a is not None else "",
            "backend": self.runtime.engine_backend if getattr(self, "runtime", None) else "",
        }
        if hasattr(self, "decision"):
            values.update(latency_values("decision", self.decision))
        if getattr(self, "deadline", None) is not None:
            values.update(latency_values("e2e", self.e2e))
            m = self.deadline.model()
            if m is not None:
                values.update({"deadline_model_a_ms": m[0], "deadline_model_b_ms_per_block": m[1]})
        values.update(self.sync_diagnostics())
        msg = (f"{values['frames']} frames, L={values['effective_budget']} [{values['controller']}]"
               if self.configure_error is None else "")
        out.append(summary_status(name, self.SUMMARY, msg, values, self.monitor.dropped, self._prev_dropped,
                                  self.configure_error))
        return out


def main(args: list[str] | None = None) -> int:
    """``python -m admn_ros.ros.controller_node --ros-args -p model_dir:=models -p budget:=27``."""
    return run_node(ControllerNode, args)


__all__ = ["ControllerNode", "main"]

if __name__ == "__main__":
    sys.exit(main())
