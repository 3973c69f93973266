"""Deadline mode under CPU load from another process: the simulated graph with the controller
in deadline mode (40 ms), through three phases (idle, 12 busy-loop processes, idle); per phase the
mean budget chosen and the sensor-stamp -> target latency (docs/BENCHMARKS.md, "Deadline mode under CPU load").
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from admn_ros.ros.env import isolated_env
from admn_ros.ros.graph import GraphOptions, build_graph
from admn_ros.ros.runner import GraphProcesses
from benchmarks.common import monitor_node, spin_for

DEADLINE_MS, HOGS, WARMUP_S = 40.0, 12, 60.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase-s", type=float, default=25.0, help="seconds per phase")
    a = ap.parse_args(argv)

    env = dict(isolated_env())
    specs = [s for s in build_graph(GraphOptions(budget=54)) if s.executable != "viz_node"]
    next(s for s in specs if s.executable == "controller_node").parameters["deadline_ms"] = DEADLINE_MS

    from admn_ros.core.sync import stamp_to_ns
    from admn_ros.core.tasks import get_task
    from admn_ros.msg import LayerAllocation
    from admn_ros.ros import topics
    from admn_ros.ros.convert import message_class
    from admn_ros.ros.qos import reliable_qos

    log: list[tuple[float, str, float]] = []  # (wall time, kind, value)
    procs = GraphProcesses()
    hogs: list[subprocess.Popen] = []
    phases: list[tuple[str, float, float]] = []
    with monitor_node("bench_deadline") as (node, ex):
        def on_target(m) -> None:
            lat = (node.get_clock().now().nanoseconds - stamp_to_ns(m.header.stamp)) * 1e-6
            log.append((time.monotonic(), "latency", lat))

        node.create_subscription(LayerAllocation, topics.ALLOCATION,
                                 lambda m: log.append((time.monotonic(), "budget", float(m.budget))), reliable_qos())
        out = get_task("tracking").output
        node.create_subscription(message_class(out.type), out.topic, on_target, reliable_qos())
        try:
            procs.start(specs, composed=False, env=env, quiet=True)
            if not spin_for(ex, WARMUP_S, lambda: any(k == "latency" for _, k, _ in log)):
                print("no target within the warm-up time", file=sys.stderr)
                return 1

            def run_phase(name: str) -> None:
                t0 = time.monotonic()
                spin_for(ex, a.phase_s)
                phases.append((name, t0, time.monotonic()))

            run_phase("idle")
            # each in a session of its own, like the graph's nodes, so that under autogroup scheduling
            # the load does not depend on the session the benchmark runs in
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                    for _ in range(HOGS)]
            run_phase(f"loaded ({HOGS} busy processes)")
            for h in hogs:
                h.kill()
            run_phase("idle again")
        finally:
            for h in hogs:  # again if the loaded phase was interrupted (kill() skips exited ones)
                h.kill()
            procs.stop()

    print(f"deadline mode: target period {DEADLINE_MS:.0f} ms, phases of {a.phase_s:.0f} s, "
          f"budget range 9..108, start 54")
    print(f"{'phase':<28} {'mean budget':>11} {'last 5 s budget':>15} {'latency p50':>11} {'p90':>7} "
          f"{'targets/s':>9}")
    nan = float("nan")
    for name, t0, t1 in phases:
        b = [v for t, k, v in log if k == "budget" and t0 <= t < t1]
        b5 = [v for t, k, v in log if k == "budget" and t1 - 5 <= t < t1]
        lat = [v for t, k, v in log if k == "latency" and t0 <= t < t1]
        p50, p90 = np.percentile(lat, [50, 90]) if lat else (nan, nan)
        print(f"{name:<28} {np.mean(b) if b else nan:>11.1f} {np.mean(b5) if b5 else nan:>15.1f} "
              f"{p50:>9.1f}ms {p90:>5.1f}ms {len(lat) / (t1 - t0):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
