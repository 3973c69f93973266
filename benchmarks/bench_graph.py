"""The whole ADMN node graph under load: 3 sensor nodes x 3 streams at 15 Hz, 25% budget.

Per configuration (allocation mode x separate processes / composed), after the first target + 5 s,
the figures of docs/BENCHMARKS.md, "Node graph end to end" (with the command).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from admn_ros.core.paths import models_dir
from admn_ros.ros.env import isolated_env
from admn_ros.ros.telemetry import HOPS, hop_lines, hops_of
from benchmarks.common import CLK_TCK, ROOT, monitor_node, proc_stat, spin_for

CONFIGS = (("per_frame", False), ("pipelined", False), ("per_frame", True), ("pipelined", True))
RATE, BUDGET, BACKEND, WARMUP_S = 15.0, 27, "auto", 5.0


def _totals(pids: list[int]) -> tuple[int, float]:
    stats = [s for s in map(proc_stat, pids) if s is not None]
    return sum(t for t, _ in stats), sum(r for _, r in stats) / 1024.0


class _Recorder:
    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from admn_ros.core.tasks import get_task
        from admn_ros.ros import topics
        from admn_ros.ros.convert import message_class
        from admn_ros.ros.qos import reliable_qos

        self.targets: list[tuple[float, float, float]] = []  # (receipt monotonic time, receipt wall time, stamp)
        self.diag: dict[str, dict[str, str]] = {}
        out = get_task("tracking").output
        node.create_subscription(message_class(out.type), out.topic, self._on_target, reliable_qos(100))
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diag, reliable_qos(100))

    def _on_target(self, msg) -> None:
        self.targets.append((time.monotonic(), time.time(), msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            self.diag[st.name] = {kv.key: kv.value for kv in st.values}

    def dropped(self) -> dict[str, int]:
        """Frames dropped so far by the ADMN nodes (summary statuses), ``"<node>: <reason>" -> count``."""
        return {f"{name.split(':')[0].strip('/')}: {k.removeprefix('dropped.')}": int(float(v))
                for name, vals in self.diag.items() if ": input " not in name
                for k, v in vals.items() if k.startswith("dropped.") or k == "sync_discarded"}


def run_config(model_dir: str, mode: str, composed: bool, minutes: float, tree: Path | None = None,
               label: str = "") -> dict:
    """One configuration; ``tree``: run the graph from that source tree (PYTHONPATH, its config/)."""
    from admn_ros.ros.graph import GraphOptions, build_graph
    from admn_ros.ros.runner import GraphProcesses

    specs = build_graph(GraphOptions(model_dir=model_dir, budget=BUDGET, allocation_mode=mode, composed=composed))
    # the graph's code comes from PYTHONPATH alone (PYTHONSAFEPATH: `python -m` would put the cwd first)
    env = {**os.environ, "PYTHONPATH": str(tree or ROOT), "PYTHONSAFEPATH": "1"}
    for s in specs:
        if s.executable != "sensor_node":
            s.parameters["backend"] = BACKEND
        if tree is not None:
            s.params_files = [str(tree / Path(f).relative_to(ROOT)) for f in s.params_files]
    procs = GraphProcesses()
    res: dict = {"config": f"{mode}, {'composed' if composed else 'processes'}{label}"}

    def check_alive() -> bool:
        if procs.dead():
            raise RuntimeError(f"graph process(es) exited: {procs.dead()}")
        return False

    # the monitor spins in the nodes' executor: the receipt here adds little
    with monitor_node("bench_graph_monitor") as (node, ex):
        rec = _Recorder(node)
        try:
            t_start = time.monotonic()
            procs.start(specs, composed, env, quiet=True, sensor_args=[f"rate_hz:={RATE}"])
            pids = [p.pid for _, p in procs.procs]
            if not spin_for(ex, 120.0, lambda: check_alive() or bool(rec.targets)):
                raise RuntimeError("no target within 120 s")
            res["startup_s"] = rec.targets[0][0] - t_start
            spin_for(ex, WARMUP_S)
            drop0 = rec.dropped()
            ticks0, rss0 = _totals(pids)
            w0 = time.monotonic()
            rss_series = [(0.0, rss0)]
            while time.monotonic() - w0 < minutes * 60.0:
                spin_for(ex, min(5.0, minutes * 60.0 - (time.monotonic() - w0)), check_alive)
                rss_series.append((time.monotonic() - w0, _totals(pids)[1]))
            elapsed = time.monotonic() - w0
            ticks1, rss1 = _totals(pids)
            spin_for(ex, 1.2)  # one more diagnostics report covering the window
            drop1 = rec.dropped()
        finally:
            procs.stop()
    window = [(r, s) for m, r, s in rec.targets if w0 <= m < w0 + elapsed]
    lat = np.array([(r - s) * 1e3 for r, s in window])
    tt = np.array([r for r, _ in window])
    drift = float(np.polyfit((tt - tt[0]) / 60.0, lat, 1)[0]) if len(lat) > 10 else float("nan")
    ts, rs = np.array(rss_series).T
    rss_slope = float(np.polyfit(ts / 60.0, rs, 1)[0]) if len(ts) > 2 else float("nan")
    dropped = {k: drop1.get(k, 0) - drop0.get(k, 0) for k in sorted(set(drop0) | set(drop1))}
    res.update({
        "window_s": elapsed, "targets": len(lat), "sensor_hz": RATE, "targets_hz": len(lat) / elapsed,
        "frames_lost": max(0, int(round(RATE * elapsed)) - len(lat)),
        **dict(zip(("latency_ms_p50", "latency_ms_p99", "latency_ms_max"),
                   map(float, np.percentile(lat, [50, 99, 100]) if len(lat) else [float("nan")] * 3))),
        "latency_drift_ms_per_min": drift,
        "dropped": {k: v for k, v in dropped.items() if v},
        "rss_mb_start": rss0, "rss_mb_end": rss1, "rss_mb_max": float(rs.max()), "rss_slope_mb_per_min": rss_slope,
        "cpu_cores": (ticks1 - ticks0) / CLK_TCK / elapsed, "processes": len(pids),
        "load_avg_1min": os.getloadavg()[0],
        "hops": hops_of(next((v for n, v in rec.diag.items() if n.endswith(": fusion")), {})),
    })
    return res


def _table(results: list[dict]) -> str:
    rows = [("processes", lambda r: str(r["processes"])),
            ("startup to first target (s)", lambda r: f"{r['startup_s']:.1f}"),
            ("window (s)", lambda r: f"{r['window_s']:.0f}"),
            ("targets / s (sensors 15 Hz)", lambda r: f"{r['targets_hz']:.2f}"),
            ("frames without target", lambda r: str(r["frames_lost"])),
            ("latency p50 (ms)", lambda r: f"{r['latency_ms_p50']:.1f}"),
            ("latency p99 (ms)", lambda r: f"{r['latency_ms_p99']:.1f}"),
            ("latency max (ms)", lambda r: f"{r['latency_ms_max']:.1f}"),
            ("latency drift (ms/min)", lambda r: f"{r['latency_drift_ms_per_min']:+.2f}"),
            ("dropped by nodes", lambda r: ", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "0"),
            ("RSS start -> end (MB)", lambda r: f"{r['rss_mb_start']:.0f} -> {r['rss_mb_end']:.0f}"),
            ("RSS growth (MB/min, fit)", lambda r: f"{r['rss_slope_mb_per_min']:+.2f}"),
            ("CPU (cores)", lambda r: f"{r['cpu_cores']:.2f}"),
            ("load average (1 min)", lambda r: f"{r['load_avg_1min']:.1f}")]
    rows += [(f"{label} p50 / p99 (ms)", lambda r, h=h: "{:.1f} / {:.1f}".format(*r["hops"][h]) if h in r["hops"]
              else "-") for h, label in HOPS.items()]
    out = ["| " + " | ".join(["figure"] + [r["config"] for r in results]) + " |",
           "|" + "---|" * (len(results) + 1)]
    for name, fn in rows:
        out.append("| " + " | ".join([name] + [fn(r) for r in results]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="measurement window per configuration")
    ap.add_argument("--configs", default="all",
                    help="comma list of per_frame,pipelined x processes,composed, e.g. 'pipelined:composed'")
    ap.add_argument("--baseline", default="", metavar="REV",
                    help="also run the graph of git revision REV (a temporary worktree), alternating with this tree")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (and per tree)")
    a = ap.parse_args(argv)
    isolated_env()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    configs = list(CONFIGS)
    if a.configs != "all":
        want = {tuple(c.split(":")) for c in a.configs.split(",")}
        configs = [(m, c) for m, c in CONFIGS if (m, "composed" if c else "processes") in want]
    model_dir = str(models_dir())
    if not (models_dir() / "tracking.safetensors").is_file():
        raise SystemExit(f"{model_dir}: no shipped tracking model (run `make models`)")
    print(f"[bench_graph] ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} models: {model_dir} (shipped (models/)); "
          f"{RATE:g} Hz, budget {BUDGET}, backend {BACKEND}, {a.minutes:g} min per config", flush=True)
    trees: list[tuple[Path | None, str]] = [(None, " [this tree]" if a.baseline else "")]
    if a.baseline:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", a.baseline], check=True,
                             capture_output=True, text=True).stdout.strip()
        tmp = Path(tempfile.mkdtemp(prefix="bench_graph_")) / rev
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp), rev], check=True,
                       capture_output=True)
        trees.append((tmp, f" [{rev}]"))
        print(f"[bench_graph] baseline {a.baseline} = {rev} in {tmp}", flush=True)
    results = []
    try:
        for mode, composed in configs:
            for k in range(a.repeat):
                for tree, tag in trees[::-1] if k % 2 else trees:
                    r = run_config(model_dir, mode, composed, a.minutes, tree, tag)
                    print(f"[bench_graph] {r['config']}: {r['targets_hz']:.2f} targets/s, latency p50 "
                          f"{r['latency_ms_p50']:.1f} p99 {r['latency_ms_p99']:.1f} ms, drift "
                          f"{r['latency_drift_ms_per_min']:+.2f} ms/min, "
                          f"RSS {r['rss_mb_start']:.0f}->{r['rss_mb_end']:.0f} MB, CPU {r['cpu_cores']:.2f} cores, "
                          f"load {r['load_avg_1min']:.1f}, dropped {r['dropped'] or 0}", flush=True)
                    for line in hop_lines(r["hops"]):
                        print(f"[bench_graph] {line}", flush=True)
                    results.append(r)
                    time.sleep(2.0)
    finally:
        for tree, _ in trees[1:]:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    print("\n" + _table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
