"""The node graphs as data (no rclpy, no launch imports), the processes the launch files and ``admn-ros run``
both start; docs/ARCHITECTURE.md, "Launch file and local runner: one graph"."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from admn_ros.core.paths import config_path
from admn_ros.core.tasks import DEFAULT_TASK, get_task


@dataclass
class NodeSpec:
    """One node of the graph: ``executable`` under ``lib/admn_ros``; ``module`` with ``main()`` and
    ``node_class`` (composing); parameter files applied in order, then ``parameters``."""

    name: str
    executable: str
    module: str
    node_class: str
    namespace: str = ""
    params_files: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: list[tuple[str, str]] = field(default_factory=list)

    def ros_args(self) -> list[str]:
        return [*_name_args(self.name, self.namespace),
                *[x for f in self.params_files for x in ("--params-file", f)],
                *[x for k, v in self.parameters.items() for x in ("-p", f"{k}:={_param_literal(v)}")],
                *[x for a, b in self.remappings for x in ("-r", f"{a}:={b}")]]


def _name_args(name: str, namespace: str) -> list[str]:
    args = ["--ros-args", "-r", f"__node:={name}"]
    if namespace:
        args += ["-r", f"__ns:={namespace if namespace.startswith('/') else '/' + namespace}"]
    return args


def _param_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_param_literal(x) for x in v) + "]"
    if isinstance(v, str):
        return v if v else "''"
    return repr(v)


@dataclass
class GraphOptions:
    """What a user chooses at launch (:data:`LAUNCH_ARGUMENTS`), for any task; ``None`` / '' take
    the task's defaults (budget, sensor nodes, ``config/<task>.yaml``, shipped models)."""

    task: str = DEFAULT_TASK
    namespace: str = ""
    params_file: str = ""
    budget: int | None = None
    use_sim_time: bool = False
    use_rviz: bool = False
    sim_sensors: bool = True
    sensor_nodes: tuple[str, ...] | None = None
    model_dir: str = ""
    allocation_mode: str = "per_frame"  # or "pipelined"
    composed: bool = False
    subject_id: int = 0
    seed: int = 0
    episode: int = 0
    respawn: bool = True
    respawn_delay: float = 0.5

    def __post_init__(self) -> None:
        t = get_task(self.task)
        self.task = t.name
        self.budget = t.budget if self.budget is None else int(self.budget)
        self.sensor_nodes = tuple(t.sensor_nodes if self.sensor_nodes is None else self.sensor_nodes)

    def resolved_params_file(self) -> str:
        return self.params_file or str(config_path(get_task(self.task).params_file))

    def resolved_model_dir(self) -> str:
        return self.model_dir or str(get_task(self.task).models_dir())

    @classmethod
    def from_strings(cls, task: str, values: dict[str, str]) -> "GraphOptions":
        """Options from launch argument strings (:data:`LAUNCH_ARGUMENTS`; absent = default)."""
        kinds = {f.name: f.type for f in fields(cls)}

        def parse(k: str, v: str) -> Any:
            kind = kinds[k]
            if kind == "bool":
                return v.strip().lower() in ("1", "true", "yes", "on")
            if k == "sensor_nodes":
                return tuple(s.strip() for s in v.split(",") if s.strip())
            return int(v) if kind.startswith("int") else float(v) if kind == "float" else v
        return cls(task=task, **{k: parse(k, v) for k, v in values.items()})


#: Launch arguments (``ros2 launch admn_ros <task>.launch.py name:=value``): GraphOptions fields
#: and their descriptions; the defaults are the task's (:func:`launch_arguments`).
LAUNCH_ARGUMENTS: dict[str, str] = {
    "namespace": "Namespace for every node of the graph",
    "params_file": "YAML parameters (/**: ros__parameters:) of the ADMN nodes ('' = the task's config/<task>.yaml)",
    "model_dir": "Directory with the model and its controllers ('' = the package's models of the task)",
    "budget": "Layer budget L: active backbone blocks over all streams (tracking 27 = 25% of 9 x 12; "
              "activity 0 = 25% of the model's blocks)",
    "use_sim_time": "Use /clock (true for rosbag replay)",
    "use_rviz": "Start RViz with config/admn.rviz",
    "sim_sensors": "Start the simulated sensors of the task (false on a robot with real sensors)",
    "sensor_nodes": "Comma-separated sensor node names of the model (tracking: one backbone node each)",
    "allocation_mode": "Split graph: per_frame (backbones wait for the frame's allocation) or pipelined "
                       "(latest allocation)",
    "composed": "Run the ADMN nodes composed in one process (admn_container); simulated sensors stay separate",
    "respawn": "Restart a node process that died (launch_ros respawn)",
    "respawn_delay": "Seconds before a died node process is restarted",
    "subject_id": "Simulated sensors: the subject (activity)",
    "seed": "Simulated sensors: random seed of the scene and the subject",
    "episode": "Simulated sensors: episode",
}


def launch_arguments(task: str) -> list[tuple[str, str, str]]:
    """``(name, default, description)`` of every launch argument, defaults from ``task``."""
    opts = GraphOptions(task=task)
    lit = {bool: lambda v: "true" if v else "false", tuple: ",".join}
    return [(n, lit.get(type(getattr(opts, n)), str)(getattr(opts, n)), d) for n, d in LAUNCH_ARGUMENTS.items()]


def _spec(name: str, exe: str, cls: str, opts: GraphOptions, pf: list[str], params: dict[str, Any]) -> NodeSpec:
    return NodeSpec(name, exe, f"admn_ros.ros.{exe}", cls, opts.namespace, pf, params)


def _sensor_spec(opts: GraphOptions, params_files: list[str]) -> NodeSpec:
    return _spec("sensor_node", "sensor_node", "SensorNode", opts, params_files,
                 {"use_sim_time": opts.use_sim_time, "scenario": opts.task, "nodes": list(opts.sensor_nodes),
                  "subject_id": int(opts.subject_id), "seed": int(opts.seed), "episode": int(opts.episode)})


def split_graph(opts: GraphOptions) -> list[NodeSpec]:
    """Sensors (optional, simulated) -> controller -> one backbone per sensor node -> fusion -> viz
    (tasks with one frame per window)."""
    common = {"use_sim_time": opts.use_sim_time}
    pf = [opts.resolved_params_file()]
    model = {**common, "model_dir": opts.resolved_model_dir()}
    nodes = list(opts.sensor_nodes)
    specs = [_sensor_spec(opts, [str(config_path("sensor_node.yaml"))])] if opts.sim_sensors else []
    specs.append(_spec("controller_node", "controller_node", "ControllerNode", opts, pf,
                       {**model, "budget": int(opts.budget), "sensor_nodes": nodes}))
    specs += [_spec(f"backbone_{sn}", "backbone_node", "BackboneNode", opts, pf,
                    {**model, "sensor_node": sn, "allocation_mode": opts.allocation_mode}) for sn in nodes]
    specs.append(_spec("fusion_node", "fusion_node", "FusionNode", opts, pf, {**model, "sensor_nodes": nodes}))
    specs.append(_spec("viz_node", "viz_node", "VizNode", opts, pf, {**common, "sensor_nodes": nodes}))
    return specs


def window_graph(opts: GraphOptions) -> list[NodeSpec]:
    """Sensors (optional, simulated) -> activity_node, which runs the whole window and draws its
    own markers and dashboard (the topics ``config/admn.rviz`` shows)."""
    pf = [opts.resolved_params_file()]
    specs = [_sensor_spec(opts, pf)] if opts.sim_sensors else []
    specs.append(_spec("activity_node", "activity_node", "ActivityNode", opts, pf,
                       {"use_sim_time": opts.use_sim_time, "task": opts.task, "model_dir": opts.resolved_model_dir(),
                        "budget": int(opts.budget), "sensor_nodes": list(opts.sensor_nodes),
                        "ground_truth": bool(opts.sim_sensors)}))
    return specs


#: Graph layouts (:attr:`Task.graph`): builder, and how many nodes read each image topic.
GRAPHS: dict[str, tuple[Callable[[GraphOptions], list[NodeSpec]], int]] = {
    "split": (split_graph, 2), "window": (window_graph, 1)}


def build_graph(opts: GraphOptions) -> list[NodeSpec]:
    return GRAPHS[get_task(opts.task).graph][0](opts)


@dataclass
class ProcessSpec:
    """One process of a running graph: a node (``node``), or ``admn_container`` with the composed
    nodes as ``--container-specs`` JSON in ``arguments``."""

    name: str
    executable: str
    module: str
    namespace: str = ""
    node: NodeSpec | None = None
    arguments: list[str] = field(default_factory=list)
    respawn: bool = False
    respawn_delay: float = 0.0

    def command(self, python: str) -> list[str]:
        """``python -m module ...`` with the ``--ros-args`` launch_ros would give the executable."""
        ros = self.node.ros_args() if self.node is not None else _name_args(self.name, self.namespace)
        return [python, "-m", self.module, *self.arguments, *ros]


CONTAINER = "admn_container"


def graph_processes(specs: list[NodeSpec], composed: bool = False, respawn: bool = False,
                    respawn_delay: float = 0.0) -> list[ProcessSpec]:
    """The processes that run ``specs``: one per node, or with ``composed`` the simulated
    sensors apart and every other node in one ``admn_container``."""
    def proc(s: NodeSpec) -> ProcessSpec:
        return ProcessSpec(s.name, s.executable, s.module, s.namespace, node=s, respawn=respawn,
                           respawn_delay=respawn_delay)
    if not composed:
        return [proc(s) for s in specs]
    inner = [s for s in specs if s.executable != "sensor_node"]
    out = [proc(s) for s in specs if s.executable == "sensor_node"]
    if inner:
        out.append(ProcessSpec(CONTAINER, CONTAINER, "admn_ros.ros.runner", inner[0].namespace,
                               arguments=["--container-specs", encode_specs(inner)], respawn=respawn,
                               respawn_delay=respawn_delay))
    return out


def options_processes(opts: GraphOptions) -> list[ProcessSpec]:
    """:func:`graph_processes` of :func:`build_graph` with the options' composition and respawn."""
    return graph_processes(build_graph(opts), opts.composed, opts.respawn, opts.respawn_delay)


def encode_specs(specs: list[NodeSpec]) -> str:
    return json.dumps([asdict(s) for s in specs], separators=(",", ":"))


def decode_specs(blob: str) -> list[NodeSpec]:
    return [NodeSpec(**{**d, "remappings": [tuple(r) for r in d["remappings"]]}) for d in json.loads(blob)]
