"""``admn-ros replay --task activity``: run a bag through the activity model window by window
and score the labels against the bag's ``/ground_truth/activity``.

The offline counterpart of ``activity_node``: the bag's synchronized frames
(:class:`admn_ros.bags.reader.BagFrames`, mapping ``activity`` by default) go into a
:class:`~admn_ros.core.activity_runtime.FrameWindow` of the model's ``F`` frames; once the
window is full, every frame gives one label from
:meth:`~admn_ros.core.activity_runtime.ActivityRuntime.classify` (the same call the node
makes: one allocation per window and stream, cached embeddings). A gap longer than
``max_gap_s`` restarts the window, as in the node. Missing streams stay missing (masked
tokens, 0 blocks).

A window is scored against the true activity at its newest frame (what the node does);
*pure* windows, whose ``F`` frames all carry the same true activity, are also scored on
their own (a window that straddles a change of activity has no single right answer).

Writes, into ``--out``:

* ``windows.csv``: one row per window (stamp, true and estimated label, confidence,
  correct, pure, blocks and estimated / true noise per stream, GFLOPs, backbone passes,
  pipeline time),
* ``outputs/``: a rosbag2 with ``/admn/activity``, ``/admn/allocation``, ``/admn/markers``
  and ``/ground_truth/activity`` (:class:`admn_ros.bags.writer.ActivityOutputBagWriter`),
* ``summary.json``: the accuracy summary (also printed).

Examples::

    admn-ros record --scenario activity --frames 400 --out /tmp/act_bag
    admn-ros replay /tmp/act_bag --task activity --out /tmp/act_replay
    admn-ros replay /tmp/act_bag --task activity --budgets 9,12,18,24 --out /tmp/act_report
"""
from __future__ import annotations

import csv
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.core.streams import POLICIES, budget_from_fraction

#: Default topic mapping of activity replays (config/bag_topics_activity.yaml).
ACTIVITY_MAPPING = "activity"


class ActivityPipeline:
    """The activity node's per-frame logic on recorded frames (offline, fast).

    Args:
        stream_ids: stream order of the bag's frames; must equal the model's.
        budget: layer budget ``L`` of one window (default 25 % of the window's blocks).
        policy: ``"admn"`` (the controllers), ``"naive"`` or ``"upper_bound"``.
        model_dir: activity model directory (default: the package's ``models/activity``).
        backend: inference backend.
        max_gap_s: a frame this much newer than the previous one restarts the window.
    """

    def __init__(self, stream_ids: Sequence[str], budget: int | None = None, *, policy: str = "admn",
                 model_dir: str | None = None, backend: str = "auto", max_gap_s: float = 2.0) -> None:
        from admn_ros.core.activity_runtime import ActivityRuntime, FrameWindow
        from admn_ros.core.paths import activity_models_dir

        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; known: {list(POLICIES)}")
        self.rt = ActivityRuntime.load(model_dir or activity_models_dir(), backend=backend)
        if list(stream_ids) != list(self.rt.stream_ids):
            raise ValueError(f"bag mapping streams {list(stream_ids)} != activity model streams "
                             f"{list(self.rt.stream_ids)}")
        n = len(self.rt.stream_ids)
        self.policy = policy
        self.budget = int(budget) if budget is not None else budget_from_fraction(0.25, n)
        self.name = f"{policy}_L{self.budget}" if policy != "upper_bound" else "upper_bound"
        self.max_gap_ns = int(float(max_gap_s) * 1e9)
        self.window = FrameWindow(self.rt.frames, self.rt.stream_ids)
        self._last_ns: int | None = None
        self.restarts = 0
        self.rt.warmup()

    @property
    def classes(self) -> list[str]:
        return self.rt.classes

    def process(self, stamp_ns: int, streams: dict[str, np.ndarray | None]) -> Any:
        """Add one frame; return the window's :class:`~admn_ros.core.activity_runtime.ActivityResult`
        once the window is full, else ``None``."""
        rt = self.rt
        if self._last_ns is not None and int(stamp_ns) - self._last_ns > self.max_gap_ns:
            self.window.clear()
            self.restarts += 1
        self.window.push(int(stamp_ns), {sid: rt.preprocess(sid, a) for sid, a in streams.items()
                                         if a is not None})
        self._last_ns = int(stamp_ns)
        if not self.window.full:
            return None
        return rt.classify(self.window, self.budget, self.policy)


@dataclass
class ActivityReplaySummary:
    """Accuracy summary of one activity replay (accuracies in %)."""

    bag: str
    pipeline: str
    mapping: str
    frames: int = 0
    windows: int = 0
    windows_with_gt: int = 0
    pure_windows: int = 0
    frames_with_missing_streams: int = 0
    window_restarts: int = 0
    accuracy_pct: float = float("nan")
    pure_accuracy_pct: float = float("nan")
    mean_confidence: float = float("nan")
    per_class_accuracy_pct: dict[str, float] = field(default_factory=dict)
    mean_blocks: float = float("nan")
    pipeline_ms_mean: float = float("nan")
    wall_s: float = 0.0
    frames_per_s: float = 0.0
    bag_duration_s: float = 0.0
    sync_unmatched: int = 0
    sync_late: int = 0
    outputs: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        per_class = ", ".join(f"{k} {v:.0f}" for k, v in self.per_class_accuracy_pct.items())
        return "\n".join([
            f"replay     {self.bag}  (mapping {self.mapping})",
            f"pipeline   {self.pipeline}  (activity)",
            f"frames     {self.frames} ({self.frames_with_missing_streams} with missing streams), "
            f"bag time {self.bag_duration_s:.2f} s; {self.window_restarts} window restart(s)",
            f"windows    {self.windows} ({self.windows_with_gt} with ground truth, {self.pure_windows} inside "
            f"one activity)",
            (f"accuracy   {self.accuracy_pct:.1f}% | inside one activity {self.pure_accuracy_pct:.1f}% | "
             f"mean confidence {self.mean_confidence:.2f}" if self.windows_with_gt else
             f"accuracy   n/a: no ground-truth label matched a window (topic of the mapping's ground_truth "
             f"absent?); mean confidence {self.mean_confidence:.2f}"),
            f"per class  {per_class or '-'}",
            f"blocks     {self.mean_blocks:.1f} active per window (mean)",
            f"sync       {self.sync_unmatched} unmatched, {self.sync_late} late message(s) dropped",
            f"speed      {self.frames_per_s:.1f} frames/s end to end ({self.wall_s:.2f} s), "
            f"pipeline {self.pipeline_ms_mean:.2f} ms/frame",
            *[f"output     {k}: {v}" for k, v in self.outputs.items()],
        ])


def _fmt(x: float | None) -> str:
    return "" if x is None or not math.isfinite(float(x)) else f"{float(x):.6g}"


def replay_activity(bag: str | Path, pipeline: ActivityPipeline, out_dir: str | Path, *,
                    mapping: Any = ACTIVITY_MAPPING, storage: str = "sqlite3", max_frames: int | None = None,
                    slop: float | None = None, progress: bool = False,
                    write_bag: bool = True) -> ActivityReplaySummary:
    """Replay ``bag`` through ``pipeline``; write CSV, output bag and summary into ``out_dir``.

    Raises :class:`admn_ros.bags.reader.BagError` (with the bag's contents) on bad bags.
    """
    from admn_ros.bags.reader import BagFrames
    from admn_ros.bags.replay import finish_summary, prepare_run
    from admn_ros.bags.writer import ActivityOutputBagWriter
    from admn_ros.core.flops import allocation_gflops

    csv_path, bag_out, json_path = prepare_run(out_dir, "windows.csv", write_bag)
    t0 = time.perf_counter()
    frames = BagFrames(bag, mapping, slop=slop, progress=progress, max_frames=max_frames)
    ids = frames.stream_ids
    rt = pipeline.rt
    summary = ActivityReplaySummary(str(bag), pipeline.name, frames.mapping.source)
    truths: deque[str | None] = deque(maxlen=rt.frames)
    correct: list[bool] = []
    pure: list[bool] = []
    conf: list[float] = []
    per_class: dict[str, list[bool]] = {}
    blocks: list[int] = []
    proc_ms: list[float] = []
    first = last = None
    writer = (ActivityOutputBagWriter(bag_out, ids, rt.classes, storage=storage, controller=pipeline.name)
              if write_bag else None)
    ok = False
    try:
        with frames, open(csv_path, "w", newline="") as fcsv:
            w = csv.writer(fcsv)
            w.writerow(["index", "stamp_ns", "stamp_s", "gt_label", "est_label", "confidence", "correct", "pure",
                        "tokens_present", "active_blocks", "budget", "n_present", "missing",
                        *[f"true_sigma:{s}" for s in ids], *[f"est_sigma:{s}" for s in ids],
                        *[f"blocks:{s}" for s in ids], "gflops", "computed", "pipeline_ms", "pipeline"])
            for f in frames:
                restarts = pipeline.restarts
                tp = time.perf_counter()
                res = pipeline.process(f.stamp_ns, f.streams)
                ms = (time.perf_counter() - tp) * 1e3
                proc_ms.append(ms)
                if pipeline.restarts != restarts:
                    truths.clear()
                truths.append(f.gt_label)
                first = f.stamp if first is None else first
                last = f.stamp
                summary.frames += 1
                missing = [s for s, p in zip(ids, f.present) if not p]
                summary.frames_with_missing_streams += bool(missing)
                if res is None:
                    continue
                summary.windows += 1
                a = res.allocation
                nb = int(a.mask.sum())
                blocks.append(nb)
                is_pure = f.gt_label is not None and len(truths) == rt.frames and len(set(truths)) == 1
                hit: bool | None = None
                if f.gt_label is not None:
                    hit = res.class_name == f.gt_label
                    correct.append(hit)
                    per_class.setdefault(f.gt_label, []).append(hit)
                    if is_pure:
                        pure.append(hit)
                conf.append(res.confidence)
                true = f.true_noise()
                gflops = float(allocation_gflops(rt.cfg, a.mask, include_controller=pipeline.policy == "admn",
                                                 present=a.present))
                w.writerow([f.index, f.stamp_ns, f"{f.stamp_ns // 1_000_000_000}.{f.stamp_ns % 1_000_000_000:09d}",
                            f.gt_label or "", res.class_name, f"{res.confidence:.4f}",
                            "" if hit is None else int(hit), int(is_pure), int(res.present.sum()), nb, a.budget,
                            int(a.present.sum()), ";".join(missing),
                            *[_fmt(x) for x in (true if true is not None else [math.nan] * len(ids))],
                            *[_fmt(x) for x in a.est_noise], *a.mask.sum(1).tolist(),
                            _fmt(gflops), res.computed, f"{ms:.3f}", pipeline.name])
                if writer is not None:
                    writer.write(f.stamp_ns, res.probs, window_frames=len(pipeline.window), mask=a.mask,
                                 est_noise=a.est_noise, present=a.present, budget=a.budget, decision_ms=a.ms,
                                 gt_label=f.gt_label)
        ok = True
    finally:
        if writer is not None:
            writer.close() if ok else writer.abort()
    summary.window_restarts = pipeline.restarts
    summary.windows_with_gt, summary.pure_windows = len(correct), len(pure)
    if correct:
        summary.accuracy_pct = 100.0 * float(np.mean(correct))
    if pure:
        summary.pure_accuracy_pct = 100.0 * float(np.mean(pure))
    if conf:
        summary.mean_confidence = float(np.mean(conf))
    summary.per_class_accuracy_pct = {k: 100.0 * float(np.mean(v)) for k, v in sorted(per_class.items())}
    finish_summary(summary, t0=t0, frames=frames, blocks=blocks, proc_ms=proc_ms, first=first, last=last,
                   csv_path=csv_path, json_path=json_path, bag_out=bag_out if writer is not None else None)
    return summary


__all__ = ["ACTIVITY_MAPPING", "ActivityPipeline", "ActivityReplaySummary", "replay_activity"]
