"""ADMN activity graph: (simulated) node1 rgb/depth/radar -> activity_node -> label, allocation, RViz markers.

    ros2 launch admn_ros activity.launch.py budget:=9 use_rviz:=true
    ros2 launch admn_ros activity.launch.py sim_sensors:=false model_dir:=/opt/admn/models/activity

`ros2 launch admn_ros activity.launch.py --show-args` lists every argument. The processes
come from admn_ros.ros.graph (task activity), the list `admn-ros run activity` /
`admn-ros demo --task activity` starts where launch is absent.
"""
from admn_ros.ros.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description("activity")
