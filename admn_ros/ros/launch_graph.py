"""The launch description of a task's graph for ``launch/<task>.launch.py`` (the only module that needs ``launch``
and ``launch_ros``); docs/ARCHITECTURE.md, "Launch file and local runner: one graph"."""
from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from admn_ros.core.paths import config_path
from admn_ros.ros.graph import LAUNCH_ARGUMENTS, GraphOptions, launch_arguments, options_processes


def graph_nodes(context: LaunchContext, task: str) -> list[Node]:
    """The graph's processes as ``Node`` actions, for the launch arguments of ``context``."""
    values = {n: LaunchConfiguration(n).perform(context) for n in LAUNCH_ARGUMENTS}
    return [Node(package="admn_ros", executable=p.executable, name=p.name, namespace=p.namespace,
                 parameters=[*p.node.params_files, p.node.parameters] if p.node is not None else None,
                 remappings=list(p.node.remappings) if p.node is not None else None,
                 arguments=p.arguments or None, respawn=p.respawn, respawn_delay=p.respawn_delay,
                 output="screen", emulate_tty=True)
            for p in options_processes(GraphOptions.from_strings(task, values))]


def graph_launch_description(task: str) -> LaunchDescription:
    """Declared arguments, the graph's nodes, and RViz (``use_rviz``)."""
    return LaunchDescription([
        *[DeclareLaunchArgument(n, default_value=d, description=desc) for n, d, desc in launch_arguments(task)],
        OpaqueFunction(function=graph_nodes, args=[task]),
        Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", str(config_path("admn.rviz"))],
             condition=IfCondition(LaunchConfiguration("use_rviz")))])
