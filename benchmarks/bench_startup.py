"""Where the graph's start-up goes: per node kind, in a fresh process, the interpreter start,
imports, node construction, ``configure`` and ``activate``; then the time from starting ``admn-ros
run`` to the first target received. Figures are medians (docs/BENCHMARKS.md, "Start-up").
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from admn_ros.ros.env import isolated_env, stop_process_groups
from benchmarks.common import ROOT, monitor_node, spin_for

KINDS = ("sensor_node", "controller_node", "backbone_node", "fusion_node", "viz_node", "activity_node")

#: runs in the measured tree: phase times of one node kind (JSON on stdout)
NODE_SCRIPT = r"""
import importlib, json, sys, time
t0 = time.perf_counter()
kind = sys.argv[1]
import rclpy
from admn_ros.core.tasks import TASKS
from admn_ros.ros.graph import GraphOptions, build_graph
spec = next(s for task in TASKS for s in build_graph(GraphOptions(task=task)) if s.executable == kind)
mod = importlib.import_module(spec.module)
t1 = time.perf_counter()
rclpy.init()
lifecycle = hasattr(getattr(mod, spec.node_class), "trigger_configure")
extra = ["-p", "autostart:=false"] if lifecycle else []
node = getattr(mod, spec.node_class)(cli_args=spec.ros_args() + extra, use_global_arguments=False)
t2 = time.perf_counter()
if lifecycle:
    node.trigger_configure()
t3 = time.perf_counter()
if lifecycle:
    node.trigger_activate()
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "construct": t2 - t1, "configure": t3 - t2, "activate": t4 - t3}))
node.destroy_node()
rclpy.shutdown()
"""


def node_phases(kind: str, env: dict) -> dict[str, float]:
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", NODE_SCRIPT, kind], env={**env, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    total = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"{kind}: {r.stderr[-2000:]}")
    ph = json.loads(r.stdout.strip().splitlines()[-1])
    return {"interpreter": total - sum(ph.values()), **ph, "total": total}


def graph_first_target(env: dict, timeout: float = 180.0) -> float:
    """Seconds from starting ``admn-ros run`` to the first target received here."""
    from admn_ros.core.tasks import get_task
    from admn_ros.ros.convert import message_class

    out = get_task("tracking").output
    got: list[float] = []
    with monitor_node("bench_startup") as (node, ex):
        node.create_subscription(message_class(out.type), out.topic, lambda m: got.append(time.monotonic()), 10)
        t0 = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "admn_ros.cli", "run", "--quiet"],
                             env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            spin_for(ex, timeout, lambda: bool(got) or p.poll() is not None)
            return got[0] - t0 if got else float("nan")
        finally:
            stop_process_groups([p], 30.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    env = dict(isolated_env())
    res: dict[str, list] = {}
    for _ in range(a.repeats):
        for k in KINDS:
            res.setdefault(k, []).append(node_phases(k, env))
        res.setdefault("graph", []).append(graph_first_target(env))
    cols = ("interpreter", "imports", "construct", "configure", "activate", "total")
    print(f"\n{ROOT} (median of {a.repeats}; seconds)")
    print(f"{'node':<16}" + "".join(f"{c:>12}" for c in cols))
    for k in KINDS:
        print(f"{k:<16}" + "".join(f"{statistics.median(r[c] for r in res[k]):12.2f}" for c in cols))
    g = res["graph"]
    print(f"admn-ros run -> first target: median {statistics.median(g):.1f} s (runs: "
          + ", ".join(f"{x:.1f}" for x in g) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
