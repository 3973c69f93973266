"""The pluggable pipeline of ``admn-ros replay`` (:class:`FramePipeline`): synchronized frames in, estimates
out; :func:`make_pipeline` makes them by name."""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from admn_ros.core.flops import allocation_gflops
from admn_ros.core.runtime import Allocation, FrameWindow, Result, Runtime
from admn_ros.core.streams import DEPTH, POLICIES, budget_from_fraction, naive_allocation
from admn_ros.core.tasks import get_task

#: s: a frame stamped this much after the previous one starts a new window (the activity node's ``max_gap_s``)
MAX_GAP_S = 2.0


class FramePipeline(Protocol):
    """What ``admn-ros replay`` runs per frame. ``streams`` maps each stream id, in the topic mapping's order, to
    its array or ``None``; allocation rows follow that order. Optional members: ``task``, ``labels``,
    ``restarts``, ``note``, ``window`` (its :class:`~admn_ros.core.runtime.FrameWindow`)."""

    name: str

    def process(self, stamp_ns: int, streams: dict[str, np.ndarray | None]) -> Result | None:
        """Add the frame stamped ``stamp_ns``; the window's :class:`~admn_ros.core.runtime.Result`, or ``None``
        (no output yet)."""


class RuntimePipeline:
    """The node graph's computation on recorded frames (offline, fast), window by window, through
    the :class:`~admn_ros.core.runtime.Runtime` the nodes use. ``stream_ids`` must equal the model's;
    ``budget`` defaults to 25% of the window streams' blocks; ``policy``: ``admn``, ``naive`` (even
    split) or ``upper_bound`` (all blocks); a frame :data:`MAX_GAP_S` newer than the last restarts the window.
    """

    def __init__(self, stream_ids: Sequence[str], budget: int | None = None, *, policy: str = "admn",
                 model_dir: str | None = None, backend: str = "auto", task: str | None = None) -> None:
        self.rt = Runtime.load(model_dir or get_task(task).models_dir(), backend=backend, task=task)
        self.task, self.labels = self.rt.task, self.rt.labels
        if list(stream_ids) != list(self.rt.stream_ids):
            raise ValueError(f"bag mapping streams {list(stream_ids)} != {self.task.name} model streams "
                             f"{list(self.rt.stream_ids)}")
        self.policy = policy
        self.budget = int(budget) if budget is not None else budget_from_fraction(0.25, len(self.rt.stream_ids))
        self.name = f"{policy}_L{self.budget}" if policy != "upper_bound" else "upper_bound"
        self.window = FrameWindow(self.rt.frames, self.rt.stream_ids)
        self._last_ns: int | None = None
        self.restarts = 0
        # Build the engines now (auto times the backends, ONNX exports): set-up, not per-frame time.
        self.rt.warmup(("allocate", "embed", "fuse") if policy == "admn" else ("embed", "fuse"))

    def process(self, stamp_ns: int, streams: dict[str, np.ndarray | None]) -> Result | None:
        rt = self.rt
        if self._last_ns is not None and int(stamp_ns) - self._last_ns > MAX_GAP_S * 1e9:
            self.window.clear()
            self.restarts += 1
        self.window.push(int(stamp_ns), {sid: rt.preprocess(sid, a) for sid, a in streams.items() if a is not None})
        self._last_ns = int(stamp_ns)
        if not self.window.full or not self.window.newest_inputs():
            return None
        res = rt.infer(self.window, self.budget, self.policy)
        a = res.allocation
        res.extra["gflops"] = float(allocation_gflops(rt.cfg, a.mask, include_controller=self.policy == "admn",
                                                      present=a.present))
        return res


class TrackCentreBaseline:
    """BASELINE, not ADMN (tracking): predicts the simulated track's centre (0, 0) with
    identity covariance and allocates the paper's Naive Allocation minus the streams without data;
    for testing the replay plumbing and as a recording's "know nothing" error floor."""

    name = "baseline_track_centre"
    note = "BASELINE: constant track-centre prediction, not ADMN"
    task = get_task("tracking")

    def __init__(self, stream_ids: Sequence[str], budget: int | None = None) -> None:
        self.stream_ids = list(stream_ids)
        n = len(self.stream_ids)
        self.budget = budget_from_fraction(0.25, n) if budget is None else int(budget)
        self._mask = naive_allocation(n, self.budget, DEPTH)

    def process(self, stamp_ns: int, streams: dict[str, np.ndarray | None]) -> Result:
        present = np.array([streams.get(s) is not None for s in self.stream_ids], dtype=bool)
        a = Allocation(self._mask & present[:, None], present, np.full(len(present), np.nan, np.float32),
                       self.name, 0.0, self.budget)
        return Result(a, {"mean": np.zeros(2), "cov": np.eye(2)}, present[None], stamp_ns=int(stamp_ns))


def make_pipeline(name: str, stream_ids: Sequence[str], budget: int | None = None,
                  **options: Any) -> FramePipeline:
    """The pipeline ``name``: a policy of :data:`~admn_ros.core.streams.POLICIES` (``options`` go to
    :class:`RuntimePipeline`) or ``baseline`` (:class:`TrackCentreBaseline`, which ignores them)."""
    if name == "baseline":
        return TrackCentreBaseline(stream_ids, budget)
    if name not in POLICIES:
        raise ValueError(f"unknown pipeline {name!r}; known: {sorted([*POLICIES, 'baseline'])}")
    return RuntimePipeline(stream_ids, budget, policy=name, **options)
