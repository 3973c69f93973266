"""Start the ADMN graph where ``ros2 launch`` is not available, and the live demo.

``admn-ros run`` starts the processes of :func:`~admn_ros.ros.graph.graph_processes` (localhost discovery,
the shipped FastDDS profile, a ROS_DOMAIN_ID of its own); ``admn-ros demo`` adds a :class:`~admn_ros.ros.demo.Monitor`.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import subprocess
import sys
import threading
import time
from dataclasses import fields
from typing import Any, Sequence

from admn_ros.core.streams import StreamSet
from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task
from admn_ros.ros.env import isolated_env, make_executor, run_process, stop_process_groups
from admn_ros.ros.graph import (CONTAINER, GraphOptions, NodeSpec, ProcessSpec, build_graph, decode_specs,
                                graph_processes)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("``", ""),
                                usage=f"{prog} [{'|'.join(TASKS)}] [options]")
    p.add_argument("--task", choices=list(TASKS), default=None,
                   help=f"which graph: {' or '.join(TASKS)} (default {DEFAULT_TASK}; also as the first argument)")
    per_task = "; ".join  # one help fragment per registered task

    p.add_argument("--budget", type=int, default=None, help="layer budget L; 0 = 25%% of the model's blocks "
                   f"(default: {per_task(f'{t.name} {t.budget}' for t in TASKS.values())})")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default 0: until "
                   "Ctrl-C; demo: until the scenario ends)")
    p.add_argument("--namespace", default="", help="namespace for every node (default: none)")
    p.add_argument("--params-file", default="", help="ADMN node parameters (default: config/<task>.yaml)")
    p.add_argument("--model-dir", default="", help="models directory (default: the task's shipped models: "
                   f"{per_task(f'{t.name} models/{t.models_subdir}' for t in TASKS.values())})")
    p.add_argument("--sensor-nodes", default=None, help="comma-separated sensor node names (default: "
                   f"{per_task(t.name + ' ' + ','.join(t.sensor_nodes) for t in TASKS.values())})")
    p.add_argument("--subject-id", type=int, default=0, help="simulated sensors: the subject (activity; default 0)")
    p.add_argument("--seed", type=int, default=0, help="simulated sensors: seed (scene, subject; default 0)")
    p.add_argument("--episode", type=int, default=0, help="simulated sensors: episode (default 0)")
    p.add_argument("--allocation-mode", choices=["per_frame", "pipelined"], default="per_frame",
                   help="per_frame (default): backbones wait for the frame's allocation; pipelined: use the latest")
    p.add_argument("--composed", action="store_true", help="run the ADMN nodes in one process")
    p.add_argument("--no-sim-sensors", action="store_true", help="do not start the simulated sensors")
    p.add_argument("--use-sim-time", action="store_true", help="use /clock (bag replay)")
    p.add_argument("--no-respawn", action="store_true", help="do not restart node processes that die "
                   "(default: restart them, like the launch files' respawn:=true)")
    p.add_argument("--respawn-delay", type=float, default=0.5, help="seconds before a died node is restarted "
                   "(default 0.5)")
    p.add_argument("--sensor-args", default="", help="extra sensor_node parameters separated by ';', e.g. "
                   "'corruption.node1.rgb:=gaussian:sigma=3.0'")
    p.add_argument("--quiet", action="store_true", help="do not forward node logs")
    p.add_argument("--scenario", default="", help="demo: scenario YAML of sensor failures in phases "
                   "(default: config/demo_<task>.yaml; 'none': all clean until --duration or Ctrl-C)")
    p.add_argument("--out", default="out/demo", help="demo: folder of the picture and the JSON summary "
                   "(default out/demo)")
    p.add_argument("--compare", type=int, default=300, help="demo: frames on which Naive Allocation and the "
                   "Upper Bound are computed after the run (spread evenly; default 300; 0 = no comparison)")
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
    for flag in ("duration", "respawn_delay", "compare"):
        if not getattr(a, flag) >= 0:
            build_parser(prog).error(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(a, flag)}")
    try:
        StreamSet(nodes=[s for s in a.sensor_nodes.split(",") if s])
    except ValueError as exc:
        build_parser(prog).error(f"--sensor-nodes {a.sensor_nodes!r}: {exc}")
    return a


def options_from_args(a: argparse.Namespace) -> GraphOptions:
    """The graph options of :func:`parse_args`' result (options and fields share their names)."""
    same = {f.name: getattr(a, f.name) for f in fields(GraphOptions) if hasattr(a, f.name)}
    return GraphOptions(**{**same, "sensor_nodes": tuple(s for s in a.sensor_nodes.split(",") if s),
                           "sim_sensors": not a.no_sim_sensors, "respawn": not a.no_respawn})


#: exit code of a node whose parameters or models are invalid (restarting cannot help)
CONFIG_ERROR = 2


class GraphProcesses:
    """Child processes of a running graph (:func:`admn_ros.ros.graph.graph_processes`). A process with
    ``respawn`` that exits is restarted after its ``respawn_delay`` by a supervising thread, as
    launch_ros does (:attr:`restarts`), unless it exited with :data:`CONFIG_ERROR`. :meth:`stop`
    ends them all (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        #: ``(name, exit code, monotonic time of the new start)`` of every respawn
        self.restarts: list[tuple[str, int, float]] = []
        self._specs: dict[str, tuple[ProcessSpec, dict, Any, list[str]]] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._readers: dict[str, threading.Thread] = {}
        #: with ``quiet``: the last ``error:`` line each process printed (its output is not forwarded)
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, specs: Sequence[NodeSpec], composed: bool, env: dict, quiet: bool,
              sensor_args: Sequence[str] = (), respawn: bool = False, respawn_delay: float = 0.5) -> None:
        """Start the processes of ``specs``; ``sensor_args`` are extra ``-p`` parameters of the sensors."""
        processes = graph_processes(list(specs), composed, respawn, respawn_delay)
        out = subprocess.DEVNULL if quiet else None
        for p in processes:
            extra = [x for a in sensor_args if a for x in ("-p", a)] if p.executable == "sensor_node" else []
            self._specs[p.name] = (p, env, out, extra)
            self._spawn(p.name)
        if any(p.respawn for p in processes) and self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name="respawn", daemon=True)
            self._thread.start()

    def _spawn(self, name: str) -> None:
        p, env, out, extra = self._specs[name]
        proc = subprocess.Popen(p.command(sys.executable) + extra, env=env, stdout=out, start_new_session=True,
                                stderr=None if out is None else subprocess.PIPE, text=True, errors="replace")
        if proc.stderr is not None:
            self._readers[name] = threading.Thread(target=self._keep_errors, args=(name, proc.stderr), daemon=True)
            self._readers[name].start()
        with self._lock:
            self.procs = [(n, q) for n, q in self.procs if n != name] + [(name, proc)]

    def _keep_errors(self, name: str, stream: Any) -> None:
        for line in stream:
            if "] error: " in line:
                self.errors[name] = line.strip()

    def reasons(self, procs: Sequence[tuple[str, int]]) -> str:
        """The :attr:`errors` of the exited ``procs`` (once their output is read), one indented line each."""
        for name, _ in procs:
            if name in self._readers:
                self._readers[name].join(timeout=2.0)
        return "".join(f"\n  {self.errors[n]}" for n, _ in procs if n in self.errors)

    def _supervise(self) -> None:
        due: dict[str, tuple[float, int]] = {}
        while not self._stopping.wait(0.02):
            now = time.monotonic()
            for name, proc in list(self.procs):
                spec = self._specs.get(name, (None,))[0]
                if spec is None or not spec.respawn or proc.poll() in (None, CONFIG_ERROR) or name in due:
                    continue
                due[name] = (now + spec.respawn_delay, proc.returncode)
                print(f"[admn_ros] {name} exited with code {proc.returncode}; restarting in "
                      f"{spec.respawn_delay:g} s", file=sys.stderr, flush=True)
            for name, (t, code) in list(due.items()):
                if now >= t and not self._stopping.is_set():
                    self._spawn(name)
                    self.restarts.append((name, code, time.monotonic()))
                    del due[name]

    def dead(self) -> list[tuple[str, int]]:
        """Exited processes that will not be restarted."""
        return [(n, p.returncode) for n, p in self.procs if p.poll() is not None and (
            p.returncode == CONFIG_ERROR or not (n in self._specs and self._specs[n][0].respawn))]

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        # SIGTERM: a node process still importing ends without a KeyboardInterrupt traceback (run_process)
        stop_process_groups([p for _, p in self.procs], timeout, signal.SIGTERM)


def compose(specs: Sequence[NodeSpec], ros_args: Sequence[str] = ()) -> int:
    """Instantiate every spec's node class in this process and spin them together, then end the process;
    ``ros_args`` (the container's own remappings and parameters, e.g. from launch_ros
    ``SetRemap``/``SetParameter``) apply to every node after its own. One thread: with the GIL a
    multi-threaded executor only adds contention (measured: p50/p99 64/230 ms at 0.44 cores vs 91/379 ms
    at 0.75 cores)."""
    def make() -> list[Any]:
        return [getattr(importlib.import_module(s.module), s.node_class)(
            cli_args=s.ros_args() + list(ros_args), use_global_arguments=False) for s in specs]

    return run_process(make, CONTAINER, (ValueError, OSError, KeyError))


def _container_ros_args(ros: Sequence[str]) -> list[str]:
    """The container's ``--ros-args`` minus its own name and namespace, for its nodes."""
    out: list[str] = []
    for a in (a for a in ros if a != "--ros-args"):
        if out and out[-1] in ("-r", "--remap") and a.split(":=")[0] in ("__node", "__ns"):
            out.pop()
        else:
            out.append(a)
    return out


def container_main(argv: Sequence[str] | None = None) -> int:
    """``admn_container``: the composed nodes given as ``--container-specs`` JSON (what the
    launch files and ``admn-ros run --composed`` pass)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    k = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    argv, ros = argv[:k], _container_ros_args(argv[k:])
    if "--container-specs" not in argv[:-1]:
        print("[admn_container] error: --container-specs JSON is missing", file=sys.stderr, flush=True)
        return 2
    isolated_env()
    return compose(decode_specs(argv[argv.index("--container-specs") + 1]), ros)


def _ros_parameters(doc: Any) -> bool:
    """Whether every branch of the YAML ``doc`` ends in a ``ros__parameters`` mapping."""
    return isinstance(doc, dict) and bool(doc) and all(
        isinstance(v, dict) if k == "ros__parameters" else _ros_parameters(v) for k, v in doc.items())


def _run(argv: Sequence[str], prog: str, monitor: bool) -> int:
    from admn_ros.core.paths import config_path, read_yaml
    from admn_ros.core.sim.timeline import Timeline

    a = parse_args(prog, argv)
    opts = options_from_args(a)
    ids = StreamSet(nodes=opts.sensor_nodes).ids
    sensor_args = [s.strip() for s in a.sensor_args.split(";") if s.strip()]
    scenario_file = a.scenario or config_path(f"demo_{a.task}.yaml")
    try:  # the parameter file and the demo's scenario (--scenario), before any node starts
        if a.params_file and not _ros_parameters(read_yaml(a.params_file, "parameter file")):
            raise ValueError(f"{a.params_file}: not a ROS 2 parameter file: expected '/**:' or node names over "
                             f"'ros__parameters:' (as in config/{a.task}.yaml)")
        scenario = Timeline.load(scenario_file, ids) if monitor and a.scenario != "none" else None
        corrupt = [s for s in sensor_args if s.startswith("corruption.")]
        if scenario is not None and corrupt:
            raise ValueError(f"--sensor-args {'; '.join(corrupt)}: the scenario {scenario_file} sets every "
                             "stream's corruption in its phases; add --scenario none to corrupt streams yourself")
    except ValueError as exc:
        print(f"[{prog}] error: {exc}", file=sys.stderr, flush=True)
        return 2
    env = dict(isolated_env())
    specs = build_graph(opts)
    print(f"[{prog}] ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']} discovery={env['ROS_AUTOMATIC_DISCOVERY_RANGE']} "
          f"{a.task} graph nodes: {', '.join(s.name for s in specs)}{' (composed)' if a.composed else ''}",
          flush=True)
    procs = GraphProcesses()
    rc, t0, mon, node = 0, time.monotonic(), None, None
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    try:
        procs.start(specs, a.composed, env, a.quiet, sensor_args, not a.no_respawn, a.respawn_delay)
        import rclpy
        from rclpy.signals import SignalHandlerOptions

        rclpy.init(signal_handler_options=SignalHandlerOptions.SIGINT)  # SIGTERM: the stop flag above
        node = rclpy.create_node("admn_monitor", namespace=a.namespace or None)
        ex = make_executor()
        ex.add_node(node)
        if monitor:
            from admn_ros.ros.demo import Monitor

            mon = Monitor(node, ids, get_task(a.task), scenario)
        next_print = t0 + 1.0
        while not stop["flag"] and not (a.duration and time.monotonic() - t0 >= a.duration):
            ex.spin_once(timeout_sec=0.05)
            now, dead = time.monotonic(), procs.dead()
            why = f"node process(es) exited: {dead}{procs.reasons(dead)}" if dead else None
            if mon is not None and now >= next_print and not why:
                print(mon.line(now - t0), flush=True)
                next_print = now + 1.0
                refused = mon.check_scenario()
                why = f"the sensor node did not take the scenario: {refused}" if refused else None
            if why:
                print(f"[{prog}] {why}", file=sys.stderr, flush=True)
                rc = CONFIG_ERROR if any(code == CONFIG_ERROR for _, code in dead) else 1
                break
            if mon is not None and mon.done():
                break
    except KeyboardInterrupt:
        pass
    finally:
        procs.stop()
        if mon is not None and mon.estimates:
            print(mon.finish(time.monotonic() - t0, a.out, opts.resolved_model_dir(), a.compare), flush=True)
        elif mon is not None and not rc:
            print(f"[{prog}] no estimate received: no report written", flush=True)
        if node is not None:
            node.destroy_node()
        if "rclpy" in sys.modules:
            sys.modules["rclpy"].try_shutdown()
    return rc


def run_main(argv: Sequence[str] | None = None) -> int:
    return _run(sys.argv[1:] if argv is None else argv, "admn-ros run", monitor=False)


def demo_main(argv: Sequence[str] | None = None) -> int:
    return _run(sys.argv[1:] if argv is None else argv, "admn-ros demo", monitor=True)


if __name__ == "__main__":  # admn_container as ProcessSpec.command starts it
    sys.exit(container_main())
