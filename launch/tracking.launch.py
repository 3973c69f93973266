"""ADMN tracking graph: (simulated) sensors -> controller -> backbones -> fusion -> RViz markers.

    ros2 launch admn_ros tracking.launch.py budget:=27 sim_sensors:=true use_rviz:=true

The nodes come from admn_ros.ros.graph.build_graph (task tracking), the same description the
package's own runner (`admn-ros run` / `make demo`) starts where launch is absent.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from admn_ros.core.paths import config_path
from admn_ros.ros.graph import GraphOptions, build_graph, rviz_config

ARGS = [
    ("namespace", "", "Namespace for every node of the graph"),
    ("params_file", str(config_path("tracking.yaml")), "YAML parameters (/**: ros__parameters:) for the ADMN nodes"),
    ("budget", "27", "Layer budget L: active backbone blocks over all streams (27 = 25% of 9 x 12)"),
    ("use_sim_time", "false", "Use /clock (true for rosbag replay)"),
    ("use_rviz", "false", "Start RViz with config/admn.rviz"),
    ("sim_sensors", "true", "Start the simulated GDTM-style sensor network (false on a robot with real sensors)"),
    ("sensor_nodes", "node1,node2,node3", "Comma-separated sensor node names (one backbone node each)"),
    ("model_dir", "", "Directory with the tracking model and controllers (default: the package's models/)"),
    ("allocation_mode", "per_frame", "per_frame: backbones wait for the frame's allocation; pipelined: latest allocation"),
    ("composed", "false", "Run the ADMN nodes composed in one process (rclpy component container)"),
]


def _truthy(s: str) -> bool:
    return s.strip().lower() in ("1", "true", "yes", "on")


def _nodes(context):
    get = lambda k: LaunchConfiguration(k).perform(context)  # noqa: E731
    opts = GraphOptions(
        task="tracking", namespace=get("namespace"), params_file=get("params_file"), budget=int(get("budget")),
        use_sim_time=_truthy(get("use_sim_time")), use_rviz=_truthy(get("use_rviz")),
        sim_sensors=_truthy(get("sim_sensors")),
        sensor_nodes=tuple(s for s in get("sensor_nodes").split(",") if s),
        model_dir=get("model_dir"), allocation_mode=get("allocation_mode"), composed=_truthy(get("composed")))
    specs = build_graph(opts)
    actions = []
    if opts.composed:
        # rclpy nodes cannot be loaded into rclcpp_components containers; our Python
        # container builds the same specs and spins them in one process.
        actions.append(Node(package="admn_ros", executable="admn_container", name="admn_container",
                            namespace=opts.namespace, arguments=opts.to_cli_args(),
                            output="screen", emulate_tty=True))
    else:
        for s in specs:
            actions.append(Node(package="admn_ros", executable=s.executable, name=s.name,
                                namespace=s.namespace, parameters=[*s.params_files, s.parameters],
                                remappings=s.remappings, output="screen", emulate_tty=True))
    return actions


def generate_launch_description() -> LaunchDescription:
    ld = LaunchDescription([DeclareLaunchArgument(n, default_value=d, description=desc) for n, d, desc in ARGS])
    ld.add_action(OpaqueFunction(function=_nodes))
    ld.add_action(Node(package="rviz2", executable="rviz2", name="rviz2",
                       arguments=["-d", str(rviz_config())],
                       condition=IfCondition(LaunchConfiguration("use_rviz"))))
    return ld
