"""``admn-ros replay``: run a bag through a per-frame pipeline and score it against ground truth.

Reads the bag with :class:`admn_ros.bags.reader.BagFrames` (topic mapping ``--mapping``),
calls a :class:`admn_ros.bags.pipeline.FramePipeline` on every synchronized frame and
writes, into ``--out``:

* ``frames.csv``: one row per frame (stamp, ground truth, estimate, error, covariance,
  active blocks, missing streams, true and estimated noise per stream, pipeline time),
* ``outputs/``: a rosbag2 with ``/admn/target``, ``/admn/allocation``, ``/admn/markers``
  and ``/ground_truth/target`` for RViz / Foxglove (:mod:`admn_ros.bags.writer`),
* ``summary.json``: the error-vs-ground-truth summary (also printed).

The default pipeline is ``baseline``: :class:`~admn_ros.bags.pipeline.TrackCentreBaseline`,
a constant track-centre prediction with Naive Allocation, clearly labelled as a baseline
in every output. ``--pipeline package.module:factory`` plugs in another one.

Examples::

    admn-ros replay /tmp/sim_bag --out /tmp/replay_sim
    admn-ros replay rig.mcap --mapping realsense_zed --budget 27 --out /tmp/replay_rig
    admn-ros replay /tmp/activity_bag --task activity --out /tmp/replay_activity

``--task activity`` replays a bag of the activity scenario through the activity model, a
label per sliding window (:mod:`admn_ros.bags.activity_replay`, mapping ``activity``).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags.pipeline import FramePipeline, FrameResult, TrackCentreBaseline, make_pipeline
from admn_ros.bags.reader import BagError, BagFrames
from admn_ros.core.streams import POLICIES

__all__ = ["FramePipeline", "FrameResult", "TrackCentreBaseline", "ReplaySummary", "replay", "main"]


@dataclass
class ReplaySummary:
    """Error-vs-ground-truth summary of one replay (errors in cm)."""

    bag: str
    pipeline: str
    mapping: str
    frames: int = 0
    frames_with_gt: int = 0
    frames_with_missing_streams: int = 0
    mean_error_cm: float = float("nan")
    median_error_cm: float = float("nan")
    p90_error_cm: float = float("nan")
    rmse_cm: float = float("nan")
    mean_blocks: float = float("nan")
    pipeline_ms_mean: float = float("nan")
    wall_s: float = 0.0
    frames_per_s: float = 0.0
    bag_duration_s: float = 0.0
    sync_unmatched: int = 0          # messages dropped by the synchronizer (no partner within slop)
    sync_late: int = 0               # messages older than an already emitted frame
    outputs: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        base = "  (BASELINE: constant track-centre prediction, not ADMN)" if self.pipeline.startswith("baseline") else ""
        return "\n".join([
            f"replay     {self.bag}  (mapping {self.mapping})",
            f"pipeline   {self.pipeline}{base}",
            f"frames     {self.frames} ({self.frames_with_gt} with ground truth, "
            f"{self.frames_with_missing_streams} with missing streams), bag time {self.bag_duration_s:.2f} s",
            f"error      mean {self.mean_error_cm:.1f} cm | median {self.median_error_cm:.1f} | "
            f"p90 {self.p90_error_cm:.1f} | rmse {self.rmse_cm:.1f}",
            f"blocks     {self.mean_blocks:.1f} active per frame (mean)",
            f"sync       {self.sync_unmatched} unmatched, {self.sync_late} late message(s) dropped"
            + ("  (consider a larger --slop)" if self.sync_unmatched else ""),
            f"speed      {self.frames_per_s:.1f} frames/s end to end ({self.wall_s:.2f} s), "
            f"pipeline {self.pipeline_ms_mean:.2f} ms/frame",
            *[f"output     {k}: {v}" for k, v in self.outputs.items()],
        ])


def _fmt(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.6g}"


def _node_xy(stream_ids: Sequence[str]) -> dict[str, tuple[float, float]] | None:
    """Sensor node positions from the simulator config, if it knows all nodes of the mapping."""
    try:
        from admn_ros.core.sim import load_sim_config

        cfg = load_sim_config(None)
        nodes = {s.split("/")[0] for s in stream_ids}
        known = {n.name: (float(n.position[0]), float(n.position[1])) for n in cfg.nodes}
        return known if nodes <= set(known) else None
    except Exception:  # noqa: BLE001 - bars are a nicety
        return None


def prepare_run(out_dir: str | Path, csv_name: str, write_bag: bool) -> tuple[Path, Path, Path]:
    """Create ``out_dir``; return (CSV, output bag, summary.json) paths. Raises
    ``FileExistsError`` if the output bag would overwrite one."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bag_out = out_dir / "outputs"
    if write_bag and bag_out.exists():
        raise FileExistsError(f"output bag {bag_out} exists already; choose another --out or remove it")
    return out_dir / csv_name, bag_out, out_dir / "summary.json"


def finish_summary(summary: Any, *, t0: float, frames: BagFrames, blocks: Sequence[int], proc_ms: Sequence[float],
                   first: float | None, last: float | None, csv_path: Path, json_path: Path,
                   bag_out: Path | None) -> None:
    """The fields every replay summary shares (timing, sync, blocks, outputs); writes summary.json."""
    summary.wall_s = time.perf_counter() - t0
    summary.sync_unmatched, summary.sync_late = int(frames.stats.unmatched), int(frames.stats.late)
    if blocks:
        summary.mean_blocks = float(np.mean(blocks))
    if proc_ms:
        summary.pipeline_ms_mean = float(np.mean(proc_ms))
    summary.frames_per_s = summary.frames / summary.wall_s if summary.wall_s > 0 else 0.0
    summary.bag_duration_s = (last - first) if first is not None and last is not None else 0.0
    summary.outputs = {"csv": str(csv_path), "summary": str(json_path)}
    if bag_out is not None:
        summary.outputs["bag"] = str(bag_out)
    json_path.write_text(json.dumps(asdict(summary), indent=2, allow_nan=True) + "\n")


def replay(bag: str | Path, pipeline: FramePipeline, out_dir: str | Path, *, mapping: Any = None,
           storage: str = "sqlite3", max_frames: int | None = None, slop: float | None = None,
           progress: bool = False, write_bag: bool = True,
           node_xy: dict[str, tuple[float, float]] | None = None) -> ReplaySummary:
    """Replay ``bag`` through ``pipeline``; write CSV, output bag and summary into ``out_dir``.

    Raises :class:`admn_ros.bags.reader.BagError` (with the bag's contents) on bad bags.
    """
    from admn_ros.bags.writer import OutputBagWriter

    csv_path, bag_out, json_path = prepare_run(out_dir, "frames.csv", write_bag)
    t0 = time.perf_counter()
    frames = BagFrames(bag, mapping, slop=slop, progress=progress, max_frames=max_frames)
    ids = frames.stream_ids
    summary = ReplaySummary(str(bag), pipeline.name, frames.mapping.source)
    errs: list[float] = []
    blocks: list[int] = []
    proc_ms: list[float] = []
    first = last = None
    writer = (OutputBagWriter(bag_out, ids, storage=storage, controller=pipeline.name,
                              node_xy=node_xy if node_xy is not None else _node_xy(ids))
              if write_bag else None)
    ok = False
    try:
        with frames, open(csv_path, "w", newline="") as fcsv:
            w = csv.writer(fcsv)
            w.writerow(["index", "stamp_ns", "stamp_s", "gt_x", "gt_y", "est_x", "est_y", "error_cm",
                        "cov_xx", "cov_xy", "cov_yy", "active_blocks", "budget", "n_present", "missing",
                        *[f"true_sigma:{s}" for s in ids], *[f"est_sigma:{s}" for s in ids],
                        *[f"blocks:{s}" for s in ids], "gflops", "pipeline_ms", "pipeline"])
            for f in frames:
                tp = time.perf_counter()
                res = pipeline.process(f.stamp, f.streams).validated(len(ids))
                ms = (time.perf_counter() - tp) * 1e3
                proc_ms.append(ms)
                first = f.stamp if first is None else first
                last = f.stamp
                present = f.present
                err = float("nan")
                if f.gt_xy is not None:
                    err = float(np.linalg.norm(res.mean - f.gt_xy)) * 100.0
                    errs.append(err)
                nb = int(res.mask.sum()) if res.mask is not None else -1
                if res.mask is not None:
                    blocks.append(nb)
                true = f.true_noise()
                missing = [s for s, p in zip(ids, present) if not p]
                summary.frames += 1
                summary.frames_with_missing_streams += bool(missing)
                gt = f.gt_xy if f.gt_xy is not None else (float("nan"), float("nan"))
                w.writerow([f.index, f.stamp_ns, f"{f.stamp_ns // 1_000_000_000}.{f.stamp_ns % 1_000_000_000:09d}", _fmt(gt[0]), _fmt(gt[1]),
                            _fmt(res.mean[0]), _fmt(res.mean[1]), _fmt(err),
                            _fmt(res.cov[0, 0]), _fmt(res.cov[0, 1]), _fmt(res.cov[1, 1]),
                            nb if nb >= 0 else "", res.budget if res.budget is not None else "",
                            int(present.sum()), ";".join(missing),
                            *[_fmt(float(x)) for x in (true if true is not None else [math.nan] * len(ids))],
                            *[_fmt(float(x)) for x in (res.est_noise if res.est_noise is not None
                                                        else [math.nan] * len(ids))],
                            *(res.mask.sum(1).tolist() if res.mask is not None else [""] * len(ids)),
                            _fmt(float(res.extra.get("gflops", math.nan))), f"{ms:.3f}", pipeline.name])
                if writer is not None:
                    writer.write(f.stamp_ns, res.mean, res.cov, mask=res.mask, est_noise=res.est_noise,
                                 gt_xy=f.gt_xy, present=present, budget=res.budget, decision_ms=ms,
                                 label=pipeline.name)
        ok = True
    finally:
        if writer is not None:
            writer.close() if ok else writer.abort()
    summary.frames_with_gt = len(errs)
    if errs:
        e = np.asarray(errs)
        summary.mean_error_cm = float(e.mean())
        summary.median_error_cm = float(np.median(e))
        summary.p90_error_cm = float(np.percentile(e, 90))
        summary.rmse_cm = float(np.sqrt(np.mean(e ** 2)))
    finish_summary(summary, t0=t0, frames=frames, blocks=blocks, proc_ms=proc_ms, first=first, last=last,
                   csv_path=csv_path, json_path=json_path, bag_out=bag_out if writer is not None else None)
    return summary


def build_parser(prog: str = "admn-ros replay") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="rosbag2 directory, .db3/.mcap file or ROS 1 .bag")
    p.add_argument("--out", required=True, help="output directory (frames.csv, outputs/, summary.json)")
    p.add_argument("--task", choices=("tracking", "activity"), default="tracking",
                   help="tracking (positions vs /ground_truth/target) or activity (a label per sliding window "
                        "vs /ground_truth/activity; see admn_ros/bags/activity_replay.py)")
    p.add_argument("--mapping", default=None,
                   help="topic mapping: 'default', 'realsense_zed', 'activity' or a YAML file (see "
                        "config/bag_topics_*.yaml); default: 'default' (tracking) or 'activity' (activity)")
    p.add_argument("--pipeline", default="admn",
                   help="'admn' (ADMN controller), 'naive', 'upper_bound', 'baseline' (constant track centre, "
                        "for plumbing checks; tracking only) or 'package.module:factory' (tracking only)")
    p.add_argument("--budget", type=int, default=None,
                   help="layer budget L (default: 25%% of all blocks; activity: of one window's blocks)")
    p.add_argument("--budgets", default=None,
                   help="comma list of budgets: replay every --methods x budget and write report.md/csv + plots")
    p.add_argument("--methods", default="admn,naive,upper_bound", help="methods for --budgets")
    p.add_argument("--realtime", action="store_true",
                   help="also replay in real time through the node graph (use_sim_time, /clock) and compare "
                        "its allocations (activity: and labels) with the offline run frame by frame")
    p.add_argument("--rate", type=float, default=1.0, help="playback rate for --realtime")
    p.add_argument("--model-dir", default=None,
                   help="models directory (default: the package's models/, or models/activity with --task activity)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "jit", "onnx"), help="inference backend")
    p.add_argument("--slop", type=float, default=None, help="sync slop in s (default: the mapping's)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="storage of the output bag")
    p.add_argument("--no-bag", action="store_true", help="do not write the output bag")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _task_hint(e: Exception, task: str) -> str:
    """A hint when a tracking replay is pointed at an activity bag (or the other way round)."""
    from admn_ros.bags.reader import BagContentError
    from admn_ros.ros import topics

    if not isinstance(e, BagContentError):
        return ""
    names = {c.topic.strip("/") for c in e.contents}
    if task == "tracking" and topics.ACTIVITY_GROUND_TRUTH in names:
        return "\nthis bag holds /ground_truth/activity: replay it with --task activity"
    if task == "activity" and topics.GROUND_TRUTH in names:
        return "\nthis bag holds /ground_truth/target: replay it with --task tracking (the default)"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """``admn-ros replay ...``; returns the exit code."""
    a = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from admn_ros.core.checkpoint import CheckpointError

    try:
        from admn_ros.bags.mapping import load_mapping

        activity = a.task == "activity"
        mapping = load_mapping(a.mapping or ("activity" if activity else "default"))
        if activity and a.pipeline not in POLICIES:
            raise ValueError(f"--task activity runs the pipelines {list(POLICIES)}, not {a.pipeline!r}")
        if a.realtime:
            from admn_ros.bags.realtime import realtime_replay
            from admn_ros.core.streams import budget_from_fraction

            budget = a.budget or budget_from_fraction(0.25, len(mapping.stream_ids))
            print(realtime_replay(a.bag, a.out, mapping=mapping, budget=budget, model_dir=a.model_dir,
                                  rate=a.rate, task=a.task).text())
            return 0
        if a.budgets:
            from admn_ros.bags.report import replay_report

            replay_report(a.bag, a.out, methods=[m for m in a.methods.split(",") if m],
                          budgets=[int(b) for b in a.budgets.split(",") if b], mapping=mapping,
                          model_dir=a.model_dir, backend=a.backend, max_frames=a.max_frames,
                          storage=a.storage, progress=not a.no_progress, write_bags=not a.no_bag, task=a.task)
            print((Path(a.out) / "report.md").read_text())
            return 0
        if activity:
            from admn_ros.bags.activity_replay import ActivityPipeline, replay_activity

            apipe = ActivityPipeline(mapping.stream_ids, a.budget, policy=a.pipeline, model_dir=a.model_dir,
                                     backend=a.backend)
            print(replay_activity(a.bag, apipe, a.out, mapping=mapping, storage=a.storage, max_frames=a.max_frames,
                                  slop=a.slop, progress=not a.no_progress, write_bag=not a.no_bag).text())
            return 0
        opts = {} if a.pipeline in ("baseline",) or ":" in a.pipeline else {
            "model_dir": a.model_dir, "backend": a.backend}
        pipe = make_pipeline(a.pipeline, mapping.stream_ids, a.budget, **opts)
        s = replay(a.bag, pipe, a.out, mapping=mapping, storage=a.storage, max_frames=a.max_frames,
                   slop=a.slop, progress=not a.no_progress, write_bag=not a.no_bag)
    except (BagError, ValueError, FileExistsError, CheckpointError, RuntimeError) as e:
        print(f"admn-ros replay: error: {e}{_task_hint(e, a.task)}", file=sys.stderr)
        return 2
    print(s.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
