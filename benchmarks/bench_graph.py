"""The whole ADMN node graph under load: 3 sensor nodes x 3 streams at 15 Hz, 25% budget.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_graph [--minutes 1]``
(per configuration; 4 configurations side by side; DDS stays on this machine:
localhost-only discovery and a ROS_DOMAIN_ID of our own). A soak: ``--minutes 10``.

Configurations: allocation mode ``per_frame`` / ``pipelined`` x the ADMN nodes as
separate processes / composed in one process (``admn_container``), each started exactly
like ``admn-ros run`` (:func:`admn_ros.ros.graph.build_graph` + :class:`admn_ros.ros.runner.GraphProcesses`).
The simulated ``sensor_node`` is always its own process.

Per configuration, over the measurement window (after the first target + ``--warmup`` s):

* end-to-end latency: sensor stamp -> target received here (p50 / p99 / max, ms);
* throughput: targets/s against the sensor rate, and frames lost (sensor frames without a target);
* backlog: latency drift (ms per minute, least squares over the window: a graph that
  does not keep up queues frames and the drift is positive), frames dropped by the nodes
  (``dropped.*`` on /diagnostics: allocation waits, pending overflow, messages the synchronizers discarded unmatched);
* memory: RSS of all graph processes at the start and end of the window (growth MB and MB/min);
* CPU: cores used by the graph processes (utime + stime over the window).

Models: ``--model-dir`` (default: the shipped models/).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from admn_ros.ros.env import isolated_env

CLK_TCK = os.sysconf("SC_CLK_TCK")
CONFIGS = (("per_frame", False), ("pipelined", False), ("per_frame", True), ("pipelined", True))


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(cpu ticks, rss kB) of ``pid``, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return int(fields[11]) + int(fields[12]), rss
    except (OSError, IndexError, ValueError):
        return None


def _totals(pids: list[int]) -> tuple[int, float]:
    ticks, rss = 0, 0
    for pid in pids:
        s = _proc_stat(pid)
        if s is not None:
            ticks += s[0]
            rss += s[1]
    return ticks, rss / 1024.0


def _resolve_models(arg: str) -> tuple[str, str]:
    """The models to run: ``--model-dir``, else the shipped ``models/``."""
    from admn_ros.core.paths import models_dir

    if arg:
        return arg, "given"
    d = models_dir()
    if not (d / "tracking.safetensors").is_file():
        raise SystemExit(f"{d}: no shipped tracking model (run `make models` or pass --model-dir)")
    return str(d), "shipped (models/)"


class _Recorder:
    def __init__(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        from admn_ros.core.tasks import get_task
        from admn_ros.msg import LayerAllocation
        from admn_ros.ros import topics
        from admn_ros.ros.convert import message_class
        from admn_ros.ros.qos import reliable_qos

        self.targets: list[tuple[float, float]] = []   # (receipt wall time, stamp)
        self.allocs = 0
        self.diag: dict[str, dict[str, str]] = {}
        self.recording = False
        out = get_task("tracking").output
        node.create_subscription(message_class(out.type), out.topic, self._on_target, reliable_qos(100))
        node.create_subscription(LayerAllocation, topics.ALLOCATION, self._on_alloc, reliable_qos(100))
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diag, reliable_qos(100))
        self.first_target: float | None = None

    def _on_target(self, msg) -> None:
        now = time.time()
        if self.first_target is None:
            self.first_target = time.monotonic()
        if self.recording:
            self.targets.append((now, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    def _on_alloc(self, msg) -> None:
        if self.recording:
            self.allocs += 1

    def _on_diag(self, msg) -> None:
        for st in msg.status:
            self.diag[st.name] = {kv.key: kv.value for kv in st.values}

    def dropped(self) -> dict[str, int]:
        """Frames dropped so far by the ADMN nodes (summary statuses), ``"<node>: <reason>" -> count``."""
        out: dict[str, int] = {}
        for name, vals in self.diag.items():
            if ": input " in name:
                continue
            node = name.split(":")[0].strip("/")
            for k, v in vals.items():
                if k.startswith("dropped.") or k == "sync_discarded":
                    try:
                        out[f"{node}: {k.replace('dropped.', '')}"] = int(float(v))
                    except ValueError:
                        pass
        return out


def run_config(model_dir: str, mode: str, composed: bool, minutes: float, rate: float, budget: int,
               backend: str, warmup: float, viz: bool) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from admn_ros.ros.graph import GraphOptions, build_graph
    from admn_ros.ros.runner import GraphProcesses

    specs = build_graph(GraphOptions(model_dir=model_dir, budget=budget, allocation_mode=mode, composed=composed))
    if not viz:
        specs = [s for s in specs if s.executable != "viz_node"]
    for s in specs:
        if s.executable != "sensor_node":
            s.parameters["backend"] = backend
    procs = GraphProcesses()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_graph_monitor", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    rec = _Recorder(node)
    label = f"{mode}, {'composed' if composed else 'processes'}"
    res: dict = {"config": label, "mode": mode, "composed": composed}
    try:
        t_start = time.monotonic()
        procs.start(specs, composed, dict(os.environ), quiet=True, sensor_args=[f"rate_hz:={rate}"])
        pids = [p.pid for _, p in procs.procs]
        while rec.first_target is None:
            if procs.dead():
                raise RuntimeError(f"graph process(es) exited: {procs.dead()}")
            if time.monotonic() - t_start > 120:
                raise RuntimeError("no target within 120 s")
            ex.spin_once(timeout_sec=0.05)
        res["startup_s"] = rec.first_target - t_start
        end = time.monotonic() + warmup
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        drop0 = rec.dropped()
        ticks0, rss0 = _totals(pids)
        rss_max = rss0
        rec.recording = True
        w0 = time.monotonic()
        window = minutes * 60.0
        next_sample = w0 + 5.0
        rss_series = [(0.0, rss0)]
        while time.monotonic() - w0 < window:
            ex.spin_once(timeout_sec=0.05)
            if time.monotonic() >= next_sample:
                _, r = _totals(pids)
                rss_series.append((time.monotonic() - w0, r))
                rss_max = max(rss_max, r)
                next_sample += 5.0
            if procs.dead():
                raise RuntimeError(f"graph process(es) exited: {procs.dead()}")
        rec.recording = False
        elapsed = time.monotonic() - w0
        ticks1, rss1 = _totals(pids)
        # one more diagnostics report covering the window
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        drop1 = rec.dropped()
    finally:
        procs.stop()
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    lat = np.array([(r - s) * 1e3 for r, s in rec.targets])
    tt = np.array([r for r, _ in rec.targets])
    drift = float(np.polyfit((tt - tt[0]) / 60.0, lat, 1)[0]) if len(lat) > 10 else float("nan")
    ts, rs = np.array(rss_series).T
    rss_slope = float(np.polyfit(ts / 60.0, rs, 1)[0]) if len(ts) > 2 else float("nan")
    dropped = {k: drop1.get(k, 0) - drop0.get(k, 0) for k in sorted(set(drop0) | set(drop1))}
    res.update({
        "window_s": elapsed, "targets": len(lat), "targets_hz": len(lat) / elapsed, "sensor_hz": rate,
        "frames_lost": max(0, int(round(rate * elapsed)) - len(lat)),
        "allocations": rec.allocs,
        "latency_ms_p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "latency_ms_max": float(lat.max()) if len(lat) else float("nan"),
        "latency_drift_ms_per_min": drift,
        "dropped": {k: v for k, v in dropped.items() if v},
        "rss_mb_start": rss0, "rss_mb_end": rss1, "rss_mb_max": rss_max, "rss_growth_mb": rss1 - rss0,
        "rss_slope_mb_per_min": rss_slope,
        "cpu_cores": (ticks1 - ticks0) / CLK_TCK / elapsed, "processes": len(pids),
    })
    return res


def _table(results: list[dict]) -> str:
    rows = [("config", lambda r: r["config"]),
            ("processes", lambda r: str(r["processes"])),
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
            ("CPU (cores)", lambda r: f"{r['cpu_cores']:.2f}")]
    out = ["| " + " | ".join(["figure"] + [r["config"] for r in results]) + " |",
           "|" + "---|" * (len(results) + 1)]
    for name, fn in rows[1:]:
        out.append("| " + " | ".join([name] + [fn(r) for r in results]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=1.0, help="measurement window per configuration")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after the first target before measuring")
    ap.add_argument("--rate", type=float, default=15.0, help="sensor rate (Hz)")
    ap.add_argument("--budget", type=int, default=27, help="layer budget (27 = 25%% of 9 x 12)")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "jit", "onnx"])
    ap.add_argument("--model-dir", default="", help="default: the shipped models/")
    ap.add_argument("--configs", default="all",
                    help="comma list of per_frame,pipelined x processes,composed, e.g. 'pipelined:composed'")
    ap.add_argument("--no-viz", action="store_true", help="leave viz_node out")
    ap.add_argument("--json", default="", help="also write the results here")
    a = ap.parse_args(argv)
    isolated_env()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    configs = list(CONFIGS)
    if a.configs != "all":
        want = {tuple(c.split(":")) for c in a.configs.split(",")}
        configs = [(m, c) for m, c in CONFIGS if (m, "composed" if c else "processes") in want]
    model_dir, what = _resolve_models(a.model_dir)
    print(f"[bench_graph] ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} models: {model_dir} ({what}); "
          f"{a.rate:g} Hz, budget {a.budget}, backend {a.backend}, {a.minutes:g} min per config", flush=True)
    results = []
    for mode, composed in configs:
        r = run_config(model_dir, mode, composed, a.minutes, a.rate, a.budget, a.backend, a.warmup, not a.no_viz)
        print(f"[bench_graph] {r['config']}: {r['targets_hz']:.2f} targets/s, latency p50 "
              f"{r['latency_ms_p50']:.1f} p99 {r['latency_ms_p99']:.1f} ms, drift "
              f"{r['latency_drift_ms_per_min']:+.2f} ms/min, "
              f"RSS {r['rss_mb_start']:.0f}->{r['rss_mb_end']:.0f} MB, "
              f"CPU {r['cpu_cores']:.2f} cores, dropped {r['dropped'] or 0}", flush=True)
        results.append(r)
        time.sleep(2.0)
    print()
    print(_table(results))
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "models": what, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
