"""ADMN tracking graph: (simulated) sensors -> controller -> backbones -> fusion -> RViz markers.

    ros2 launch admn_ros tracking.launch.py budget:=27 use_rviz:=true
    ros2 launch admn_ros tracking.launch.py composed:=true namespace:=robot1
    ros2 launch admn_ros tracking.launch.py sim_sensors:=false use_sim_time:=true   # bag replay

`ros2 launch admn_ros tracking.launch.py --show-args` lists every argument. The processes
come from admn_ros.ros.graph (task tracking), the list `admn-ros run` / `make demo` starts
where launch is absent; node processes that die are restarted (respawn:=false turns it off).
"""
from admn_ros.ros.launch_graph import graph_launch_description


def generate_launch_description():
    return graph_launch_description("tracking")
