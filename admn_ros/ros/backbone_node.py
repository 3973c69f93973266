"""ADMN backbone node: the streams of sensor node ``sensor_node`` through the blocks ``admn/allocation`` gives
them (:meth:`Runtime.embed`) -> ``admn/<sensor_node>/embeddings``; modes, drops, topics: docs/DEPLOY.md."""
from __future__ import annotations

import array
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from admn_ros.core.streams import stream_id
from admn_ros.msg import LayerAllocation, StreamEmbedding, StreamEmbeddings
from admn_ros.ros import topics
from admn_ros.ros.convert import allocation_to_mask, make_header, ns_to_stamp
from admn_ros.ros.lifecycle import AdmnNode, model_specs, stream_specs
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.telemetry import LatencyWindow


@dataclass
class _Frame:
    stamp_ns: int
    inputs: dict[str, np.ndarray | None]
    ready: float          # monotonic time the frame was complete


@dataclass
class _Alloc:
    """The rows of an ``admn/allocation`` for this node's streams, in their order."""

    stamp_ns: int
    mask: np.ndarray            # bool (n_streams, depth)
    present: np.ndarray         # bool (n_streams,)
    est_noise: np.ndarray       # (n_streams,)
    controller: str
    input_ms: float = 0.0       # the controller's hops (LayerAllocation.input_ms / decision_ms)
    decision_ms: float = 0.0


class BackboneNode(AdmnNode):
    NODE_NAME = "backbone_node"
    SUMMARY = "backbone"

    def param_specs(self) -> list[ParamSpec]:
        return [
            *[s for s in model_specs() if s.name != "sensor_nodes"],
            ParamSpec("sensor_node", "node1", "The sensor node whose streams this backbone node runs; "
                      "applied on configure"),
            ParamSpec("allocation_mode", "per_frame", "per_frame: wait for each frame's allocation; "
                      "pipelined: use the latest allocation at once", choices=("per_frame", "pipelined")),
            ParamSpec("allocation_wait", 0.5, "per_frame: longest wait (s) for a frame's allocation before "
                      "the frame is dropped", min=0.001, max=60.0),
            ParamSpec("max_pending", 10, "per_frame: frames kept waiting for their allocation", min=1, max=1000),
            *stream_specs(),
        ]

    def on_parameter(self, name: str, value: Any) -> None:
        if name == "allocation_mode":
            self.get_logger().info(f"allocation_mode -> {value}")

    def configure(self) -> None:
        p = self.p
        rt = self.load_runtime(streams=False)
        node = p["sensor_node"]
        if node not in rt.streams.nodes:
            raise ValueError(f"{rt.model_path}: sensor_node {node!r} is not one of the model's nodes "
                             f"{list(rt.streams.nodes)}")
        rt.warmup(("embed",))
        self.sids = [stream_id(node, m) for m in rt.cfg.modalities]
        self.pub = self.lifecycle_publisher(StreamEmbeddings, topics.embeddings_topic(node), reliable_qos())
        self.pending: deque[_Frame] = deque()
        self.allocs: deque[_Alloc] = deque(maxlen=64)
        self.latest: _Alloc | None = None
        self.embed_ms = LatencyWindow()
        self.wait_ms = LatencyWindow()
        self.frames = 0
        self.get_logger().info(f"{node}: streams {self.sids}; {rt.describe()}; mode {p['allocation_mode']}")

    def activate(self) -> None:
        self.subscribe_streams(self.sids, self._on_frame, poll=self._on_poll)
        self.subscribe(LayerAllocation, topics.ALLOCATION, self._on_allocation, reliable_qos(20))

    def deactivate(self) -> None:
        self.pending.clear()

    def _on_allocation(self, msg: LayerAllocation) -> None:
        key = topics.ALLOCATION
        ns = self.check_stamp(key, msg.header.stamp)
        if ns is None:
            return
        try:
            a = allocation_to_mask(msg)
            if a.mask.shape[1] != self.runtime.depth:
                raise ValueError(f"depth {a.mask.shape[1]} != model depth {self.runtime.depth}")
            idx = {s: i for i, s in enumerate(a.stream_ids)}
            missing = [s for s in self.sids if s not in idx]
            if missing:
                raise ValueError(f"allocation has no row for {missing} (streams {a.stream_ids})")
        except ValueError as exc:
            self.reject(key, "bad_allocation", str(exc))
            return
        self.monitor.accept(key, ns, self.now_s())
        rows = [idx[s] for s in self.sids]
        al = _Alloc(ns, a.mask[rows], a.present[rows], a.estimated_noise[rows], a.controller,
                    float(msg.input_ms), float(msg.decision_ms))
        self.allocs.append(al)
        self.latest = al
        if self.p["allocation_mode"] == "per_frame":
            self._match_pending()

    def _on_poll(self) -> None:
        self.sync_poll(self._on_frame)
        if self.pending:
            self._match_pending()
            limit = time.monotonic() - float(self.p["allocation_wait"])
            while self.pending and self.pending[0].ready < limit:
                self.pending.popleft()
                self.monitor.drop("allocation_timeout")

    def _on_frame(self, fs) -> None:
        f = _Frame(fs.stamp_ns, fs.items, time.monotonic())
        pipelined = self.p["allocation_mode"] == "pipelined"
        a = self.latest if pipelined else self._find(f.stamp_ns)
        if a is not None:
            self._run(f, a)
        elif pipelined:
            self.monitor.drop("no_allocation_yet")
        else:
            self.pending.append(f)
            while len(self.pending) > int(self.p["max_pending"]):
                self.pending.popleft()
                self.monitor.drop("pending_overflow")

    def _find(self, stamp_ns: int) -> _Alloc | None:
        slop = int(float(self.p["slop"]) * 1e9)
        near = [a for a in self.allocs if abs(a.stamp_ns - stamp_ns) <= slop]
        return min(near, key=lambda a: abs(a.stamp_ns - stamp_ns), default=None)

    def _match_pending(self) -> None:
        slop = int(float(self.p["slop"]) * 1e9)
        newest = self.allocs[-1].stamp_ns if self.allocs else None
        keep: deque[_Frame] = deque()
        for f in self.pending:
            a = self._find(f.stamp_ns)
            if a is not None:
                self.wait_ms.add((time.monotonic() - f.ready) * 1e3)
                self._run(f, a)
            elif newest is not None and f.stamp_ns < newest - slop:
                # allocations come in stamp order: this frame's allocation will never come
                self.monitor.drop("allocation_skipped")
            else:
                keep.append(f)
        self.pending = keep

    def _run(self, f: _Frame, a: _Alloc) -> None:
        timings: dict[str, float] = {}
        rows = dict(zip(self.sids, a.mask))
        t_start = self.now_ns()
        t0 = time.perf_counter()
        try:
            embs = self.runtime.embed(self.sids, f.inputs, rows, timings)
        except (ValueError, KeyError) as exc:
            self.monitor.drop("embed_error")
            self.warn_throttled("embed_error", f"embedding failed: {exc}")
            return
        self.embed_ms.add((time.perf_counter() - t0) * 1e3)
        out = StreamEmbeddings(header=make_header(ns_to_stamp(f.stamp_ns)), allocation_controller=a.controller,
                               input_ms=a.input_ms, decision_ms=a.decision_ms)
        out.allocation_ms = (t_start - f.stamp_ns) * 1e-6 - a.input_ms - a.decision_ms
        depth = self.runtime.depth
        for sid in self.sids:
            e = StreamEmbedding(header=out.header, stream_id=sid, depth=depth)
            vec = embs.get(sid)
            if vec is None:
                e.active_blocks = [False] * depth
            else:
                e.active_blocks = rows[sid].tolist()
                e.embedding = array.array("f", np.ascontiguousarray(vec, np.float32).tobytes())
                e.backbone_ms = float(timings.get(sid, 0.0))
            out.embeddings.append(e)
        out.backbone_ms = (self.now_ns() - t_start) * 1e-6
        self.pub.publish(out)
        self.frames += 1

    def diagnostic_statuses(self):
        out = self.stream_statuses(self.sids, self.latest) + [self.input_status(topics.ALLOCATION, {})]
        values: dict[str, Any] = {"frames": self.frames, "mode": self.p["allocation_mode"],
                                  "pending": len(self.pending), "backend": self.runtime.engine_backend,
                                  **self.embed_ms.report("embed"), **self.wait_ms.report("allocation_wait")}
        msg = f"{values['frames']} frames ({values['mode']})"
        return out + [self.summary_status(msg, values)]


main = BackboneNode.main  # python -m admn_ros.ros.backbone_node --ros-args -p sensor_node:=node1 -p model_dir:=models


if __name__ == "__main__":
    sys.exit(main())
