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
from typing import Any, ClassVar

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
class _GraphOptionsBase:
    """The launch options every graph shares (both launch files declare them).

    The defaults are the tracking graph's; :class:`ActivityGraphOptions` overrides
    ``budget`` and ``sensor_nodes``. Subclasses set ``_PARAMS_FILE`` and
    :meth:`_default_model_dir`, which :meth:`resolved_params_file` and
    :meth:`resolved_model_dir` fall back to.
    """

    namespace: str = ""
    params_file: str = ""
    budget: int = 27
    use_sim_time: bool = False
    use_rviz: bool = False
    sim_sensors: bool = True
    sensor_nodes: tuple[str, ...] = DEFAULT_NODES
    model_dir: str = ""

    #: Shipped parameter file (under ``config/``) used when ``params_file`` is empty.
    _PARAMS_FILE: ClassVar[str] = "tracking.yaml"

    @staticmethod
    def _default_model_dir() -> Path:
        """Models directory used when ``model_dir`` is empty."""
        return models_dir()

    def _common_cli_args(self) -> list[str]:
        """The shared options that differ from their defaults, as ``admn-ros run`` flags
        (``budget`` and ``sensor_nodes``, always given, are left to the subclass)."""
        a: list[str] = []
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
        """``params_file``, or the graph's shipped parameter file."""
        return self.params_file or str(config_path(self._PARAMS_FILE))

    def resolved_model_dir(self) -> str:
        """``model_dir``, or the graph's default models directory."""
        return self.model_dir or str(self._default_model_dir())


@dataclass
class GraphOptions(_GraphOptionsBase):
    """What a user chooses at launch (mirrors the launch arguments).

    The shared options (``namespace``, ``params_file``, ``budget`` 27, ``use_sim_time``,
    ``use_rviz``, ``sim_sensors``, ``sensor_nodes`` node1-3, ``model_dir``) plus
    ``allocation_mode`` and ``composed``.
    """

    allocation_mode: str = "per_frame"  # or "pipelined"
    composed: bool = False

    def to_cli_args(self) -> list[str]:
        """These options as ``admn-ros run`` / ``admn_container`` flags."""
        return ["--budget", str(self.budget), "--allocation-mode", self.allocation_mode,
                "--sensor-nodes", ",".join(self.sensor_nodes), *self._common_cli_args()]


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
class ActivityGraphOptions(_GraphOptionsBase):
    """What a user chooses when starting the activity graph (mirrors ``activity.launch.py``).

    The shared options as in :class:`GraphOptions`, but ``budget`` 0 means 25% of the
    model's blocks (9 for node1's 3 streams x 12) and ``sensor_nodes`` is node1;
    ``subject_id`` / ``seed`` / ``episode`` choose the simulated subject and scene.
    """

    budget: int = 0
    sensor_nodes: tuple[str, ...] = ("node1",)
    subject_id: int = 0
    seed: int = 0
    episode: int = 0

    _PARAMS_FILE: ClassVar[str] = "activity.yaml"

    @staticmethod
    def _default_model_dir() -> Path:
        return activity_models_dir()

    def to_cli_args(self) -> list[str]:
        """These options as ``admn-ros run activity`` flags."""
        return ["--task", "activity", "--budget", str(self.budget), "--sensor-nodes", ",".join(self.sensor_nodes),
                "--subject-id", str(self.subject_id), "--seed", str(self.seed), "--episode", str(self.episode),
                *self._common_cli_args()]


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
