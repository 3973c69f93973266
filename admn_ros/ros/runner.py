"""Start the ADMN graph where ``ros2 launch`` is not available, and the live demo.

* ``admn-ros run [<task>]`` (or ``--task``, default tracking): the specs of
  :func:`admn_ros.ros.graph.build_graph` for the task (the same graph
  ``launch/<task>.launch.py`` starts) as one process per node, or with ``--composed`` all
  ADMN nodes in one process (``admn_container``).
* ``admn-ros demo`` (``make demo``): ``run`` plus a :class:`Monitor` that prints the live
  estimate vs. the simulated truth, the task's metric, latency and per-stream
  allocations, and a summary at the end (after ``--duration`` seconds or Ctrl-C).

Every process gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, the shipped FastDDS
profile and this run's own ROS_DOMAIN_ID (:mod:`admn_ros.ros.env`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from admn_ros.core.tasks import DEFAULT_TASK, TASKS, Task, get_task
from admn_ros.ros.env import isolated_env
from admn_ros.ros.graph import GraphOptions, NodeSpec, build_graph


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                usage=f"{prog} [{'|'.join(TASKS)}] [options]")
    p.add_argument("--task", choices=list(TASKS), default=None,
                   help=f"which graph: {' or '.join(TASKS)} (default {DEFAULT_TASK}; also as the first argument)")
    per_task = "; ".join  # one help fragment per registered task

    p.add_argument("--budget", type=int, default=None, help="layer budget L; 0 = 25%% of the model's blocks "
                   f"(default: {per_task(f'{t.name} {t.budget}' for t in TASKS.values())})")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    p.add_argument("--namespace", default="", help="namespace for every node")
    p.add_argument("--params-file", default="", help="ADMN node parameters (default: config/<task>.yaml)")
    p.add_argument("--model-dir", default="", help="models directory (default: the task's shipped models: "
                   f"{per_task(f'{t.name} models/{t.models_subdir}' for t in TASKS.values())})")
    p.add_argument("--sensor-nodes", default=None, help="comma-separated sensor node names (default: "
                   f"{per_task(t.name + ' ' + ','.join(t.sensor_nodes) for t in TASKS.values())})")
    p.add_argument("--subject-id", type=int, default=0, help="simulated sensors: the subject (activity)")
    p.add_argument("--seed", type=int, default=0, help="simulated sensors: seed (scene, subject)")
    p.add_argument("--episode", type=int, default=0, help="simulated sensors: episode")
    p.add_argument("--allocation-mode", choices=["per_frame", "pipelined"], default="per_frame",
                   help="per_frame: backbones wait for the frame's allocation; pipelined: use the latest")
    p.add_argument("--composed", action="store_true", help="run the ADMN nodes in one process")
    p.add_argument("--no-sim-sensors", action="store_true", help="do not start the simulated sensors")
    p.add_argument("--use-sim-time", action="store_true", help="use /clock (bag replay)")
    p.add_argument("--sensor-args", default="", help="extra sensor_node parameters, e.g. "
                   "'corruption.node1.rgb:=gaussian:sigma=3.0'")
    p.add_argument("--quiet", action="store_true", help="do not forward node logs")
    return p


def parse_args(prog: str, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``[<task>] [options]``; fills the task's defaults (budget, sensor nodes)."""
    argv = list(argv)
    task = argv.pop(0) if argv and argv[0] in TASKS else None
    a = build_parser(prog).parse_args(argv)
    if task is not None and a.task is not None and task != a.task:
        build_parser(prog).error(f"task given twice: {task!r} and --task {a.task!r}")
    t = get_task(task or a.task)
    a.task = t.name
    if a.budget is None:
        a.budget = t.budget
    if a.sensor_nodes is None:
        a.sensor_nodes = ",".join(t.sensor_nodes)
    return a


def options_from_args(a: argparse.Namespace) -> GraphOptions:
    return GraphOptions(task=a.task, namespace=a.namespace, params_file=a.params_file, budget=a.budget,
                        use_sim_time=a.use_sim_time, sim_sensors=not a.no_sim_sensors,
                        sensor_nodes=tuple(s for s in a.sensor_nodes.split(",") if s),
                        model_dir=a.model_dir, allocation_mode=a.allocation_mode, composed=a.composed,
                        subject_id=a.subject_id, seed=a.seed, episode=a.episode)


def graph_specs(a: argparse.Namespace) -> list[NodeSpec]:
    """The node specs of the task ``a.task`` (parsed by :func:`parse_args`)."""
    return build_graph(options_from_args(a))


def allocation_text(a: Any) -> str:
    """``L=27 [admn_universal] n1/rgb:4 ...`` for a ``LayerAllocation`` message."""
    counts = np.asarray(a.active_blocks, dtype=bool).reshape(len(a.stream_ids), a.depth).sum(1)
    return f"L={a.budget} [{a.controller}] " + " ".join(
        f"{sid.replace('node', 'n')}:{c}" for sid, c in zip(a.stream_ids, counts))


def summary_head(title: str, counts: dict[str, int], elapsed: float) -> list[str]:
    """First lines of a demo summary: title, duration, per-stream sensor rates."""
    rates = {sid: c / max(elapsed, 1e-6) for sid, c in counts.items()}
    return ["", title, f"duration        {elapsed:.1f} s",
            "sensor rates    " + ", ".join(f"{k} {v:.1f} Hz" for k, v in rates.items())]


@dataclass
class GraphProcesses:
    """Child processes of a running graph; stops them all (SIGINT, then SIGKILL)."""

    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, specs: Sequence[NodeSpec], composed: bool, env: dict, quiet: bool,
              sensor_args: Sequence[str] = ()) -> None:
        out = subprocess.DEVNULL if quiet else None
        if composed:
            sensors = [s for s in specs if s.executable == "sensor_node"]
            others = [s for s in specs if s.executable != "sensor_node"]
            for s in sensors:
                self._spawn(s.name, [sys.executable, "-m", s.module, *s.ros_args(), *_p(sensor_args)], env, out)
            self._spawn("admn_container", [sys.executable, "-m", "admn_ros.ros.runner", "--container-specs",
                                           _encode_specs(others)], env, out)
        else:
            for s in specs:
                extra = _p(sensor_args) if s.executable == "sensor_node" else []
                self._spawn(s.name, [sys.executable, "-m", s.module, *s.ros_args(), *extra], env, out)

    def _spawn(self, name: str, cmd: list[str], env: dict, out) -> None:
        self.procs.append((name, subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)))

    def dead(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs if p.poll() is not None]

    def stop(self, timeout: float = 5.0) -> None:
        for _, p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=2.0)


def _p(sensor_args: Sequence[str]) -> list[str]:
    """Extra ``name:=value`` parameters appended to a node's --ros-args."""
    out: list[str] = []
    for a in sensor_args:
        if a:
            out += ["-p", a]
    return out


def _encode_specs(specs: Sequence[NodeSpec]) -> str:
    import json

    return json.dumps([{"name": s.name, "executable": s.executable, "module": s.module,
                        "node_class": s.node_class, "namespace": s.namespace,
                        "params_files": s.params_files, "parameters": s.parameters,
                        "remappings": s.remappings} for s in specs])


def compose(specs: Sequence[NodeSpec], duration: float = 0.0) -> int:
    """Instantiate every spec's node class in this process and spin them together."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init()
    nodes = []
    try:
        for s in specs:
            cls = getattr(importlib.import_module(s.module), s.node_class)
            nodes.append(cls(cli_args=s.ros_args(), use_global_arguments=False))
        # One thread: with the GIL a multi-threaded executor only adds contention
        # (measured: p50/p99 64/230 ms at 0.44 cores vs 91/379 ms at 0.75 cores).
        ex = SingleThreadedExecutor()
        for n in nodes:
            ex.add_node(n)
        end = time.monotonic() + duration if duration > 0 else float("inf")
        while rclpy.ok() and time.monotonic() < end:
            ex.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for n in nodes:
            n.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def container_main(argv: Sequence[str] | None = None) -> int:
    """``admn_container``: the ADMN nodes of a task's graph in one process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = argv[: argv.index("--ros-args")] if "--ros-args" in argv else argv
    a = parse_args("admn_container", argv)
    isolated_env()
    specs = [s for s in graph_specs(a) if s.executable != "sensor_node"]
    return compose(specs, a.duration)


def _decode_specs(blob: str) -> list[NodeSpec]:
    import json

    return [NodeSpec(**{**d, "remappings": [tuple(r) for r in d["remappings"]]}) for d in json.loads(blob)]


# --------------------------------------------------------------------------- monitor
class Monitor:
    """The demo's live statistics for any task: sensor message counts (``StreamQoI`` per
    stream), the allocations (``LayerAllocation``), the task's estimates scored against its
    ground truth at the same stamp (whichever arrives first waits for the other), latency."""

    def __init__(self, node, stream_ids: list[str], task: Task) -> None:
        from admn_ros.msg import LayerAllocation, StreamQoI
        from admn_ros.ros import topics
        from admn_ros.ros.convert import message_class
        from admn_ros.ros.qos import reliable_qos, sensor_qos

        self.node, self.task = node, task
        self.last_alloc = None
        self.alloc_counts: list[np.ndarray] = []
        self.qoi_counts = {sid: 0 for sid in stream_ids}
        self.truth: dict[tuple[int, int], Any] = {}
        self.pending: dict[tuple[int, int], dict[str, Any]] = {}
        self.scores: list[float] = []
        self.latencies: list[float] = []
        self.estimates = 0
        self.last: tuple[tuple[int, int], dict[str, Any]] | None = None
        node.create_subscription(message_class(task.truth.type), task.truth.topic, self._on_truth, reliable_qos(50))
        node.create_subscription(message_class(task.output.type), task.output.topic, self._on_estimate,
                                 reliable_qos(50))
        node.create_subscription(LayerAllocation, topics.ALLOCATION, self._on_alloc, reliable_qos())
        for sid in stream_ids:
            node.create_subscription(StreamQoI, topics.qoi_topic(sid), self._on_qoi, sensor_qos())

    @staticmethod
    def _key(stamp) -> tuple[int, int]:
        return (stamp.sec, stamp.nanosec)

    def _on_alloc(self, msg) -> None:
        self.last_alloc = msg
        n = len(msg.stream_ids)
        if n and msg.depth:
            self.alloc_counts.append(np.asarray(msg.active_blocks, dtype=bool).reshape(n, msg.depth).sum(1))

    def _on_qoi(self, msg) -> None:
        if msg.stream_id in self.qoi_counts:
            self.qoi_counts[msg.stream_id] += 1

    def _on_truth(self, msg) -> None:
        k = self._key(msg.header.stamp)
        self.truth[k] = self.task.read_truth(msg)
        if k in self.pending:
            self.scores.append(self.task.score(self.pending.pop(k), self.truth[k]))
        if len(self.truth) > 600:
            for old in sorted(self.truth)[:300]:
                del self.truth[old]

    def _on_estimate(self, msg) -> None:
        self.estimates += 1
        now = self.node.get_clock().now().nanoseconds * 1e-9
        self.latencies.append(now - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))
        k, est = self._key(msg.header.stamp), self.task.read_output(msg)
        self.last = (k, est)
        if k in self.truth:
            self.scores.append(self.task.score(est, self.truth[k]))
        else:
            self.pending[k] = est
            if len(self.pending) > 300:
                del self.pending[min(self.pending)]

    def line(self, elapsed: float) -> str:
        """One live status line: sensor rates, the last estimate, metric and latency, the last allocation."""
        rates = [c / max(elapsed, 1e-6) for c in self.qoi_counts.values()]
        parts = [f"t={elapsed:5.1f}s", f"sensors {min(rates):4.1f}-{max(rates):4.1f} Hz x{len(rates)}"]
        if self.last is not None:
            k, est = self.last
            parts += [f"estimates {self.estimates}", self.task.text(est, self.truth.get(k)),
                      f"latency p50 {1000 * np.median(self.latencies[-30:]):5.1f} ms"]
            if self.scores:
                parts.append(f"{self.task.metric.name}(last30) {self.task.metric.fmt(np.mean(self.scores[-30:]))}")
        if self.last_alloc is not None:
            parts.append(allocation_text(self.last_alloc))
        return " | ".join(parts)

    def summary(self, elapsed: float) -> str:
        """The summary at the end: duration, sensor rates, estimates, metric, latency, mean blocks."""
        m, unit = self.task.metric, self.task.unit
        lines = summary_head(f"== admn_ros {self.task.name} demo summary ==", self.qoi_counts, elapsed)
        lines.append(f"estimates       {self.estimates} ({self.estimates / max(elapsed, 1e-6):.1f} Hz)")
        if self.scores:
            lines.append(f"{m.name:<15} {m.describe(self.scores)} over {len(self.scores)} {unit}s "
                         f"({self.task.output.topic} vs {self.task.truth.topic} at the same stamp)")
        if self.latencies:
            lat = 1000 * np.asarray(self.latencies)
            lines.append(f"latency         p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms "
                         "(newest frame's stamp -> estimate received)")
        if self.alloc_counts and self.last_alloc is not None:
            mean = np.mean(self.alloc_counts, axis=0)
            lines.append("mean blocks     " + ", ".join(
                f"{sid} {v:.1f}" for sid, v in zip(self.last_alloc.stream_ids, mean)))
        return "\n".join(lines)


def _run(argv: Sequence[str], prog: str, monitor: bool) -> int:
    argv = list(argv)
    if "--container-specs" in argv:  # internal: composed child
        i = argv.index("--container-specs")
        isolated_env()
        return compose(_decode_specs(argv[i + 1]))
    a = parse_args(prog, argv)
    env = dict(isolated_env(dict(os.environ)))
    os.environ.update(env)
    specs = graph_specs(a)
    sensor_args = [s.strip() for s in a.sensor_args.split(";") if s.strip()]
    print(f"[{prog}] ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} discovery={env['ROS_AUTOMATIC_DISCOVERY_RANGE']} "
          f"{a.task} graph nodes: {', '.join(s.name for s in specs)}{' (composed)' if a.composed else ''}",
          flush=True)
    procs = GraphProcesses()
    rc = 0
    t0 = time.monotonic()
    mon = None
    node = None
    stop = {"flag": False}

    def _sigterm(*_):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        procs.start(specs, a.composed, env, a.quiet, sensor_args)
        import rclpy

        rclpy.init()
        node = rclpy.create_node("admn_monitor", namespace=a.namespace or None)
        from admn_ros.core.streams import StreamSet

        ids = StreamSet(nodes=tuple(s for s in a.sensor_nodes.split(",") if s)).ids
        if monitor:
            mon = Monitor(node, ids, get_task(a.task))
        next_print = t0 + 1.0
        while not stop["flag"]:
            rclpy.spin_once(node, timeout_sec=0.05)
            now = time.monotonic()
            if a.duration and now - t0 >= a.duration:
                break
            dead = procs.dead()
            if dead:
                print(f"[{prog}] node process(es) exited: {dead}", file=sys.stderr, flush=True)
                rc = 1
                break
            if mon is not None and now >= next_print:
                print(mon.line(now - t0), flush=True)
                next_print = now + 1.0
    except KeyboardInterrupt:
        pass
    finally:
        procs.stop()
        if mon is not None:
            print(mon.summary(time.monotonic() - t0), flush=True)
        if node is not None:
            node.destroy_node()
        try:
            import rclpy

            if rclpy.ok():
                rclpy.shutdown()
        except Exception:  # noqa: BLE001
            pass
    return rc


def run_main(argv: Sequence[str] | None = None) -> int:
    return _run(sys.argv[1:] if argv is None else argv, "admn-ros run", monitor=False)


def demo_main(argv: Sequence[str] | None = None) -> int:
    return _run(sys.argv[1:] if argv is None else argv, "admn-ros demo", monitor=True)


if __name__ == "__main__":
    sys.exit(run_main())
