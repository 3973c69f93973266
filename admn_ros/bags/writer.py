"""Write per-frame pipeline outputs to a new rosbag2 for RViz / Foxglove.

Topics (absolute names of :mod:`admn_ros.ros.topics`, frame ``map``, stamp = the input
frame's stamp, log time = that stamp):

==========================  ======================================  ==========================
topic                       type                                    content
==========================  ======================================  ==========================
``/admn/target``            geometry_msgs/PoseWithCovarianceStamped estimate + 2x2 covariance
``/admn/allocation``        admn_ros/LayerAllocation                mask, budget, est. noise
``/admn/markers``           visualization_msgs/MarkerArray          estimate, 2-sigma ellipse,
                                                                    ground truth, error line,
                                                                    per-stream allocation bars
``/ground_truth/target``    geometry_msgs/PointStamped              copied from the input bag
==========================  ======================================  ==========================

Usage::

    with OutputBagWriter("out_bag", stream_ids, controller="naive") as w:
        w.write(stamp_ns, mean, cov, mask=mask, est_noise=noise, gt_xy=gt)

Activity replays use :class:`ActivityOutputBagWriter` (one message set per window):
``/admn/activity`` (admn_ros/ActivityLabel, the activity node's message), ``/admn/allocation``,
``/admn/markers`` (a text marker: estimate, confidence, truth, blocks per stream) and
``/ground_truth/activity`` (copied).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags import msgs
from admn_ros.bags.record import _qos, dir_size, open_writer
from admn_ros.bags.typestore import get_admn_typestore
from admn_ros.ros import topics

#: Output topic -> message type.
OUTPUT_TOPICS: dict[str, str] = {
    "/" + topics.TARGET: "geometry_msgs/msg/PoseWithCovarianceStamped",
    "/" + topics.ALLOCATION: "admn_ros/msg/LayerAllocation",
    "/" + topics.MARKERS: "visualization_msgs/msg/MarkerArray",
    "/" + topics.GROUND_TRUTH: "geometry_msgs/msg/PointStamped",
}

#: Output topic -> message type of :class:`ActivityOutputBagWriter`.
ACTIVITY_OUTPUT_TOPICS: dict[str, str] = {
    "/" + topics.ACTIVITY: "admn_ros/msg/ActivityLabel",
    "/" + topics.ALLOCATION: "admn_ros/msg/LayerAllocation",
    "/" + topics.MARKERS: "visualization_msgs/msg/MarkerArray",
    "/" + topics.ACTIVITY_GROUND_TRUTH: "admn_ros/msg/ActivityLabel",
}

_EST_RGBA = (0.1, 0.5, 1.0, 0.95)
_GT_RGBA = (0.1, 0.9, 0.2, 0.95)


class _OutputBag:
    """A new output bag with fixed topics (reliable, depth 10): open, write, close/abort."""

    def __init__(self, path: str | Path, topic_types: dict[str, str], storage: str, controller: str) -> None:
        self.path = Path(path)
        self.controller = controller
        self.ts = get_admn_typestore()
        self.counts = {t: 0 for t in topic_types}
        self._w = open_writer(self.path, storage)
        self._w.set_custom_data("admn_ros.source", "replay outputs")
        if controller:
            self._w.set_custom_data("admn_ros.controller", controller)
        self._conns = {t: self._w.add_connection(t, typ, typestore=self.ts, offered_qos_profiles=[_qos(True, 10)])
                       for t, typ in topic_types.items()}
        self._closed = False

    def _put(self, topic: str, msg: Any, t_ns: int) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}({self.path}) is closed")
        self._w.write(self._conns[topic], t_ns, msgs.serialize(msg, self.ts))
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (writes ``metadata.yaml``)."""
        if not self._closed:
            self._closed = True
            self._w.close()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._w.abort()

    @property
    def size_bytes(self) -> int:
        return dir_size(self.path)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class OutputBagWriter(_OutputBag):
    """Writes pipeline outputs frame by frame (see the module docstring).

    Args:
        path: new bag directory (must not exist).
        stream_ids: row order of the allocation masks.
        storage: ``sqlite3`` or ``mcap``.
        frame_id: fixed frame of the outputs.
        controller: written into ``LayerAllocation.controller`` and the marker label
            (e.g. ``"baseline_track_centre"``).
        node_xy: sensor node positions in ``frame_id`` (for the allocation bars); ``None``
            = no bars.
        marker_lifetime_s: lifetime of the markers (0 = until replaced; they are replaced
            every frame anyway because ids are fixed).
    """

    def __init__(self, path: str | Path, stream_ids: Sequence[str], *, storage: str = "sqlite3",
                 frame_id: str = "map", controller: str = "", node_xy: dict[str, tuple[float, float]] | None = None,
                 marker_lifetime_s: float = 0.0) -> None:
        super().__init__(path, OUTPUT_TOPICS, storage, controller)
        self.stream_ids = list(stream_ids)
        self.frame_id = frame_id
        self.node_xy = node_xy
        self.lifetime_ns = int(marker_lifetime_s * 1e9)

    def write(self, stamp_ns: int, mean: Sequence[float], cov: np.ndarray, *, mask: np.ndarray | None = None,
              est_noise: Sequence[float] | np.ndarray | None = None, gt_xy: Sequence[float] | None = None,
              present: Sequence[bool] | np.ndarray | None = None, budget: int | None = None,
              decision_ms: float = 0.0, label: str = "") -> None:
        """Write one frame's outputs (all at ``stamp_ns``)."""
        t = int(stamp_ns)
        mean = np.asarray(mean, dtype=np.float64).reshape(2)
        cov = np.asarray(cov, dtype=np.float64).reshape(2, 2)
        hdr = msgs.header(t, self.frame_id)
        self._put("/" + topics.TARGET, msgs.pose_with_covariance_stamped(hdr, mean, cov), t)
        if mask is not None:
            self._put("/" + topics.ALLOCATION, msgs.layer_allocation(
                hdr, mask, self.stream_ids, budget=budget, present=present, estimated_noise=est_noise,
                controller=self.controller, decision_ms=decision_ms), t)
        if gt_xy is not None:
            self._put("/" + topics.GROUND_TRUTH, msgs.point_stamped(hdr, gt_xy[0], gt_xy[1]), t)
        self._put("/" + topics.MARKERS, self._markers(hdr, mean, cov, mask, est_noise, gt_xy, present, label), t)

    def _markers(self, hdr: Any, mean: np.ndarray, cov: np.ndarray, mask: np.ndarray | None,
                 est_noise: Any, gt_xy: Sequence[float] | None, present: Any, label: str) -> Any:
        from admn_ros.core.viz import allocation_bars, cov_ellipse

        M, lt = msgs.MARKER, self.lifetime_ns
        out = [msgs.marker(hdr, "estimate", 0, M["SPHERE"], position=(mean[0], mean[1], 0.05),
                           scale=(0.1, 0.1, 0.1), rgba=_EST_RGBA, lifetime_ns=lt)]
        if np.all(np.isfinite(cov)):
            ring = cov_ellipse(mean, cov, n_std=2.0, n=48)
            out.append(msgs.marker(hdr, "covariance_2sigma", 0, M["LINE_STRIP"], scale=(0.015, 0, 0),
                                   rgba=_EST_RGBA, points=[(x, y, 0.02) for x, y in ring], lifetime_ns=lt))
        text = label or self.controller
        if gt_xy is not None:
            g = np.asarray(gt_xy, dtype=np.float64).reshape(2)
            err = float(np.linalg.norm(mean - g))
            text = f"{text}  err {err * 100:.1f} cm".strip()
            out.append(msgs.marker(hdr, "ground_truth", 0, M["SPHERE"], position=(g[0], g[1], 0.05),
                                   scale=(0.08, 0.08, 0.08), rgba=_GT_RGBA, lifetime_ns=lt))
            out.append(msgs.marker(hdr, "error", 0, M["LINE_LIST"], scale=(0.01, 0, 0), rgba=(1, 1, 1, 0.8),
                                   points=[(mean[0], mean[1], 0.05), (g[0], g[1], 0.05)], lifetime_ns=lt))
        if text:
            out.append(msgs.marker(hdr, "label", 0, M["TEXT_VIEW_FACING"], position=(mean[0], mean[1], 0.35),
                                   scale=(0, 0, 0.12), rgba=(1, 1, 1, 1), text=text, lifetime_ns=lt))
        if mask is not None and self.node_xy:
            bars = allocation_bars(self.stream_ids, np.asarray(mask, bool), est_noise, self.node_xy,
                                   present=present)
            for i, b in enumerate(bars):
                h = 0.5 * max(b.blocks, 0.02) / max(b.depth, 1)
                out.append(msgs.marker(hdr, "allocation", i, M["CUBE"], position=(b.xy[0], b.xy[1], h / 2),
                                       scale=(0.08, 0.08, max(h, 0.01)), rgba=b.color, lifetime_ns=lt))
                out.append(msgs.marker(hdr, "allocation_label", i, M["TEXT_VIEW_FACING"],
                                       position=(b.xy[0], b.xy[1], h + 0.08), scale=(0, 0, 0.06),
                                       rgba=(1, 1, 1, 1), text=b.label, lifetime_ns=lt))
        return msgs.new_msg("visualization_msgs/msg/MarkerArray", markers=out)


class ActivityOutputBagWriter(_OutputBag):
    """Writes an activity replay's outputs window by window (see the module docstring).

    Args:
        path: new bag directory (must not exist).
        stream_ids: row order of the allocation masks.
        classes: class names in model index order.
        storage: ``sqlite3`` or ``mcap``.
        frame_id: frame of the label marker and the messages' headers.
        controller: written into ``LayerAllocation.controller`` and the marker text.
    """

    def __init__(self, path: str | Path, stream_ids: Sequence[str], classes: Sequence[str], *,
                 storage: str = "sqlite3", frame_id: str = "node1_color_optical_frame",
                 controller: str = "") -> None:
        super().__init__(path, ACTIVITY_OUTPUT_TOPICS, storage, controller)
        self.stream_ids = list(stream_ids)
        self.classes = [str(c) for c in classes]
        self.frame_id = frame_id

    def write(self, stamp_ns: int, probs: Sequence[float] | np.ndarray, *, window_frames: int,
              mask: np.ndarray, est_noise: Sequence[float] | np.ndarray | None = None,
              present: Sequence[bool] | np.ndarray | None = None, budget: int | None = None,
              decision_ms: float = 0.0, gt_label: str | None = None) -> None:
        """Write one window's outputs (all at ``stamp_ns``, the window's newest frame)."""
        t = int(stamp_ns)
        hdr = msgs.header(t, self.frame_id)
        label = msgs.activity_label(hdr, self.classes, probs, window_frames)
        self._put("/" + topics.ACTIVITY, label, t)
        self._put("/" + topics.ALLOCATION, msgs.layer_allocation(
            hdr, mask, self.stream_ids, budget=budget, present=present, estimated_noise=est_noise,
            controller=self.controller, decision_ms=decision_ms), t)
        if gt_label is not None:
            names = self.classes if gt_label in self.classes else self.classes + [gt_label]
            self._put("/" + topics.ACTIVITY_GROUND_TRUTH,
                      msgs.activity_label(hdr, names, [float(c == gt_label) for c in names], 1), t)
        blocks = np.asarray(mask, bool).sum(1)
        text = (f"{self.controller}: {label.class_name} ({label.confidence:.2f})"
                + (f"  truth {gt_label}" if gt_label is not None else "") + "\n"
                + "  ".join(f"{s} {int(b)}" for s, b in zip(self.stream_ids, blocks)))
        ok = gt_label is None or gt_label == label.class_name
        marker = msgs.marker(hdr, "activity", 0, msgs.MARKER["TEXT_VIEW_FACING"], position=(0.0, 0.0, 1.0),
                             scale=(0, 0, 0.12), rgba=(1, 1, 1, 1) if ok else (1.0, 0.35, 0.3, 1.0), text=text)
        self._put("/" + topics.MARKERS, msgs.new_msg("visualization_msgs/msg/MarkerArray", markers=[marker]), t)


__all__ = ["OUTPUT_TOPICS", "ACTIVITY_OUTPUT_TOPICS", "OutputBagWriter", "ActivityOutputBagWriter"]
