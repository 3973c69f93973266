"""The node graphs as data (no rclpy, no launch imports).

``launch/tracking.launch.py`` / ``launch/activity.launch.py`` turn these specs into
``launch_ros`` ``Node`` actions on robots; :mod:`admn_ros.ros.runner` starts the very
same specs as processes (or composed in one process) where ``launch`` is not installed.
One description, two starters, so both always start the same graph.

* :func:`tracking_graph` (:class:`GraphOptions`): sensors -> controller -> backbones -> fusion -> viz;
* :func:`activity_graph` (:class:`ActivityGraphOptions`): sensors (activity scenario) ->
  activity_node (label, allocation, markers and dashboard).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from admn_ros.core.paths import activity_models_dir, config_path, models_dir
from admn_ros.core.streams import DEFAULT_NODES


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
    """What a user chooses at launch (mirrors the launch arguments)."""

    namespace: str = ""
    params_file: str = ""
    budget: int = 27
    use_sim_time: bool = False
    use_rviz: bool = False
    sim_sensors: bool = True
    sensor_nodes: tuple[str, ...] = DEFAULT_NODES
    model_dir: str = ""
    allocation_mode: str = "per_frame"  # or "pipelined"
    composed: bool = False

    def to_cli_args(self) -> list[str]:
        """These options as ``admn-ros run`` / ``admn_container`` flags."""
        a = ["--budget", str(self.budget), "--allocation-mode", self.allocation_mode,
             "--sensor-nodes", ",".join(self.sensor_nodes)]
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

    def resolved_params_file(self) -> str:
        return self.params_file or str(config_path("tracking.yaml"))

    def resolved_model_dir(self) -> str:
        return self.model_dir or str(models_dir())


def tracking_graph(opts: GraphOptions) -> list[NodeSpec]:
    """Sensor (optional, simulated) -> controller -> one backbone per sensor node -> fusion -> viz."""
    common = {"use_sim_time": opts.use_sim_time}
    pf = [opts.resolved_params_file()]
    model = {"model_dir": opts.resolved_model_dir()}
    specs: list[NodeSpec] = []
    if opts.sim_sensors:
        specs.append(NodeSpec("sensor_node", "sensor_node", "admn_ros.ros.sensor_node", "SensorNode",
                              opts.namespace, [str(config_path("sensor_node.yaml"))],
                              {**common, "nodes": list(opts.sensor_nodes)}))
    specs.append(NodeSpec("controller_node", "controller_node", "admn_ros.ros.controller_node",
                          "ControllerNode", opts.namespace, pf,
                          {**common, **model, "budget": int(opts.budget),
                           "sensor_nodes": list(opts.sensor_nodes)}))
    for sn in opts.sensor_nodes:
        specs.append(NodeSpec(f"backbone_{sn}", "backbone_node", "admn_ros.ros.backbone_node",
                              "BackboneNode", opts.namespace, pf,
                              {**common, **model, "sensor_node": sn,
                               "allocation_mode": opts.allocation_mode}))
    specs.append(NodeSpec("fusion_node", "fusion_node", "admn_ros.ros.fusion_node", "FusionNode",
                          opts.namespace, pf, {**common, **model, "sensor_nodes": list(opts.sensor_nodes)}))
    specs.append(NodeSpec("viz_node", "viz_node", "admn_ros.ros.viz_node", "VizNode", opts.namespace, pf,
                          {**common, "sensor_nodes": list(opts.sensor_nodes)}))
    return specs


@dataclass
class ActivityGraphOptions:
    """What a user chooses when starting the activity graph (mirrors ``activity.launch.py``).

    ``budget`` 0 means 25% of the model's blocks (9 for node1's 3 streams x 12);
    ``subject_id`` / ``seed`` / ``episode`` choose the simulated subject and scene.
    """

    namespace: str = ""
    params_file: str = ""
    budget: int = 0
    use_sim_time: bool = False
    use_rviz: bool = False
    sim_sensors: bool = True
    sensor_nodes: tuple[str, ...] = ("node1",)
    model_dir: str = ""
    subject_id: int = 0
    seed: int = 0
    episode: int = 0

    def to_cli_args(self) -> list[str]:
        """These options as ``admn-ros run activity`` flags."""
        a = ["--task", "activity", "--budget", str(self.budget), "--sensor-nodes", ",".join(self.sensor_nodes),
             "--subject-id", str(self.subject_id), "--seed", str(self.seed), "--episode", str(self.episode)]
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

    def resolved_params_file(self) -> str:
        return self.params_file or str(config_path("activity.yaml"))

    def resolved_model_dir(self) -> str:
        return self.model_dir or str(activity_models_dir())


def activity_graph(opts: ActivityGraphOptions) -> list[NodeSpec]:
    """Sensor (optional, simulated activity scenario) -> activity_node.

    The activity node draws its own markers and dashboard (``admn/markers``,
    ``admn/dashboard``: the topics ``config/admn.rviz`` shows), so viz_node, which draws
    the tracking scene, is not part of this graph."""
    common = {"use_sim_time": opts.use_sim_time}
    pf = [opts.resolved_params_file()]
    specs: list[NodeSpec] = []
    if opts.sim_sensors:
        specs.append(NodeSpec("sensor_node", "sensor_node", "admn_ros.ros.sensor_node", "SensorNode",
                              opts.namespace, pf,
                              {**common, "scenario": "activity", "nodes": list(opts.sensor_nodes),
                               "subject_id": int(opts.subject_id), "seed": int(opts.seed),
                               "episode": int(opts.episode)}))
    specs.append(NodeSpec("activity_node", "activity_node", "admn_ros.ros.activity_node", "ActivityNode",
                          opts.namespace, pf,
                          {**common, "model_dir": opts.resolved_model_dir(), "budget": int(opts.budget),
                           "sensor_nodes": list(opts.sensor_nodes), "ground_truth": bool(opts.sim_sensors)}))
    return specs


def rviz_config() -> Path:
    return config_path("admn.rviz")
