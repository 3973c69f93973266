"""ADMN fusion node: the synchronized ``admn/<node>/embeddings`` of every backbone node -> :meth:`Runtime.fuse`
-> the task's estimate with the sensor stamp (models of one frame per window; windowed ones run in
``activity_node``). Masking, covariance, rejections, latency hops: docs/DEPLOY.md."""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from admn_ros.core.streams import split_stream_id
from admn_ros.msg import StreamEmbeddings
from admn_ros.ros import topics
from admn_ros.ros.convert import make_header, message_class, ns_to_stamp
from admn_ros.ros.lifecycle import AdmnNode, model_specs, sync_specs
from admn_ros.ros.params import ParamSpec
from admn_ros.ros.qos import reliable_qos
from admn_ros.ros.telemetry import HopWindows, LatencyWindow


class FusionNode(AdmnNode):
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
        rt = self.load_runtime()
        if rt.frames != 1:
            raise ValueError(f"{rt.model_path}: a model of {rt.frames}-frame windows runs in activity_node, "
                             "not in the split graph")
        rt.warmup(("fuse",))
        self.nodes = list(rt.streams.nodes)
        self._out_cls = message_class(rt.task.output.type)
        self.pub = self.lifecycle_publisher(self._out_cls, rt.task.output.topic, reliable_qos())
        self.fuse_ms = LatencyWindow()
        self.e2e_ms = LatencyWindow()
        self.hops = HopWindows()
        self.frames = 0
        self.missing_frames = {n: 0 for n in self.nodes}
        self.get_logger().info(f"fusing {self.nodes}; {rt.describe()}")

    def activate(self) -> None:
        self.sync = self.make_sync(self.nodes)
        for n in self.nodes:
            self.subscribe_filter(StreamEmbeddings, topics.embeddings_topic(n),
                                  reliable_qos(20)).registerCallback(self._on_embeddings, n)
        self.timer(float(self.p["poll_period"]), lambda: self.sync_poll(self._process))

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
            v = np.frombuffer(e.embedding, np.float32)  # rosidl float32[] fields are array.array
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
        except (OverflowError, ValueError) as exc:
            self.reject(node, "non_finite" if isinstance(exc, OverflowError) else "bad_embedding", str(exc))
            return
        self.monitor.accept(node, ns, self.now_s())
        up = (msg.input_ms, msg.decision_ms, msg.allocation_ms, msg.backbone_ms)
        self.sync_offer(node, msg.header.stamp, (embs, up), self._process)

    def _process(self, fs) -> None:
        t_in = self.now_ns()
        embs: dict[str, np.ndarray | None] = {}
        for node, it in fs.items.items():
            if it is None:
                self.missing_frames[node] += 1
                continue
            embs.update(it[0])
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
        out = self._out_cls(header=make_header(ns_to_stamp(fs.stamp_ns), str(self.p["frame_id"])))
        self.pub.publish(self.runtime.task.fill_output(out, est, unknown_variance=float(self.p["unknown_variance"])))
        self.frames += 1
        t_out = self.now_ns()
        self.e2e_ms.add((t_out - fs.stamp_ns) * 1e-6)
        # the hops of the backbone node whose embeddings were ready last, then this node's
        crit = max(fs.stamps_ns, key=lambda n: fs.stamps_ns[n] * 1e-6 + sum(fs.items[n][1]))
        ms_in, ms_dec, ms_alloc, ms_bb = fs.items[crit][1]
        self.hops.add(sensor_to_controller=ms_in, controller=ms_dec, allocation_to_backbone=ms_alloc, backbone=ms_bb,
                      embeddings_to_fusion=(t_in - fs.stamps_ns[crit]) * 1e-6 - sum(fs.items[crit][1]),
                      fusion=(t_out - t_in) * 1e-6)

    def diagnostic_statuses(self):
        out = [self.input_status(n, {"frames_missing": self.missing_frames.get(n, 0)}) for n in self.nodes]
        values: dict[str, Any] = {"frames": self.frames, **self.fuse_ms.report("fuse"),
                                  **self.e2e_ms.report("e2e"), **self.hops.values()}
        msg = f"{values['frames']} estimates, e2e p50 {self.e2e_ms.summary()['p50']:.1f} ms"
        return out + [self.summary_status(msg, values)]


main = FusionNode.main  # python -m admn_ros.ros.fusion_node --ros-args -p model_dir:=models


if __name__ == "__main__":
    sys.exit(main())
