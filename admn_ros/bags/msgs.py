"""Build ROS 2 messages as rosbags dataclasses (no rclpy; :func:`new_msg` fills unset fields with their ROS
defaults) with the live nodes' fields, encodings and frame ids, and serialise them to CDR."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rosbags.interfaces import Nodetype

from admn_ros.bags.typestore import get_admn_typestore, normalize_type
from admn_ros.core.image_convert import image_message_fields

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

    from admn_ros.core.viz import MarkerSpec

_NP_BASE = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "int8": np.int8, "uint8": np.uint8,
            "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
            "int64": np.int64, "uint64": np.uint64, "float32": np.float32, "float64": np.float64}


def _default(ts: "Typestore", desc: tuple) -> Any:
    kind, rest = desc
    if kind == Nodetype.BASE:
        return {"string": "", "wstring": "", "bool": False}.get(rest[0], 0.0 if rest[0].startswith("float") else 0)
    if kind == Nodetype.NAME:
        return new_msg(rest, ts=ts)
    sub, n = rest
    if sub[0] == Nodetype.BASE and sub[1][0] in _NP_BASE:
        return np.zeros(n if kind == Nodetype.ARRAY else 0, dtype=_NP_BASE[sub[1][0]])
    return [_default(ts, sub) for _ in range(n)] if kind == Nodetype.ARRAY else []


def new_msg(msgtype: str, ts: "Typestore | None" = None, **fields: Any) -> Any:
    """A message of ``msgtype`` with ROS default values, ``fields`` overriding them."""
    ts = get_admn_typestore() if ts is None else ts
    name = normalize_type(msgtype)
    _, fdefs = ts.fielddefs[name]
    if unknown := set(fields) - {f for f, _ in fdefs}:
        raise TypeError(f"{name} has no field(s) {sorted(unknown)}; fields: {[f for f, _ in fdefs]}")
    kwargs = {f: (fields[f] if f in fields else _default(ts, d)) for f, d in fdefs}
    return ts.types[name](**kwargs)


def serialize(msg: Any) -> memoryview:
    """CDR (little endian, with encapsulation header) bytes of a rosbags message of the shared typestore."""
    return get_admn_typestore().serialize_cdr(msg, msg.__msgtype__)


def header(ns: int, frame_id: str = "") -> Any:
    sec, nsec = divmod(int(ns), 1_000_000_000)
    return new_msg("std_msgs/msg/Header", stamp=new_msg("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                   frame_id=frame_id)


def image(arr: np.ndarray, encoding: str, hdr: Any) -> Any:
    """``sensor_msgs/Image`` of an array, laid out as cv_bridge's ``cv2_to_imgmsg`` does
    (:func:`admn_ros.core.image_convert.image_message_fields`)."""
    return new_msg("sensor_msgs/msg/Image", header=hdr, **image_message_fields(np.asarray(arr), encoding))


def camera_info(hdr: Any, width: int, height: int, K: np.ndarray) -> Any:
    """Pinhole ``sensor_msgs/CameraInfo`` (plumb_bob, no distortion), as the sensor node sends."""
    k = np.asarray(K, dtype=np.float64).reshape(3, 3)
    p = np.array([k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0])
    return new_msg("sensor_msgs/msg/CameraInfo", header=hdr, width=int(width), height=int(height),
                   distortion_model="plumb_bob", d=np.zeros(5), k=k.reshape(-1).copy(),
                   r=np.eye(3).reshape(-1), p=p)


def stream_qoi(hdr: Any, sid: str, corruption: str, sigma: float, severity: float) -> Any:
    return new_msg("admn_ros/msg/StreamQoI", header=hdr, stream_id=sid, corruption=str(corruption),
                   noise_sigma=float(sigma), severity=float(severity))


def pose(x: float, y: float, z: float = 0.0) -> Any:
    """A pose at ``(x, y, z)`` with the identity orientation."""
    return new_msg("geometry_msgs/msg/Pose", position=point(x, y, z),
                   orientation=new_msg("geometry_msgs/msg/Quaternion", w=1.0))


def color(r: float, g: float, b: float, a: float = 1.0) -> Any:
    return new_msg("std_msgs/msg/ColorRGBA", r=float(r), g=float(g), b=float(b), a=float(a))


def vector3(x: float, y: float, z: float) -> Any:
    return new_msg("geometry_msgs/msg/Vector3", x=float(x), y=float(y), z=float(z))


def point(x: float, y: float, z: float = 0.0) -> Any:
    return new_msg("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z))


def marker(hdr: Any, spec: MarkerSpec) -> Any:
    """The ``visualization_msgs/Marker`` of a :class:`~admn_ros.core.viz.MarkerSpec` (action ADD)."""
    cls = get_admn_typestore().types["visualization_msgs/msg/Marker"]  # its type constants, by name
    return new_msg("visualization_msgs/msg/Marker", header=hdr, ns=spec.ns, id=int(spec.id),
                   type=getattr(cls, spec.kind), action=cls.ADD, pose=pose(*spec.position), scale=vector3(*spec.scale),
                   color=color(*spec.rgba), points=[point(*p) for p in spec.points], text=spec.text)
