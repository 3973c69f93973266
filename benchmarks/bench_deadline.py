"""Deadline mode under CPU load from another process (issue 4).

Starts the simulated sensors and the ADMN graph with the controller in deadline mode
(``deadline_ms``: the budget follows measured sensor-stamp -> target latency), then runs
three phases: idle, N busy-loop processes competing for the 2 cores, idle again. Prints
the mean budget the controller chose and the target latency per phase.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_deadline [--deadline-ms 40] [--phase-s 25]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import yaml

from admn_ros.core.paths import config_path
from admn_ros.ros.env import isolated_env
from admn_ros.ros.graph import GraphOptions, build_graph
from admn_ros.ros.runner import GraphProcesses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deadline-ms", type=float, default=40.0, help="target period for the frame latency")
    ap.add_argument("--phase-s", type=float, default=25.0, help="seconds per phase")
    ap.add_argument("--hogs", type=int, default=2, help="busy-loop processes in the loaded phase")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="max seconds to wait for the first target")
    a = ap.parse_args(argv)

    env = dict(isolated_env(dict(os.environ)))
    os.environ.update(env)
    params = yaml.safe_load(config_path("tracking.yaml").read_text())
    params["/**"]["ros__parameters"]["deadline_ms"] = float(a.deadline_ms)
    pf = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump(params, pf)
    pf.close()
    specs = build_graph(GraphOptions(params_file=pf.name, budget=54))
    specs = [s for s in specs if s.executable != "viz_node"]

    import rclpy
    from admn_ros.core.tasks import get_task
    from admn_ros.msg import LayerAllocation
    from admn_ros.ros import topics
    from admn_ros.ros.convert import message_class, stamp_to_ns
    from admn_ros.ros.qos import reliable_qos

    rclpy.init()
    node = rclpy.create_node("bench_deadline")
    log: list[tuple[float, str, float]] = []  # (wall time, kind, value)

    def on_alloc(m) -> None:
        log.append((time.monotonic(), "budget", float(m.budget)))

    def on_target(m) -> None:
        lat = (node.get_clock().now().nanoseconds - stamp_to_ns(m.header.stamp)) * 1e-6
        log.append((time.monotonic(), "latency", lat))

    node.create_subscription(LayerAllocation, topics.ALLOCATION, on_alloc, reliable_qos())
    out = get_task("tracking").output
    node.create_subscription(message_class(out.type), out.topic, on_target, reliable_qos())
    procs = GraphProcesses()
    hogs: list[subprocess.Popen] = []
    phases: list[tuple[str, float, float]] = []
    try:
        procs.start(specs, composed=False, env=env, quiet=True)
        t_end = time.monotonic() + a.warmup_s
        while time.monotonic() < t_end and not any(k == "latency" for _, k, _ in log):
            rclpy.spin_once(node, timeout_sec=0.1)
        if not any(k == "latency" for _, k, _ in log):
            print("no target within the warm-up time", file=sys.stderr)
            return 1

        def run_phase(name: str) -> None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < a.phase_s:
                rclpy.spin_once(node, timeout_sec=0.05)
            phases.append((name, t0, time.monotonic()))

        run_phase("idle")
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.hogs)]
        run_phase(f"loaded ({a.hogs} busy processes)")
        for h in hogs:
            h.kill()
        hogs = []
        run_phase("idle again")
    finally:
        for h in hogs:
            h.kill()
        procs.stop()
        node.destroy_node()
        rclpy.shutdown()
        os.unlink(pf.name)

    print(f"deadline mode: target period {a.deadline_ms:.0f} ms, phases of {a.phase_s:.0f} s, "
          f"budget range 9..108, start 54")
    print(f"{'phase':<28} {'mean budget':>11} {'last 5 s budget':>15} {'latency p50':>11} {'p90':>7} {'targets/s':>9}")
    for name, t0, t1 in phases:
        b = [v for t, k, v in log if k == "budget" and t0 <= t < t1]
        b5 = [v for t, k, v in log if k == "budget" and t1 - 5 <= t < t1]
        lat = [v for t, k, v in log if k == "latency" and t0 <= t < t1]
        print(f"{name:<28} {np.mean(b) if b else float('nan'):>11.1f} {np.mean(b5) if b5 else float('nan'):>15.1f} "
              f"{np.percentile(lat, 50) if lat else float('nan'):>9.1f}ms {np.percentile(lat, 90) if lat else float('nan'):>5.1f}ms "
              f"{len(lat) / (t1 - t0):>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
