"""The node graphs as data (no rclpy, no launch imports).

``launch/tracking.launch.py`` / ``launch/activity.launch.py`` turn these specs into
``launch_ros`` ``Node`` actions on robots; :mod:`admn_ros.ros.runner` starts the very
same specs as processes (or composed in one process) where ``launch`` is not installed.
One description, two starters, so both always start the same graph.

:func:`build_graph` builds the graph of :class:`GraphOptions` ``task`` from its layout
(:attr:`~admn_ros.core.tasks.base.Task.graph`):

* ``split`` (:func:`split_graph`, tracking): sensors -> controller -> backbones -> fusion -> viz;
* ``window`` (:func:`window_graph`, activity): sensors -> activity_node (the whole window in
  one node: estimate, allocation, markers and dashboard).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from admn_ros.core.paths import config_path
from admn_ros.core.tasks import DEFAULT_TASK, get_task


@dataclass
class NodeSpec:
    """One node of the graph.

    Attributes:
        name: ROS node name.
        executable: name under ``lib/admn_ros`` (``ros2 run admn_ros <executable>``).
        module: Python module with ``main()`` and the node class (for the local runner).
        node_class: class name inside ``module`` (for composing in one process).
        namespace: ROS namespace ("" = root).
        params_files: YAML parameter files (``/**: ros__parameters:``), applied in order.
        parameters: parameter overrides applied after the files.
        remappings: ``(from, to)`` topic remappings.
    """

    name: str
    executable: str
    module: str
    node_class: str
    namespace: str = ""
    params_files: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: list[tuple[str, str]] = field(default_factory=list)

    def ros_args(self) -> list[str]:
        """Command-line ``--ros-args`` for starting this spec as a process."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace if self.namespace.startswith('/') else '/' + self.namespace}"]
        for f in self.params_files:
            args += ["--params-file", f]
        for k, v in self.parameters.items():
            args += ["-p", f"{k}:={_param_literal(v)}"]
        for a, b in self.remappings:
            args += ["-r", f"{a}:={b}"]
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
    """What a user chooses at launch (mirrors the launch arguments), for any task.

    ``task`` picks the graph (:attr:`Task.graph`) and the defaults: ``budget`` ``None`` = the
    task's (tracking 27 = 25% of 9 streams x 12; activity 0 = 25% of the model's blocks),
    ``sensor_nodes`` ``None`` = the task's (node1-3 / node1), ``params_file`` '' = the task's
    ``config/<task>.yaml``, ``model_dir`` '' = its shipped models. ``allocation_mode`` and
    ``composed`` concern the split graph; ``subject_id`` / ``seed`` / ``episode`` the
    simulated sensors.
    """

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

    def __post_init__(self) -> None:
        t = get_task(self.task)
        self.task = t.name
        self.budget = t.budget if self.budget is None else int(self.budget)
        self.sensor_nodes = tuple(t.sensor_nodes if self.sensor_nodes is None else self.sensor_nodes)

    def resolved_params_file(self) -> str:
        """``params_file``, or the task's shipped parameter file."""
        return self.params_file or str(config_path(get_task(self.task).params_file))

    def resolved_model_dir(self) -> str:
        """``model_dir``, or the task's shipped models directory."""
        return self.model_dir or str(get_task(self.task).models_dir())

    def to_cli_args(self) -> list[str]:
        """These options as ``admn-ros run`` / ``admn_container`` flags."""
        a = ["--task", self.task, "--budget", str(self.budget), "--sensor-nodes", ",".join(self.sensor_nodes),
             "--allocation-mode", self.allocation_mode, "--subject-id", str(self.subject_id),
             "--seed", str(self.seed), "--episode", str(self.episode)]
        if self.namespace:
            a += ["--namespace", self.namespace]
        if self.params_file:
            a += ["--params-file", self.params_file]
        if self.model_dir:
            a += ["--model-dir", self.model_dir]
        if self.use_sim_time:
            a.append("--use-sim-time")
        if not self.sim_sensors:
            a.append("--no-sim-sensors")
        return a


def _sensor_spec(opts: GraphOptions, params_files: list[str]) -> NodeSpec:
    """The simulated sensors of the task's scenario."""
    return NodeSpec("sensor_node", "sensor_node", "admn_ros.ros.sensor_node", "SensorNode", opts.namespace,
                    params_files, {"use_sim_time": opts.use_sim_time, "scenario": opts.task,
                                   "nodes": list(opts.sensor_nodes), "subject_id": int(opts.subject_id),
                                   "seed": int(opts.seed), "episode": int(opts.episode)})


def split_graph(opts: GraphOptions) -> list[NodeSpec]:
    """Sensors (optional, simulated) -> controller -> one backbone per sensor node -> fusion -> viz
    (tasks with one frame per window)."""
    common = {"use_sim_time": opts.use_sim_time}
    pf = [opts.resolved_params_file()]
    model = {"model_dir": opts.resolved_model_dir()}
    nodes = list(opts.sensor_nodes)
    specs = [_sensor_spec(opts, [str(config_path("sensor_node.yaml"))])] if opts.sim_sensors else []
    specs.append(NodeSpec("controller_node", "controller_node", "admn_ros.ros.controller_node",
                          "ControllerNode", opts.namespace, pf,
                          {**common, **model, "budget": int(opts.budget), "sensor_nodes": nodes}))
    for sn in nodes:
        specs.append(NodeSpec(f"backbone_{sn}", "backbone_node", "admn_ros.ros.backbone_node",
                              "BackboneNode", opts.namespace, pf,
                              {**common, **model, "sensor_node": sn, "allocation_mode": opts.allocation_mode}))
    specs.append(NodeSpec("fusion_node", "fusion_node", "admn_ros.ros.fusion_node", "FusionNode",
                          opts.namespace, pf, {**common, **model, "sensor_nodes": nodes}))
    specs.append(NodeSpec("viz_node", "viz_node", "admn_ros.ros.viz_node", "VizNode", opts.namespace, pf,
                          {**common, "sensor_nodes": nodes}))
    return specs


def window_graph(opts: GraphOptions) -> list[NodeSpec]:
    """Sensors (optional, simulated) -> activity_node, which runs the whole window and draws its
    own markers and dashboard (``admn/markers``, ``admn/dashboard``: the topics
    ``config/admn.rviz`` shows)."""
    pf = [opts.resolved_params_file()]
    specs = [_sensor_spec(opts, pf)] if opts.sim_sensors else []
    specs.append(NodeSpec("activity_node", "activity_node", "admn_ros.ros.activity_node", "ActivityNode",
                          opts.namespace, pf,
                          {"use_sim_time": opts.use_sim_time, "model_dir": opts.resolved_model_dir(),
                           "budget": int(opts.budget), "sensor_nodes": list(opts.sensor_nodes),
                           "ground_truth": bool(opts.sim_sensors)}))
    return specs


#: Graph layouts (:attr:`Task.graph`): builder, and how many nodes read each image topic.
GRAPHS: dict[str, tuple[Callable[[GraphOptions], list[NodeSpec]], int]] = {
    "split": (split_graph, 2), "window": (window_graph, 1)}


def build_graph(opts: GraphOptions) -> list[NodeSpec]:
    """The node specs of ``opts.task``'s graph."""
    return GRAPHS[get_task(opts.task).graph][0](opts)


def rviz_config() -> Path:
    return config_path("admn.rviz")
