"""Topic names and frame ids of the ADMN graph, in one place. Names are relative, so a
namespace given at launch applies to all of them. (A task's estimate and truth topics
are the task's: :attr:`Task.output <admn_ros.core.tasks.base.Task.output>`.)"""
from __future__ import annotations

from admn_ros.core.streams import split_stream_id

_CAMERA = {"rgb": "color", "depth": "depth"}   # the camera namespace of each camera modality
_IMAGE_SUFFIX = {"rgb": "color/image_raw", "depth": "depth/image_raw", "radar": "radar/range_azimuth"}
_FRAME_SUFFIX = {"rgb": "color_optical_frame", "depth": "depth_optical_frame", "radar": "radar_frame"}

ALLOCATION = "admn/allocation"           # admn_ros/LayerAllocation
BUDGET = "admn/budget"                   # std_msgs/UInt16: set the layer budget at runtime
MARKERS = "admn/markers"                 # visualization_msgs/MarkerArray
DASHBOARD = "admn/dashboard"             # sensor_msgs/Image rgb8
DIAGNOSTICS = "/diagnostics"             # diagnostic_msgs/DiagnosticArray (absolute, by convention)


def frame_id(node: str, modality: str) -> str:
    """``("node1", "rgb")`` -> ``node1_color_optical_frame`` (the sensors' frame ids)."""
    return f"{node}_{_FRAME_SUFFIX[modality]}"


def image_topic(sid: str) -> str:
    """``node1/rgb`` -> ``node1/color/image_raw`` (REP-118 style names)."""
    node, mod = split_stream_id(sid)
    return f"{node}/{_IMAGE_SUFFIX[mod]}"


def camera_info_topic(sid: str) -> str | None:
    """``node1/rgb`` -> ``node1/color/camera_info``, beside the camera's image (None: radar has no camera)."""
    node, mod = split_stream_id(sid)
    return f"{node}/{_CAMERA[mod]}/camera_info" if mod in _CAMERA else None


def radar_points_topic(sensor_node: str) -> str:
    """``sensor_msgs/PointCloud2`` radar detections of a sensor node (``radar_input: pointcloud2``)."""
    return f"{sensor_node}/radar/points"


def qoi_topic(sid: str) -> str:
    """True QoI of a stream (admn_ros/StreamQoI), published by the (simulated) sensor."""
    node, mod = split_stream_id(sid)
    return f"{node}/qoi/{mod}"


def embeddings_topic(sensor_node: str) -> str:
    """admn_ros/StreamEmbeddings of one backbone node."""
    return f"admn/{sensor_node}/embeddings"
