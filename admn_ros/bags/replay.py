"""Replay a bag through a pipeline and score it against the bag's ground truth, for any task.

``out_dir`` gets the task's CSV (one row per output), ``outputs/`` (a rosbag2 for RViz / Foxglove) and
``summary.json``; a stream the health check leaves out is dropped from the pipeline's whole window, as in the
window node. The CLI is :mod:`admn_ros.bags.replay_cli`.
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags.pipeline import FramePipeline
from admn_ros.bags.reader import BagFrames, BagTopic
from admn_ros.bags.writer import OutputBagWriter
from admn_ros.core.health import HealthConfig, stream_status, unhealthy
from admn_ros.core.sim import load_sim_config
from admn_ros.core.tasks import TASKS, Task, get_task
from admn_ros.core.tasks.base import KeysAsAttributes, fmt


@dataclass
class ReplaySummary(KeysAsAttributes):
    """What one replay did; the task's metric fields (``mean_error_cm``, ``accuracy_pct``,
    ...) are in ``metrics`` and are also attributes."""

    bag: str
    pipeline: str
    mapping: str
    task: str = "tracking"
    note: str = ""
    window_frames: int = 1
    frames: int = 0
    frames_with_gt: int = 0
    frames_with_missing_streams: int = 0
    windows: int = 0
    window_restarts: int = 0
    mean_blocks: float = float("nan")
    pipeline_ms_mean: float = float("nan")
    wall_s: float = 0.0
    frames_per_s: float = 0.0
    bag_duration_s: float = 0.0
    sync_unmatched: int = 0          # messages dropped by the synchronizer (no partner within slop)
    sync_late: int = 0               # messages older than an already emitted frame
    lost: str = ""                   # a cut-off bag: the messages metadata.yaml lists that were not there
    metrics: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    _KEYS_OF = "metrics"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**{k: v for k, v in d.items() if k != "metrics"}, **d["metrics"]}

    def text(self) -> str:
        t = get_task(self.task)
        return "\n".join([
            f"replay     {self.bag}  (mapping {self.mapping})",
            f"pipeline   {self.pipeline}  ({self.note or t.name})",
            f"frames     {self.frames} ({self.frames_with_gt} with ground truth, "
            f"{self.frames_with_missing_streams} with missing streams), bag time {self.bag_duration_s:.2f} s",
            f"outputs    {self.windows} {t.unit}s of {self.window_frames} frame(s); "
            f"{self.window_restarts} window restart(s)",
            *t.scorer(self.window_frames).lines(self.metrics),
            f"blocks     {self.mean_blocks:.1f} active per {t.unit} (mean)",
            f"sync       {self.sync_unmatched} unmatched, {self.sync_late} late message(s) dropped"
            + ("  (a stream missing, or a larger slop in the topic mapping)" if self.sync_unmatched else ""),
            f"speed      {self.frames_per_s:.1f} frames/s end to end ({self.wall_s:.2f} s), "
            f"pipeline {self.pipeline_ms_mean:.2f} ms/frame",
            *[f"output     {k}: {v}" for k, v in self.outputs.items()],
            *([f"bag lost   {self.lost}"] if self.lost else []),
        ])


def other_tasks(t: Task, contents: Sequence[BagTopic]) -> list[Task]:
    """The tasks other than ``t`` whose ground-truth topic is among a bag's ``contents``."""
    names = {c.topic.strip("/") for c in contents}
    return [o for o in TASKS.values() if o is not t and o.truth.topic in names]


def task_frames(t: Task, bag: str | Path, mapping: Any = None, **options: Any) -> BagFrames:
    """``BagFrames(bag, mapping, **options)`` for task ``t`` (default mapping: the task's). A bag without the
    mapping's ground truth that holds another task's is refused, as one without the mapping's streams is."""
    frames = BagFrames(bag, mapping if mapping is not None else t.mapping, **options)
    m = frames.mapping
    if m.ground_truth and frames.ground_truth_kind is None and (others := other_tasks(t, frames.contents)):
        frames.close()
        raise frames.content_error([f"ground truth: topic {m.ground_truth!r} is not in the bag, which holds the "
                                    f"ground truth of another task ({', '.join(o.name for o in others)})"])
    return frames


def json_text(obj: Any) -> str:
    """``obj`` as strict JSON, which every parser reads: a NaN or infinite number (nothing to score) is null."""
    return json.dumps(json.loads(json.dumps(obj), parse_constant=lambda _: None), indent=2, allow_nan=False) + "\n"


def node_xy(stream_ids: Sequence[str]) -> dict[str, tuple[float, float]] | None:
    """Sensor node positions from the simulator config, if it knows all nodes of the mapping."""
    try:
        known = load_sim_config(None).node_xy()
        return known if {s.split("/")[0] for s in stream_ids} <= set(known) else None
    except Exception:  # noqa: BLE001 - bars are a nicety
        return None


def replay(bag: str | Path, pipeline: FramePipeline, out_dir: str | Path, *, task: Task | str | None = None,
           mapping: Any = None, storage: str = "sqlite3", progress: bool = False, write_bag: bool = True,
           health: HealthConfig | None = HealthConfig()) -> ReplaySummary:
    """Replay ``bag`` through ``pipeline`` (of ``task``, default: the pipeline's) with ``mapping``
    (default: the task's) and the stream health check ``health`` (``None``: off); write the CSV,
    output bag and summary into ``out_dir``. Raises :class:`~admn_ros.bags.reader.BagError`,
    ``FileExistsError`` (the output bag exists) or ``ValueError`` (a pipeline of another task)."""
    t = get_task(getattr(pipeline, "task", None) or task)
    if task is not None and get_task(task) is not t:
        raise ValueError(f"pipeline {pipeline.name!r} is a {t.name} pipeline, not {get_task(task).name}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, bag_out, json_path = out / t.csv_name, out / "outputs", out / "summary.json"
    if write_bag and bag_out.exists():
        raise FileExistsError(f"output bag {bag_out} exists already; choose another --out or remove it")
    t0 = time.perf_counter()
    frames = task_frames(t, bag, mapping, progress=progress, health=health)
    ids = frames.stream_ids
    window = getattr(pipeline, "window", None)
    n_frames = window.frames if window is not None else 1
    s = ReplaySummary(str(bag), pipeline.name, frames.mapping.source, t.name, getattr(pipeline, "note", ""), n_frames,
                      lost=frames.loss.text() if frames.loss is not None else "")
    scorer = t.scorer(n_frames)
    blocks: list[int] = []
    proc_ms: list[float] = []
    first_ns = last_ns = None
    with contextlib.ExitStack() as stack:
        stack.enter_context(frames)
        writer = stack.enter_context(OutputBagWriter(
            bag_out, ids, t, labels=getattr(pipeline, "labels", ()), storage=storage, controller=pipeline.name,
            node_xy=node_xy(ids) if t.frame_id == "map" else None)) if write_bag else None
        w = csv.writer(stack.enter_context(open(csv_path, "w", newline="")))
        w.writerow(["index", "stamp_ns", "stamp_s", *t.columns, "tokens_present", "active_blocks", "budget",
                    "n_present", "missing", "unhealthy",
                    *[f"{c}:{x}" for c in ("true_sigma", "est_sigma", "blocks") for x in ids],
                    "gflops", "computed", "pipeline_ms", "pipeline"])
        for f in frames:
            restarts = getattr(pipeline, "restarts", 0)
            if window is not None:
                window.forget(unhealthy(f.status))
            tp = time.perf_counter()
            res = pipeline.process(f.stamp_ns, f.streams)
            ms = (time.perf_counter() - tp) * 1e3
            proc_ms.append(ms)
            if getattr(pipeline, "restarts", 0) != restarts:
                scorer.restart()
            truth = t.bag_truth(f)
            scorer.frame(truth)
            first_ns, last_ns = (f.stamp_ns if first_ns is None else first_ns), f.stamp_ns
            missing = [x for x, p in zip(ids, f.present) if not p]
            s.frames += 1
            s.frames_with_gt += truth is not None
            s.frames_with_missing_streams += bool(missing)
            if res is None:
                continue
            a = res.allocation
            mask = np.asarray(a.mask, bool)
            if mask.ndim != 2 or mask.shape[0] != len(ids):
                raise ValueError(f"pipeline {pipeline.name}: allocation mask must have shape ({len(ids)}, "
                                 f"depth), got {mask.shape}")
            est = t.check_estimate(res.estimate)
            s.windows += 1
            blocks.append(int(mask.sum()))
            true = f.true_noise()
            noise = np.asarray(a.est_noise, np.float64).reshape(-1)
            tokens = res.present if res.present is not None else a.present
            sec, nsec = divmod(f.stamp_ns, 1_000_000_000)
            w.writerow([f.index, f.stamp_ns, f"{sec}.{nsec:09d}", *scorer.add(est, truth),
                        int(np.asarray(tokens).sum()), int(mask.sum()), a.budget, int(np.sum(a.present)),
                        ";".join(missing), ";".join(f"{x}={f.status[x]}" for x in unhealthy(f.status)),
                        *([fmt(x) for x in true] if true is not None else [""] * len(ids)),
                        *[fmt(x) for x in noise], *mask.sum(1).tolist(), fmt(res.extra.get("gflops")),
                        res.computed, f"{ms:.3f}", pipeline.name])
            if writer is not None:
                writer.write(f.stamp_ns, est, a, truth=truth, window_frames=n_frames,
                             status=stream_status(ids, a.present, f.status))
    s.window_restarts = int(getattr(pipeline, "restarts", 0))
    s.metrics = scorer.summary()
    s.wall_s = time.perf_counter() - t0
    s.sync_unmatched, s.sync_late = int(frames.stats.discarded), int(frames.stats.stale)
    s.mean_blocks = float(np.mean(blocks)) if blocks else math.nan
    s.pipeline_ms_mean = float(np.mean(proc_ms)) if proc_ms else math.nan
    s.frames_per_s = s.frames / s.wall_s if s.wall_s > 0 else 0.0
    s.bag_duration_s = last_ns * 1e-9 - first_ns * 1e-9 if first_ns is not None else 0.0
    s.outputs = {"csv": str(csv_path), "summary": str(json_path), **({"bag": str(bag_out)} if writer else {})}
    json_path.write_text(json_text(s.to_dict()))
    return s
