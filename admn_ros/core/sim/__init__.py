"""rclpy-free simulators (GDTM-style tracking, MM-Fi-style activity), their sensor config and corruptions."""
from admn_ros.core.sim.config import NodeConfig, SimConfig, SimConfigError, load_sim_config
from admn_ros.core.sim.corruptions import KINDS as CORRUPTION_KINDS
from admn_ros.core.sim.corruptions import CorruptionSpec, corruption_text, parse_corruption
from admn_ros.core.sim.simulator import GDTMSimulator, SimFrame, StreamFrame

__all__ = ["NodeConfig", "SimConfig", "SimConfigError", "load_sim_config", "CorruptionSpec", "CORRUPTION_KINDS",
           "parse_corruption", "corruption_text", "GDTMSimulator", "SimFrame", "StreamFrame"]
