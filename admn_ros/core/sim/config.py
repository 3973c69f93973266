"""Typed configuration of the simulated GDTM-style sensor network (``config/sensors.yaml``; frames
and axes: docs/DATASET.md). Every YAML key is optional; unknown keys, wrong types and out-of-range
values raise :class:`SimConfigError` naming file and key.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from admn_ros.core.streams import DEPTH_MAX_M, MODALITY_NAMES, StreamSet, stream_id


class SimConfigError(ValueError):
    """Invalid simulator configuration; the message names the file and the key."""


def check_index(name: str, v: object, error: type[ValueError] = ValueError, lo: int = 0) -> int:
    """``v`` as an int if it is an integer (not a bool) >= ``lo`` (0 or 1), else ``error`` naming ``name``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < lo:
        raise error(f"{name} must be a {'positive' if lo else 'non-negative'} integer, got {v!r}")
    return int(v)


def check_rate(rate_hz: object, error: type[ValueError] = ValueError) -> float:
    """``rate_hz`` as a float if it is a finite number > 0, else ``error``."""
    if not (isinstance(rate_hz, (int, float, np.integer, np.floating)) and math.isfinite(rate_hz) and rate_hz > 0):
        raise error(f"rate_hz must be > 0, got {rate_hz!r}")
    return float(rate_hz)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels (OpenCV convention: pixel centres at integers)."""

    width: int = 320
    height: int = 240
    fx: float = 160.0
    fy: float = 160.0
    cx: float = 159.5
    cy: float = 119.5

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "CameraIntrinsics":
        """Square pixels, principal point at the image centre, horizontal field of view ``hfov_deg``."""
        f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(int(width), int(height), f, f, (width - 1) / 2.0, (height - 1) / 2.0)

    @property
    def K(self) -> np.ndarray:
        """3x3 camera matrix (float64), as in ``sensor_msgs/CameraInfo.k``."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan((self.width / 2.0) / self.fx))


#: Units of a PointCloud2 radar's intensity field.
INTENSITY_UNITS: tuple[str, ...] = ("db", "linear")


@dataclass(frozen=True)
class RadarCloudConfig:
    """How a ``sensor_msgs/PointCloud2`` radar scan becomes the range-azimuth map
    (:mod:`admn_ros.core.radar_cloud`): ``intensity_field`` ('' = every point is a reference
    return) in ``db`` (power = 10^((intensity - ref) / 10)) or ``linear`` (intensity / ref);
    ``intensity_ref`` = a return as strong as the simulated target 2 m away broadside."""

    intensity_field: str = "intensity"
    intensity_unit: str = "db"
    intensity_ref: float = 30.0


@dataclass(frozen=True)
class RadarConfig:
    """Range-azimuth heatmap geometry: row ``i`` = range ``(i + 0.5) * range_res_m`` m (row 0
    nearest); columns = azimuth from ``+fov/2`` (left) to ``-fov/2``, like the camera image."""

    range_bins: int = 64
    range_res_m: float = 0.1
    azimuth_bins: int = 64
    fov_deg: float = 120.0
    pointcloud: RadarCloudConfig = field(default_factory=RadarCloudConfig)

    @property
    def max_range_m(self) -> float:
        return self.range_bins * self.range_res_m

    def range_centers(self) -> np.ndarray:
        """Range of every row, metres (float32, shape ``(range_bins,)``)."""
        return ((np.arange(self.range_bins) + 0.5) * self.range_res_m).astype(np.float32)

    def azimuth_centers(self) -> np.ndarray:
        """Azimuth of every column, radians, +fov/2 (left) to -fov/2 (right) (float32)."""
        half = math.radians(self.fov_deg) / 2.0
        step = 2.0 * half / self.azimuth_bins
        return (half - (np.arange(self.azimuth_bins) + 0.5) * step).astype(np.float32)


@dataclass(frozen=True)
class NodeConfig:
    """One sensor node: ``position`` (m, ``map``), ``yaw`` (rad, counter-clockwise from +x),
    ``pitch`` (rad, > 0 = looking down), ``camera`` (shared by rgb and registered depth)."""

    name: str
    position: tuple[float, float, float]
    yaw: float
    pitch: float
    camera: CameraIntrinsics = field(default_factory=CameraIntrinsics)

    def rotation_body(self) -> np.ndarray:
        """``R_map_body`` (3x3): body axes x forward, y left, z up, expressed in ``map``."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        return rz @ ry

    def rotation_optical(self) -> np.ndarray:
        """``R_map_optical`` (3x3): optical axes (x right, y down, z forward) in ``map``."""
        body_from_optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
        return self.rotation_body() @ body_from_optical

    def quaternion_xyzw(self) -> tuple[float, float, float, float]:
        """Orientation of the body frame in ``map`` as a unit quaternion (x, y, z, w), for TF."""
        hy, hp = self.yaw / 2.0, self.pitch / 2.0
        return (-math.sin(hy) * math.sin(hp), math.cos(hy) * math.sin(hp),
                math.sin(hy) * math.cos(hp), math.cos(hy) * math.cos(hp))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates ``(N, 2)`` (u, v) and depth ``(N,)`` of ``map`` points (depth <= 0:
        behind the camera, pixel coordinates meaningless)."""
        pc = (np.asarray(points, dtype=np.float64) - np.asarray(self.position)) @ self.rotation_optical()
        z = pc[:, 2]
        zs = np.where(np.abs(z) < 1e-9, 1e-9, z)
        c = self.camera
        uv = np.stack([c.fx * pc[:, 0] / zs + c.cx, c.fy * pc[:, 1] / zs + c.cy], axis=1)
        return uv, z


@dataclass(frozen=True)
class TrackConfig:
    """Drivable track, centred on the ``map`` origin (metres)."""

    size_x: float = 3.0
    size_y: float = 3.6

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)``."""
        return (-self.size_x / 2, self.size_x / 2, -self.size_y / 2, self.size_y / 2)


@dataclass(frozen=True)
class RoomConfig:
    """Room walls (centred on the origin) and ceiling height, metres."""

    size_x: float = 5.6
    size_y: float = 6.2
    height: float = 2.8


@dataclass(frozen=True)
class CarConfig:
    """Target body box size (metres; a small ground robot, see config/sensors.yaml) and speed range (m/s)."""

    length: float = 0.60
    width: float = 0.40
    height: float = 0.35
    speed_min: float = 0.3
    speed_max: float = 1.2


@dataclass(frozen=True)
class LightingConfig:
    """Uniform ranges of each episode's lighting: ceiling lights (count), ambient level, power per
    light, exposure gain (the track floor averages ``gain`` times its colour)."""

    lights: tuple[int, int] = (1, 3)
    ambient: tuple[float, float] = (0.3, 0.7)
    power: tuple[float, float] = (2.0, 5.0)
    gain: tuple[float, float] = (0.7, 1.25)


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs (:func:`load_sim_config`); ``nodes`` in stream order,
    ``source`` = the YAML file (``None`` if built in code)."""

    rate_hz: float = 15.0
    nodes: list[NodeConfig] = field(default_factory=lambda: default_nodes())
    track: TrackConfig = field(default_factory=TrackConfig)
    room: RoomConfig = field(default_factory=RoomConfig)
    car: CarConfig = field(default_factory=CarConfig)
    radar: RadarConfig = field(default_factory=RadarConfig)
    obstacles_min: int = 1
    obstacles_max: int = 3
    source: Path | None = None
    lighting: LightingConfig = field(default_factory=LightingConfig)

    @property
    def streams(self) -> StreamSet:
        """Node-major :class:`StreamSet` (``node1/rgb, node1/depth, node1/radar, node2/rgb, ...``)."""
        return StreamSet(tuple(n.name for n in self.nodes), MODALITY_NAMES)

    def node(self, name: str) -> NodeConfig:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"unknown node {name!r}; known: {[n.name for n in self.nodes]}")

    def node_xy(self) -> dict[str, tuple[float, float]]:
        """Node name -> its (x, y) position (m) on the map, in config order."""
        return {n.name: (float(n.position[0]), float(n.position[1])) for n in self.nodes}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (angles in degrees as in the YAML file, plus intrinsics)."""
        return {
            "rate_hz": self.rate_hz,
            **{k: asdict(getattr(self, k)) for k in ("track", "room", "car", "radar")},
            "obstacles": {"min": self.obstacles_min, "max": self.obstacles_max},
            "lighting": {k: list(v) for k, v in asdict(self.lighting).items()},
            "depth_max_m": DEPTH_MAX_M,
            "nodes": [{"name": n.name, "position": list(n.position), "yaw_deg": math.degrees(n.yaw),
                       "pitch_deg": math.degrees(n.pitch), "quaternion_xyzw": list(n.quaternion_xyzw()),
                       "camera": asdict(n.camera)} for n in self.nodes],
        }


def default_nodes() -> list[NodeConfig]:
    """The built-in layout, the same as the shipped ``config/sensors.yaml``."""
    cam = CameraIntrinsics.from_fov(320, 240, 90.0)
    return [NodeConfig(name, (x, y, 1.5), math.atan2(-y, -x), math.radians(30.0), cam)
            for name, x, y in (("node1", -2.1, -2.4), ("node2", 2.1, -2.4), ("node3", 0.0, 2.6))]


@dataclass
class _Ctx:
    """Carries the file name for error messages."""

    source: str

    def fail(self, key: str, msg: str) -> SimConfigError:
        return SimConfigError(f"{self.source}: key '{key}': {msg}")

    def mapping(self, value: Any, key: str, known: set[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        for k in value:
            if k not in known:
                full = f"{key}.{k}" if key else str(k)
                raise self.fail(full, f"unknown key (known keys here: {sorted(known)})")
        return value

    def value(self, m: Mapping[str, Any], key: str, prefix: str, default: float, lo: float, hi: float,
              lo_open: bool = False) -> Any:
        """``m[key]`` (``default`` if absent) in ``[lo, hi]`` (``(lo, hi]`` if ``lo_open``): an
        integer if ``default`` is one, else a finite number (float)."""
        full = f"{prefix}.{key}" if prefix else key
        v = m.get(key, default)
        if isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.fail(full, f"expected an integer, got {v!r}")
            if not lo <= v <= hi:
                raise self.fail(full, f"value {v} must be in [{lo}, {hi}]")
            return int(v)
        if key not in m:
            return float(default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise self.fail(full, f"expected a finite number, got {v!r}")
        v = float(v)
        if v < lo or (lo_open and v == lo):
            raise self.fail(full, f"value {v} must be {'>' if lo_open else '>='} {lo}")
        if v > hi:
            raise self.fail(full, f"value {v} must be <= {hi}")
        return v

    def section(self, top: Mapping[str, Any], name: str, default: Any, bounds: dict[str, tuple],
                extra: tuple[str, ...] = ()) -> Any:
        """``default`` (a dataclass) with the numbers of section ``name``, each in its ``bounds``."""
        m = self.mapping(top.get(name), name, set(bounds) | set(extra))
        return replace(default, **{k: self.value(m, k, name, getattr(default, k), *b) for k, b in bounds.items()})


_TOP_KEYS = {"rate_hz", "track", "room", "car", "camera", "radar", "obstacles", "lighting", "nodes"}


def _camera(ctx: _Ctx, raw: Any, key: str, base: CameraIntrinsics | None) -> CameraIntrinsics:
    m = ctx.mapping(raw, key, {"width", "height", "hfov_deg"})
    b = base or CameraIntrinsics.from_fov(320, 240, 90.0)
    w = ctx.value(m, "width", key, b.width, 16, 4096)
    h = ctx.value(m, "height", key, b.height, 16, 4096)
    fov = ctx.value(m, "hfov_deg", key, b.hfov_deg, 10.0, 170.0)
    return CameraIntrinsics.from_fov(w, h, fov)


def _node(ctx: _Ctx, raw: Any, key: str, cam: CameraIntrinsics, room: RoomConfig) -> NodeConfig:
    m = ctx.mapping(raw, key, {"name", "position", "yaw_deg", "pitch_deg", "camera"})
    for req in ("name", "position"):
        if req not in m:
            raise ctx.fail(f"{key}.{req}", "missing required key")
    name = m["name"]
    if not isinstance(name, str):
        raise ctx.fail(f"{key}.name", f"expected a string, got {name!r}")
    try:
        stream_id(name, "rgb")
    except ValueError as e:
        raise ctx.fail(f"{key}.name", str(e)) from None
    pos = m["position"]
    if (not isinstance(pos, (list, tuple)) or len(pos) != 3
            or not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
                       for p in pos)):
        raise ctx.fail(f"{key}.position", f"expected [x, y, z] (3 finite numbers), got {pos!r}")
    x, y, z = (float(p) for p in pos)
    if abs(x) >= room.size_x / 2 or abs(y) >= room.size_y / 2 or not 0.05 <= z < room.height:
        raise ctx.fail(f"{key}.position", f"{[x, y, z]} is outside the room "
                       f"({room.size_x} x {room.size_y} x {room.height} m, centred on the origin)")
    yaw = ctx.value(m, "yaw_deg", key, math.degrees(math.atan2(-y, -x)), -360.0, 360.0)
    pitch = ctx.value(m, "pitch_deg", key, 30.0, -89.0, 89.0)
    camera = _camera(ctx, m.get("camera"), f"{key}.camera", cam)
    return NodeConfig(name, (x, y, z), math.radians(yaw), math.radians(pitch), camera)


def _lighting(ctx: _Ctx, raw: Any) -> LightingConfig:
    d = LightingConfig()
    m = ctx.mapping(raw, "lighting", set(asdict(d)))
    out: dict[str, tuple[float, float]] = {}
    for key, (lo, hi) in {"lights": (1, 8), "ambient": (0.0, 5.0), "power": (0.0, 50.0), "gain": (0.05, 5.0)}.items():
        v = m.get(key, getattr(d, key))
        ok = (isinstance(v, (list, tuple)) and len(v) == 2
              and all(isinstance(x, int if key == "lights" else (int, float)) and not isinstance(x, bool) for x in v))
        if not ok or not lo <= v[0] <= v[1] <= hi:
            raise ctx.fail(f"lighting.{key}", f"expected [min, max] with {lo} <= min <= max <= {hi}"
                           f"{' (integers)' if key == 'lights' else ''}, got {v!r}")
        out[key] = (v[0], v[1]) if key == "lights" else (float(v[0]), float(v[1]))
    return LightingConfig(**out)  # type: ignore[arg-type]


def _radar_cloud(ctx: _Ctx, radar: Mapping[str, Any]) -> RadarCloudConfig:
    key = "radar.pointcloud"
    m = ctx.mapping(radar.get("pointcloud"), key, {"intensity_field", "intensity_unit", "intensity_ref"})
    d = RadarCloudConfig()
    fld = m.get("intensity_field", d.intensity_field)
    if not isinstance(fld, (str, type(None))):
        raise ctx.fail(f"{key}.intensity_field", f"expected a field name ('' = none), got {fld!r}")
    unit = m.get("intensity_unit", d.intensity_unit)
    if unit not in INTENSITY_UNITS:
        raise ctx.fail(f"{key}.intensity_unit", f"expected one of {list(INTENSITY_UNITS)}, got {unit!r}")
    lo_open = unit == "linear"   # linear: a divisor
    ref = ctx.value(m, "intensity_ref", key, d.intensity_ref, 0.0 if lo_open else -1e6, 1e12, lo_open=lo_open)
    return RadarCloudConfig(fld or "", str(unit), ref)


def parse_sim_config(data: Any, source: str = "<dict>") -> SimConfig:
    """Build a :class:`SimConfig` from parsed YAML ``data``; ``source`` names it in errors."""
    ctx = _Ctx(source)
    top = ctx.mapping(data, "", _TOP_KEYS)
    rate = ctx.value(top, "rate_hz", "", 15.0, 0.0, 1000.0, lo_open=True)

    track = ctx.section(top, "track", TrackConfig(), {"size_x": (0.5, 50.0), "size_y": (0.5, 50.0)})
    room = ctx.section(top, "room", RoomConfig(), {"size_x": (1.0, 100.0), "size_y": (1.0, 100.0),
                                                   "height": (1.0, 20.0)})
    if room.size_x < track.size_x + 0.4 or room.size_y < track.size_y + 0.4:
        raise ctx.fail("room", f"room {room.size_x} x {room.size_y} m must exceed the track "
                       f"{track.size_x} x {track.size_y} m by at least 0.4 m per axis")
    # a file without car size gets the GDTM RC car (0.30 x 0.18 x 0.12 m)
    car = ctx.section(top, "car", CarConfig(0.30, 0.18, 0.12), {"length": (0.05, 2.0), "width": (0.05, 2.0),
                      "height": (0.02, 2.0), "speed_min": (0.0, 10.0, True), "speed_max": (0.0, 10.0, True)})
    if car.speed_min > car.speed_max:
        raise ctx.fail("car.speed_min", f"speed_min {car.speed_min} > speed_max {car.speed_max}")
    radar = ctx.section(top, "radar", RadarConfig(), {"range_bins": (8, 1024), "range_res_m": (0.0, 5.0, True),
                                                      "azimuth_bins": (8, 1024), "fov_deg": (10.0, 180.0)},
                        ("pointcloud",))
    radar = replace(radar, pointcloud=_radar_cloud(ctx, top.get("radar") or {}))
    o = ctx.mapping(top.get("obstacles"), "obstacles", {"min", "max"})
    omin = ctx.value(o, "min", "obstacles", 1, 0, 8)
    omax = ctx.value(o, "max", "obstacles", 3, 0, 8)
    if omin > omax:
        raise ctx.fail("obstacles.min", f"min {omin} > max {omax}")
    cam = _camera(ctx, top.get("camera"), "camera", None)

    if "nodes" in top:
        raw_nodes = top["nodes"]
        if not isinstance(raw_nodes, list) or not raw_nodes:
            raise ctx.fail("nodes", f"expected a non-empty list of nodes, got {raw_nodes!r}")
        nodes = [_node(ctx, rn, f"nodes[{i}]", cam, room) for i, rn in enumerate(raw_nodes)]
    else:
        nodes = [replace(n, camera=cam) for n in default_nodes()]
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ctx.fail("nodes", f"duplicate node names in {names}")
    return SimConfig(rate, nodes, track, room, car, radar, omin, omax,
                     Path(source) if source != "<dict>" else None, _lighting(ctx, top.get("lighting")))


def load_sim_config(path: str | Path | None = None) -> SimConfig:
    """Load and validate a sensors YAML file (default: the shipped ``config/sensors.yaml``);
    FileNotFoundError or :class:`SimConfigError` naming the file (and the key)."""
    from admn_ros.core.paths import config_path, read_yaml

    p = Path(config_path("sensors.yaml") if path is None else path)
    if not p.is_file():
        raise FileNotFoundError(f"simulator config file not found: {p}")
    return parse_sim_config(read_yaml(p, "simulator config", SimConfigError), str(p))
