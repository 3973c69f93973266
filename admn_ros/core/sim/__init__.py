"""rclpy-free GDTM-style simulator: an RC car on an indoor track, 3 sensor nodes with
RGB, depth and radar, static obstacles, per-episode lighting/background, and corruptions.

Public API (other modules code against exactly these names)::

    from admn_ros.core.sim import (SimConfig, NodeConfig, load_sim_config, GDTMSimulator,
                                   SimFrame, StreamFrame, CorruptionSpec, parse_corruption)
"""
from admn_ros.core.sim.config import (CameraIntrinsics, NodeConfig, RadarConfig, SimConfig,
                                      SimConfigError, load_sim_config, parse_sim_config)
from admn_ros.core.sim.corruptions import KINDS as CORRUPTION_KINDS
from admn_ros.core.sim.corruptions import CorruptionSpec, corruption_text, parse_corruption
from admn_ros.core.sim.simulator import GDTMSimulator, SimFrame, StreamFrame

__all__ = [
    "CameraIntrinsics", "NodeConfig", "RadarConfig", "SimConfig", "SimConfigError",
    "load_sim_config", "parse_sim_config", "CorruptionSpec", "CORRUPTION_KINDS", "parse_corruption",
    "corruption_text",
    "GDTMSimulator", "SimFrame", "StreamFrame",
]
