"""``admn-ros replay``: run a bag through a pipeline and score it against its ground truth.

``--budgets`` runs :mod:`admn_ros.bags.report`, ``--realtime`` :mod:`admn_ros.bags.realtime`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from admn_ros.bags.mapping import load_mapping
from admn_ros.bags.pipeline import make_pipeline
from admn_ros.bags.reader import BagContentError
from admn_ros.bags.replay import other_tasks, replay
from admn_ros.bags.report import replay_report
from admn_ros.cli import refuse_unused
from admn_ros.core.health import HealthConfig
from admn_ros.core.streams import budget_from_fraction
from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task


def _task_hint(e: Exception, task: str) -> str:
    """A hint when a bag holds another task's ground truth."""
    others = other_tasks(get_task(task), e.contents) if isinstance(e, BagContentError) else []
    return "".join(f"\nthis bag holds /{o.truth.topic}: replay it with --task {o.name}" for o in others)


def _budgets(text: str) -> list[int]:
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--budgets: expected a comma list of block counts, e.g. 27,54, got {text!r}") from None


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="admn-ros replay", description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="rosbag2 directory, .db3/.mcap file or ROS 1 .bag")
    p.add_argument("--out", required=True, help="output directory (per-output CSV, outputs/, summary.json)")
    p.add_argument("--task", choices=list(TASKS), default=DEFAULT_TASK,
                   help="tracking (positions vs /ground_truth/target) or activity (a label per sliding window "
                        "vs /ground_truth/activity); default %(default)s")
    p.add_argument("--mapping", default=None,
                   help="topic mapping: 'default', 'realsense_zed', 'activity' or a YAML file (see "
                        "config/bag_topics_*.yaml); default: the task's ('default' / 'activity')")
    p.add_argument("--pipeline", default="admn",
                   help="'admn' (ADMN controller), 'naive', 'upper_bound' or 'baseline' (constant track centre, "
                        "for plumbing checks; tracking); default %(default)s")
    p.add_argument("--budget", type=int, default=None,
                   help="layer budget L (default: 25%% of the window streams' blocks)")
    p.add_argument("--budgets", default=None,
                   help="comma list of budgets: replay ADMN and Naive at each budget and the Upper Bound, and "
                        "write report.md/csv + plots")
    p.add_argument("--realtime", action="store_true",
                   help="also replay in real time through the node graph (use_sim_time, /clock) and compare "
                        "its allocations and estimates with the offline run output by output")
    p.add_argument("--rate", type=float, default=1.0, help="playback rate for --realtime (default 1.0)")
    p.add_argument("--model-dir", default=None, help="models directory (default: the task's shipped models)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"),
                   help="inference backend (default auto)")
    p.add_argument("--no-bag", action="store_true", help="do not write the output bag")
    p.add_argument("--no-health-check", action="store_true",
                   help="turn the stream health check off (on by default with the live nodes' thresholds: a "
                        "frozen or stalled stream is treated as missing, as in the graph)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.realtime:
        refuse_unused(p, a, ("pipeline", "budgets", "backend", "no_bag", "no_health_check"),
                      "not with --realtime, which runs the task's ADMN node graph (torch backend, health check on) "
                      "and writes no output bag")
    else:
        refuse_unused(p, a, ("rate",), "only with --realtime")
    try:
        task = get_task(a.task)
        mapping = load_mapping(a.mapping or task.mapping)
        health = None if a.no_health_check else HealthConfig()
        if a.realtime:
            from admn_ros.bags.realtime import realtime_replay

            budget = a.budget or budget_from_fraction(0.25, len(mapping.stream_ids))
            print(realtime_replay(a.bag, a.out, mapping=mapping, budget=budget, model_dir=a.model_dir,
                                  rate=a.rate, task=a.task).text())
            return 0
        if a.budgets:
            replay_report(a.bag, a.out, methods=["admn", "naive", "upper_bound"],
                          budgets=_budgets(a.budgets), mapping=mapping,
                          model_dir=a.model_dir, backend=a.backend, progress=not a.no_progress,
                          write_bags=not a.no_bag, task=a.task, health=health)
            print((Path(a.out) / "report.md").read_text())
            return 0
        pipe = make_pipeline(a.pipeline, mapping.stream_ids, a.budget, model_dir=a.model_dir, backend=a.backend,
                             task=a.task)
        s = replay(a.bag, pipe, a.out, task=a.task, mapping=mapping, progress=not a.no_progress,
                   write_bag=not a.no_bag, health=health)
    except (ValueError, FileExistsError, RuntimeError) as e:  # a BagError or CheckpointError is a RuntimeError
        print(f"admn-ros replay: error: {e}{_task_hint(e, a.task)}", file=sys.stderr)
        return 2
    print(s.text())
    return 0
