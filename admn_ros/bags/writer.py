"""Write a pipeline's outputs to a new rosbag2 for RViz / Foxglove: per output, the task's
estimate message, ``/admn/allocation``, ``/admn/markers`` and the truth copied from the input,
stamped (and logged) at the input frame's stamp, in the task's frame.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags import msgs
from admn_ros.bags.record import _qos, new_bag
from admn_ros.bags.typestore import get_admn_typestore
from admn_ros.core.streams import allocation_fields
from admn_ros.core.tasks import Task, get_task
from admn_ros.core.viz import allocation_bars, bar_markers, text_marker
from admn_ros.ros import topics


def output_topics(task: Task | str) -> dict[str, str]:
    """Output topic -> message type of a task's output bag."""
    task = get_task(task)
    return {"/" + task.output.topic: task.output.type, "/" + topics.ALLOCATION: "admn_ros/msg/LayerAllocation",
            "/" + topics.MARKERS: "visualization_msgs/msg/MarkerArray", "/" + task.truth.topic: task.truth.type}


class OutputBagWriter(contextlib.ExitStack):
    """Writes pipeline outputs one by one into the new bag ``path``; a context manager that finishes the bag, or
    after an error removes it (:func:`~admn_ros.bags.record.new_bag`). ``node_xy``: sensor node positions for
    per-stream allocation bars (``None``: a text marker with the blocks per stream)."""

    def __init__(self, path: str | Path, stream_ids: Sequence[str], task: Task | str, *,
                 labels: Sequence[str] = (), storage: str = "sqlite3", controller: str = "",
                 node_xy: dict[str, tuple[float, float]] | None = None) -> None:
        self.path, self.task, self.stream_ids = Path(path), get_task(task), list(stream_ids)
        self.labels = [str(c) for c in labels]
        self.controller, self.node_xy = controller, node_xy
        super().__init__()
        self._w = self.enter_context(new_bag(self.path, storage))
        try:
            self._w.set_custom_data("admn_ros.source", "replay outputs")
            if controller:
                self._w.set_custom_data("admn_ros.controller", controller)
            self._conns = {t: self._w.add_connection(t, typ, typestore=get_admn_typestore(),
                                                     offered_qos_profiles=[_qos(True, 10)])
                           for t, typ in output_topics(self.task).items()}
        except BaseException:  # no caller's `with` holds the half-made bag yet: remove it here
            self.__exit__(*sys.exc_info())
            raise

    def _put(self, topic: str, msg: Any, t_ns: int) -> None:
        self._w.write(self._conns[topic], t_ns, msgs.serialize(msg))

    def write(self, stamp_ns: int, est: dict[str, Any], a: Any, *, truth: Any, window_frames: int,
              status: Any) -> None:
        """Write one output (all at ``stamp_ns``): the estimate, the allocation ``a`` (a
        :class:`~admn_ros.core.runtime.Allocation`, with ``status`` as its ``stream_status``), the
        truth (if any), the markers."""
        t, task = int(stamp_ns), self.task
        hdr = msgs.header(t, task.frame_id)
        self._put("/" + task.output.topic,
                  task.fill_output(msgs.new_msg(task.output.type, header=hdr), est, window_frames), t)
        fields = allocation_fields(a.mask, self.stream_ids, budget=a.budget, present=a.present,
                                   estimated_noise=a.est_noise, controller=self.controller, decision_ms=a.ms,
                                   stream_status=status)
        self._put("/" + topics.ALLOCATION, msgs.new_msg("admn_ros/msg/LayerAllocation", header=hdr, **fields), t)
        if truth is not None:
            self._put("/" + task.truth.topic,
                      task.fill_truth(msgs.new_msg(task.truth.type, header=hdr), truth, self.labels), t)
        markers = [msgs.marker(hdr, s) for s in task.markers(est, truth, self.controller) + self._allocation_markers(a)]
        self._put("/" + topics.MARKERS, msgs.new_msg("visualization_msgs/msg/MarkerArray", markers=markers), t)

    def _allocation_markers(self, a: Any) -> list[Any]:
        """Per-stream bars at the nodes (as the map view draws them), else one text line."""
        mask = np.asarray(a.mask, bool)
        if not self.node_xy:
            text = "  ".join(f"{s} {int(b)}" for s, b in zip(self.stream_ids, mask.sum(1)))
            return [text_marker("allocation_text", 0, (0.0, 0.0, 0.8), 0.08, text)]
        return bar_markers(allocation_bars(self.stream_ids, mask, a.est_noise, self.node_xy, present=a.present),
                           self.node_xy, bar_height=0.5, bar_width=0.08)
