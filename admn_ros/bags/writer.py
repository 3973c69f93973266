"""Write a pipeline's outputs to a new rosbag2 for RViz / Foxglove, one message set per output.

Topics (absolute names, stamp = the input frame's stamp (a window's newest frame), log time =
that stamp, frame ``task.frame_id``), from the task (:mod:`admn_ros.core.tasks`):

============================  ===================================  ==================================
topic                         type                                 content
============================  ===================================  ==================================
``/`` + ``task.output.topic``  ``task.output.type``                 the estimate, as the graph
                                                                   publishes it
``/admn/allocation``          admn_ros/LayerAllocation             mask, budget, est. noise
``/admn/markers``             visualization_msgs/MarkerArray       the task's markers (estimate,
                                                                   truth), per-stream blocks
``/`` + ``task.truth.topic``   ``task.truth.type``                  the truth, copied from the input
============================  ===================================  ==================================

Usage::

    with OutputBagWriter("out_bag", stream_ids, get_task("tracking"), controller="naive") as w:
        w.write(stamp_ns, estimate, allocation, truth=gt)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags import msgs
from admn_ros.bags.record import _qos, dir_size, open_writer
from admn_ros.bags.typestore import get_admn_typestore
from admn_ros.core.tasks import Task, get_task
from admn_ros.ros import topics


def output_topics(task: Task | str) -> dict[str, str]:
    """Output topic -> message type of a task's output bag."""
    task = get_task(task)
    return {"/" + task.output.topic: task.output.type, "/" + topics.ALLOCATION: "admn_ros/msg/LayerAllocation",
            "/" + topics.MARKERS: "visualization_msgs/msg/MarkerArray", "/" + task.truth.topic: task.truth.type}


class OutputBagWriter:
    """Writes pipeline outputs one by one (see the module docstring).

    Args:
        path: new bag directory (must not exist).
        stream_ids: row order of the allocation masks.
        task: the task of the estimates.
        labels: the model's output names (the truth messages' class list).
        storage: ``sqlite3`` or ``mcap``.
        frame_id: frame of every message (default: the task's).
        controller: written into ``LayerAllocation.controller`` and the marker label.
        node_xy: sensor node positions in ``frame_id`` for per-stream allocation bars
            (``None`` = a text marker with the blocks per stream).
    """

    def __init__(self, path: str | Path, stream_ids: Sequence[str], task: Task | str, *,
                 labels: Sequence[str] = (), storage: str = "sqlite3", frame_id: str | None = None,
                 controller: str = "", node_xy: dict[str, tuple[float, float]] | None = None) -> None:
        self.path = Path(path)
        self.task = get_task(task)
        self.stream_ids = list(stream_ids)
        self.labels = [str(c) for c in labels]
        self.frame_id = self.task.frame_id if frame_id is None else frame_id
        self.controller = controller
        self.node_xy = node_xy
        self.ts = get_admn_typestore()
        types = output_topics(self.task)
        self.counts = {t: 0 for t in types}
        self._w = open_writer(self.path, storage)
        self._w.set_custom_data("admn_ros.source", "replay outputs")
        if controller:
            self._w.set_custom_data("admn_ros.controller", controller)
        self._conns = {t: self._w.add_connection(t, typ, typestore=self.ts, offered_qos_profiles=[_qos(True, 10)])
                       for t, typ in types.items()}
        self._closed = False

    def _put(self, topic: str, msg: Any, t_ns: int) -> None:
        if self._closed:
            raise RuntimeError(f"OutputBagWriter({self.path}) is closed")
        self._w.write(self._conns[topic], t_ns, msgs.serialize(msg, self.ts))
        self.counts[topic] += 1

    def write(self, stamp_ns: int, est: dict[str, Any], allocation: Any = None, *, truth: Any = None,
              window_frames: int = 1) -> None:
        """Write one output (all at ``stamp_ns``): the estimate, the allocation (a
        :class:`~admn_ros.core.runtime.Allocation`, if any), the truth (if any), the markers."""
        t, task = int(stamp_ns), self.task
        hdr = msgs.header(t, self.frame_id)
        self._put("/" + task.output.topic,
                  task.fill_output(msgs.new_msg(task.output.type, header=hdr), est, window_frames), t)
        if allocation is not None:
            a = allocation
            self._put("/" + topics.ALLOCATION, msgs.layer_allocation(
                hdr, a.mask, self.stream_ids, budget=a.budget, present=a.present, estimated_noise=a.est_noise,
                controller=self.controller, decision_ms=a.ms), t)
        if truth is not None:
            self._put("/" + task.truth.topic,
                      task.fill_truth(msgs.new_msg(task.truth.type, header=hdr), truth, self.labels), t)
        specs = task.markers(est, truth, self.controller)
        if allocation is not None:
            specs += self._allocation_markers(allocation)
        markers = [msgs.marker(hdr, s.ns, s.id, msgs.MARKER[s.kind], position=s.position, scale=s.scale,
                               rgba=s.rgba, points=s.points, text=s.text) for s in specs]
        self._put("/" + topics.MARKERS, msgs.new_msg("visualization_msgs/msg/MarkerArray", markers=markers), t)

    def _allocation_markers(self, a: Any) -> list[Any]:
        """Per-stream bars at the nodes (as the map view draws them), else one text line."""
        from admn_ros.core.viz import allocation_bars, bar_markers, text_marker

        mask = np.asarray(a.mask, bool)
        if not self.node_xy:
            text = "  ".join(f"{s} {int(b)}" for s, b in zip(self.stream_ids, mask.sum(1)))
            return [text_marker("allocation_text", 0, (0.0, 0.0, 0.8), 0.08, text)]
        return bar_markers(allocation_bars(self.stream_ids, mask, a.est_noise, self.node_xy, present=a.present),
                           self.node_xy, bar_height=0.5, bar_width=0.08)

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

    def __enter__(self) -> "OutputBagWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


__all__ = ["output_topics", "OutputBagWriter"]
