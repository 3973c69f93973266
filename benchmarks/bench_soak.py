"""Soak: the tracking graph with the shipped models for a long window, judged against its targets.

The graph of :func:`benchmarks.bench_graph.run_config` (separate processes, per frame); one PASS/FAIL
line per target of :func:`verdict`, exit code 1 if one fails (docs/BENCHMARKS.md, "Soak").
"""
from __future__ import annotations

import argparse
import sys

from admn_ros.core.paths import models_dir
from admn_ros.ros.env import isolated_env
from benchmarks.bench_graph import BUDGET, RATE, run_config


def verdict(r: dict) -> list[tuple[str, bool, str]]:
    """The soak's targets: (name, passed, measured) for a :func:`run_config` result."""
    growth = (r["rss_mb_end"] - r["rss_mb_start"]) / r["rss_mb_start"]
    per_frame = r["targets"] / max(1.0, r["sensor_hz"] * r["window_s"])
    return [("RSS growth < 5%", growth < 0.05, f"{100 * growth:+.2f}%"),
            ("targets for >= 99% of frames", per_frame >= 0.99, f"{100 * per_frame:.2f}%"),
            ("latency drift < 1 ms/min", abs(r["latency_drift_ms_per_min"]) < 1.0,
             f"{r['latency_drift_ms_per_min']:+.3f} ms/min")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_soak", description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="measurement window")
    a = ap.parse_args(argv)
    isolated_env()
    model_dir = str(models_dir())
    print(f"soak: {a.minutes:g} min at {RATE:g} Hz, budget {BUDGET}, models {model_dir}", flush=True)
    r = run_config(model_dir, "per_frame", False, a.minutes)
    print(f"start-up to first target  {r['startup_s']:.1f} s\n"
          f"window                    {r['window_s']:.0f} s, {r['processes']} processes, "
          f"{r['cpu_cores']:.2f} cores, load average {r['load_avg_1min']:.1f}\n"
          f"RSS start -> end (max)    {r['rss_mb_start']:.0f} -> {r['rss_mb_end']:.0f} ({r['rss_mb_max']:.0f}) MB, "
          f"fit {r['rss_slope_mb_per_min']:+.2f} MB/min\n"
          f"targets                   {r['targets']} for {round(r['sensor_hz'] * r['window_s'])} sensor frames "
          f"({r['targets_hz']:.2f} / s)\n"
          f"latency p50 / p99 / max   {r['latency_ms_p50']:.1f} / {r['latency_ms_p99']:.1f} / "
          f"{r['latency_ms_max']:.1f} ms, drift {r['latency_drift_ms_per_min']:+.3f} ms/min\n"
          f"dropped by nodes          {r['dropped'] or 0}")
    checks = verdict(r)
    for name, ok, got in checks:
        print(f"[{'PASS' if ok else 'FAIL'}] {name}: {got}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
