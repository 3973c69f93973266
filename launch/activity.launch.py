"""ADMN activity graph: (simulated) node1 rgb/depth/radar -> activity_node -> label, allocation, RViz markers.

    ros2 launch admn_ros activity.launch.py budget:=9 sim_sensors:=true use_rviz:=true
    ros2 launch admn_ros activity.launch.py sim_sensors:=false model_dir:=/opt/admn/models/activity

The nodes come from admn_ros.ros.graph.build_graph (task activity), the same description the
package's own runner (`admn-ros run activity` / `admn-ros demo --task activity`) starts
where launch is absent.
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
    ("params_file", str(config_path("activity.yaml")),
     "YAML parameters of activity_node and the simulated sensor_node (config/activity.yaml)"),
    ("model_dir", "", "Directory with the activity model and its controllers (default: the package's models/activity)"),
    ("budget", "0", "Layer budget L over the window's streams; 0 = 25% of the model's blocks (9 of 3 x 12)"),
    ("use_sim_time", "false", "Use /clock (true for rosbag replay)"),
    ("use_rviz", "false", "Start RViz with config/admn.rviz (label, scores and per-stream blocks as markers)"),
    ("sim_sensors", "true", "Start the simulated activity sensors (false on a robot with real node1 cameras/radar)"),
    ("sensor_nodes", "node1", "Comma-separated sensor node names of the model (activity models: node1)"),
    ("subject_id", "0", "Simulated sensors: the subject performing the activities"),
    ("seed", "0", "Simulated sensors: random seed of the subject and the scene"),
]


def _truthy(s: str) -> bool:
    return s.strip().lower() in ("1", "true", "yes", "on")


def _nodes(context):
    get = lambda k: LaunchConfiguration(k).perform(context)  # noqa: E731
    opts = GraphOptions(
        task="activity", namespace=get("namespace"), params_file=get("params_file"), budget=int(get("budget")),
        use_sim_time=_truthy(get("use_sim_time")), use_rviz=_truthy(get("use_rviz")),
        sim_sensors=_truthy(get("sim_sensors")),
        sensor_nodes=tuple(s for s in get("sensor_nodes").split(",") if s),
        model_dir=get("model_dir"), subject_id=int(get("subject_id")), seed=int(get("seed")))
    return [Node(package="admn_ros", executable=s.executable, name=s.name, namespace=s.namespace,
                 parameters=[*s.params_files, s.parameters], remappings=s.remappings,
                 output="screen", emulate_tty=True)
            for s in build_graph(opts)]


def generate_launch_description() -> LaunchDescription:
    ld = LaunchDescription([DeclareLaunchArgument(n, default_value=d, description=desc) for n, d, desc in ARGS])
    ld.add_action(OpaqueFunction(function=_nodes))
    ld.add_action(Node(package="rviz2", executable="rviz2", name="rviz2",
                       arguments=["-d", str(rviz_config())],
                       condition=IfCondition(LaunchConfiguration("use_rviz"))))
    return ld
