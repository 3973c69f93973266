"""ADMN controller node: synchronized sensor frames -> per-stream layer allocation on ``admn/allocation``
(:meth:`Runtime.allocate`) within the budget: the ``budget`` parameter, the ``admn/budget`` topic, or deadline
mode (:class:`~admn_ros.core.budget.DeadlineBudget`). Synchronization, health, bad input: docs/DEPLOY.md."""
from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any

from std_msgs.msg import UInt16

from admn_ros.core.budget import DeadlineBudget
from admn_ros.core.health import stream_status
from admn_ros.core.streams import validate_budget
from admn_ros.core.sync import stamp_to_ns
from admn_ros.msg import LayerAllocation
from admn_ros.ros import topics
from admn_ros.ros.convert import make_header, mask_to_allocation, message_class, ns_to_stamp
from admn_ros.ros.lifecycle import AdmnNode, model_specs, stream_specs
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.telemetry import LatencyWindow


class ControllerNode(AdmnNode):
    NODE_NAME = "controller_node"
    SUMMARY = "allocation"

    def param_specs(self) -> list[ParamSpec]:
        return [
            *model_specs(),
            ParamSpec("budget", 27, "Layer budget L: active backbone blocks over all streams, first "
                      "blocks included (27 = 25% of 9 x 12); also settable on topic admn/budget",
                      min=1, max=65535, validator=self._check_budget),
            ParamSpec("deadline_ms", 0.0, "> 0: deadline mode, the budget follows the measured end-to-end "
                      "latency (sensor stamp -> target) so frames fit this many ms", min=0.0, max=60000.0),
            ParamSpec("deadline_margin", 0.15, "Deadline mode: fraction of deadline_ms kept free", min=0.0, max=0.9),
            *stream_specs(),
        ]

    def on_parameter(self, name: str, value: Any) -> None:
        if name == "budget":
            self.budget = self.deadline_budget = int(value)   # deadline mode starts again from it
            self.get_logger().info(f"budget -> {value}")
        elif name in ("deadline_ms", "deadline_margin"):
            self._make_deadline()

    def configure(self) -> None:
        rt = self.load_runtime()
        self.budget = int(self.p["budget"])
        validate_budget(self.budget, len(rt.stream_ids))
        rt.warmup(("allocate",))
        self.ids = rt.stream_ids
        self.deadline_budget = self.budget
        self._make_deadline()
        self.alloc_pub = self.lifecycle_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos())
        self.decision = LatencyWindow()
        self.e2e = LatencyWindow()
        self.frames = 0
        self.last: Any = None             # last runtime Allocation
        self._sent: OrderedDict[int, int] = OrderedDict()   # stamp ns -> blocks (deadline feedback)
        self.get_logger().info(rt.describe())

    def _make_deadline(self) -> None:
        rt = self.runtime
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
        self.subscribe_streams(self.ids, lambda fs: self._process(fs))  # late-bound: tests wrap _process
        self.subscribe(UInt16, topics.BUDGET, self.budget_from_topic, reliable_qos())
        out = self.runtime.task.output
        self.subscribe(message_class(out.type), out.topic, self._on_target, reliable_qos())

    def effective_budget(self) -> int:
        return self.deadline_budget if self.deadline is not None else self.budget

    def _on_target(self, msg: Any) -> None:
        if self.deadline is None:
            return
        ns = stamp_to_ns(msg.header.stamp)
        blocks = self._sent.pop(ns, None)
        lat = (self.now_ns() - ns) * 1e-6
        if blocks is None or lat < 0:
            return
        self.e2e.add(lat)
        self.deadline.update(blocks, lat)
        new = self.deadline.choose(self.deadline_budget)
        if new != self.deadline_budget:
            self.get_logger().debug(f"deadline mode: budget {self.deadline_budget} -> {new} (latency {lat:.1f} ms)")
        self.deadline_budget = new

    def _process(self, fs) -> None:
        t_in = self.now_ns()
        budget = self.effective_budget()
        try:
            a = self.runtime.allocate(fs.items, budget)
        except ValueError as exc:
            self.monitor.drop("allocation_error")
            self.warn_throttled("allocation_error", f"allocation failed: {exc}")
            return
        msg = mask_to_allocation(a.mask, self.ids, budget=budget, header=make_header(ns_to_stamp(fs.stamp_ns)),
                                 present=a.present, estimated_noise=a.est_noise, controller=a.controller,
                                 first_block_forced=bool(self.runtime.cfg.first_block),
                                 stream_status=stream_status(self.ids, a.present, fs.status))
        msg.input_ms = (t_in - fs.stamp_ns) * 1e-6         # sensor stamp -> every input here
        msg.decision_ms = (self.now_ns() - t_in) * 1e-6    # this node's compute for the frame
        self.alloc_pub.publish(msg)
        self.frames += 1
        self.last = a
        self.decision.add(a.ms)
        if self.deadline is not None:
            self._sent[fs.stamp_ns] = int(a.mask.sum())
            while len(self._sent) > 300:
                self._sent.popitem(last=False)

    def diagnostic_statuses(self):
        a = self.last
        out = self.stream_statuses(self.ids, a)
        if topics.BUDGET in self.monitor.inputs:
            out.append(self.input_status(topics.BUDGET, {}, 1e9))
        values: dict[str, Any] = {
            "frames": self.frames, "budget": self.p["budget"], "effective_budget": self.effective_budget(),
            "deadline_ms": self.p["deadline_ms"], "controller": a.controller if a is not None else "",
            "backend": self.runtime.engine_backend, **self.decision.report("decision")}
        if self.deadline is not None:
            values.update(self.e2e.report("e2e"))
            m = self.deadline.model()
            if m is not None:
                values.update({"deadline_model_a_ms": m[0], "deadline_model_b_ms_per_block": m[1]})
        msg = f"{values['frames']} frames, L={values['effective_budget']} [{values['controller']}]"
        return out + [self.summary_status(msg, values)]


main = ControllerNode.main  # python -m admn_ros.ros.controller_node --ros-args -p model_dir:=models -p budget:=27


if __name__ == "__main__":
    sys.exit(main())
