"""ADMN fusion node: every backbone node's embeddings -> the task's estimate.

Subscribes (reliable, ``message_filters`` ``Subscriber`` s) to ``admn/<node>/embeddings`` of
every sensor node, synchronizes them with ``message_filters`` ApproximateTimeSynchronizer
semantics plus stream timeouts (:mod:`admn_ros.ros.msg_filters`; a backbone node silent for
``timeout`` s is missing: its streams are masked in the fusion and frames go on; a frame older
than one already fused is dropped as ``stale_set``), runs :meth:`Runtime.fuse` and publishes
the model's task output (:attr:`Task.output <admn_ros.core.tasks.base.Task.output>`, filled by
the task) with the frame's (sensor) stamp in ``frame_id``. Tracking:
``geometry_msgs/PoseWithCovarianceStamped`` on ``admn/target``, position ``(x, y, 0)``,
orientation identity; covariance (6x6, row-major, ``x y z roll pitch yaw``): the 2x2 ``x, y``
block is the head's, ``z`` and the three rotations get ``unknown_variance`` (1e6 m^2 / rad^2 by
default: "not estimated", as REP-145 style consumers expect a large value rather than 0), every
other cross term 0. The model must see one frame per window (windowed models run in
``activity_node``).

Malformed embeddings (unknown stream, a stream of another node, wrong size, NaN/inf,
zero or future stamps) are rejected, counted on ``/diagnostics`` and logged
throttled. ``/diagnostics`` also carries the end-to-end latency (now - sensor stamp).
"""
from __future__ import annotations

import sys
import time
from array import array as array_type  # rosidl float32[] fields are array.array
from typing import Any

import numpy as np

from admn_ros.core.runtime import Runtime
from admn_ros.core.streams import StreamSet, split_stream_id
from admn_ros.msg import StreamEmbeddings
from admn_ros.ros import topics
from admn_ros.ros.convert import make_header, message_class
from admn_ros.ros.diagnostics import input_status, latency_values, summary_status
from admn_ros.ros.lifecycle import AdmnNode, model_specs, resolve_model_dir, run_node, sync_specs
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.telemetry import LatencyWindow


class FusionNode(AdmnNode):
    """See the module docstring."""

    NODE_NAME = "fusion_node"
    SUMMARY = "fusion"

    def param_specs(self) -> list[ParamSpec]:
        return [
            *model_specs(),
            ParamSpec("frame_id", "map", "frame_id of the published estimate"),
            ParamSpec("unknown_variance", 1.0e6, "Variance published for z and the rotations (not estimated)",
                      min=0.0, max=1.0e12),
            *sync_specs(),
        ]

    def configure(self) -> None:
        p = self.p
        self.runtime = None
        rt = Runtime.load(resolve_model_dir(p), p["backend"], p["device"], threads=p["threads"],
                                  streams=StreamSet(tuple(p["sensor_nodes"])))
        self.runtime = rt
        if rt.frames != 1:
            raise ValueError(f"{rt.model_path}: a model of {rt.frames}-frame windows runs in activity_node, "
                             "not in the split graph")
        rt.warmup(("fuse",))
        self.nodes = list(rt.streams.nodes)
        self.sync = None
        self._out_cls = message_class(rt.task.output.type)
        self.pub = self.lifecycle_publisher(self._out_cls, rt.task.output.topic, reliable_qos())
        self.fuse_ms = LatencyWindow()
        self.e2e_ms = LatencyWindow()
        self.frames = 0
        self.missing_frames = {n: 0 for n in self.nodes}
        self.get_logger().info(f"fusing {self.nodes}; {rt.describe()}")

    def activate(self) -> None:
        self.sync = self.make_sync(self.nodes)
        for n in self.nodes:
            self.subscribe_filter(StreamEmbeddings, topics.embeddings_topic(n),
                                  reliable_qos(20)).registerCallback(self._on_embeddings, n)
        self.timer(float(self.p["poll_period"]), self._on_poll)

    def cleanup(self) -> None:
        self.runtime = None
        self.sync = None

    # ------------------------------------------------------------------ inputs
    def _parse(self, node: str, msg: StreamEmbeddings) -> dict[str, np.ndarray | None]:
        """``sid -> vector`` (None = stream skipped); raises ValueError naming the problem."""
        rt = self.runtime
        out: dict[str, np.ndarray | None] = {}
        for e in msg.embeddings:
            sid = str(e.stream_id)
            try:
                n, _ = split_stream_id(sid)
                rt.index(sid)
            except (ValueError, KeyError) as exc:
                raise ValueError(f"unknown stream {sid!r}: {exc}") from None
            if n != node:
                raise ValueError(f"stream {sid!r} does not belong to {node}")
            if sid in out:
                raise ValueError(f"stream {sid!r} twice in one message")
            k = len(e.embedding)
            if k == 0:
                out[sid] = None
                continue
            if k != rt.embed_dim:
                raise ValueError(f"{sid}: embedding has {k} values, model dim is {rt.embed_dim}")
            v = np.frombuffer(e.embedding, np.float32) if isinstance(e.embedding, array_type) \
                else np.asarray(e.embedding, np.float32)
            if not np.isfinite(v).all():
                raise OverflowError(f"{sid}: embedding contains NaN/inf")
            out[sid] = v.copy()
        return out

    def _on_embeddings(self, msg: StreamEmbeddings, node: str) -> None:
        ns = self.check_stamp(node, msg.header.stamp, order=False)
        if ns is None:
            return
        try:
            embs = self._parse(node, msg)
        except OverflowError as exc:
            self.reject(node, "non_finite", str(exc))
            return
        except ValueError as exc:
            self.reject(node, "bad_embedding", str(exc))
            return
        self.monitor.accept(node, ns, self.now_s())
        self.sync_offer(node, (embs, msg.header.stamp, ns), self._process)

    def _on_poll(self) -> None:
        self.sync_poll(self._process)

    def _process(self, fs) -> None:
        embs: dict[str, np.ndarray | None] = {}
        for node, it in fs.items.items():
            if it is None:
                self.missing_frames[node] += 1
                continue
            embs.update(it[0])
        newest = max((it for it in fs.items.values() if it is not None), key=lambda it: it[2])
        if not any(v is not None for v in embs.values()):
            self.monitor.drop("nothing_present")
            return
        try:
            t0 = time.perf_counter()
            est = self.runtime.fuse(embs)
            self.fuse_ms.add((time.perf_counter() - t0) * 1e3)
        except ValueError as exc:
            self.monitor.drop("fuse_error")
            self.warn_throttled("fuse_error", f"fusion failed: {exc}")
            return
        out = self._out_cls()
        out.header = make_header(newest[1], str(self.p["frame_id"]))
        self.pub.publish(self.runtime.task.fill_output(out, est, unknown_variance=float(self.p["unknown_variance"])))
        self.frames += 1
        self.e2e_ms.add((self.now_ns() - newest[2]) * 1e-6)

    # ------------------------------------------------------------------ diagnostics
    def diagnostic_statuses(self):
        name = self.get_fully_qualified_name()
        now_s, now_ns = self.now_s(), self.now_ns()
        out = []
        for n in getattr(self, "nodes", []):
            out.append(input_status(name, n, self.monitor, now_s, now_ns, self.p["stale_s"],
                                    {"frames_missing": self.missing_frames.get(n, 0)},
                                    self._prev_rejected.get(n, 0)))
        values: dict[str, Any] = {"frames": getattr(self, "frames", 0)}
        if hasattr(self, "fuse_ms"):
            values.update(latency_values("fuse", self.fuse_ms))
            values.update(latency_values("e2e", self.e2e_ms))
        values.update(self.sync_diagnostics())
        e2e = self.e2e_ms.summary()["p50"] if hasattr(self, "e2e_ms") else float("nan")
        msg = f"{values['frames']} estimates, e2e p50 {e2e:.1f} ms"
        out.append(summary_status(name, self.SUMMARY, msg, values, self.monitor.dropped, self._prev_dropped,
                                  self.configure_error))
        return out



def main(args: list[str] | None = None) -> int:
    """``python -m admn_ros.ros.fusion_node --ros-args -p model_dir:=models``."""
    return run_node(FusionNode, args)


if __name__ == "__main__":
    sys.exit(main())
