"""``sensor_msgs/PointCloud2`` radar -> the range-azimuth map the tracking model reads (docs/DEPLOY.md, "Radar
drivers"): each detection is drawn as the simulator draws its targets; non-finite points and those beyond the map
are ignored.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from admn_ros.core.image_convert import ConversionError, message_bytes
from admn_ros.core.sim.config import RadarConfig
from admn_ros.core.sim.render import (RADAR_BEAM_DEG, RADAR_NOISE_POWER, radar_point_response,
                                      radar_power_to_unit)

#: ``sensor_msgs/PointField`` datatype constants -> numpy type codes.
POINT_FIELD_TYPES: dict[int, str] = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def cloud_fields(msg: Any) -> dict[str, tuple[int, np.dtype]]:
    """Field name -> (byte offset, dtype of its first element), in the cloud's byte order."""
    order = ">" if msg.is_bigendian else "<"
    out: dict[str, tuple[int, np.dtype]] = {}
    for f in msg.fields:
        code = POINT_FIELD_TYPES.get(int(f.datatype))
        if code is None:
            raise ConversionError("bad_cloud", f"PointCloud2 field {f.name!r} has unknown datatype {int(f.datatype)}")
        out[str(f.name)] = (int(f.offset), np.dtype(order + code))
    return out


def read_points(msg: Any, names: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """float64 values per point of the fields ``names`` and ``optional`` (absent -> zeros)."""
    fields = cloud_fields(msg)
    missing = [n for n in names if n not in fields]
    if missing:
        raise ConversionError("bad_cloud", f"PointCloud2 has no field(s) {missing}; fields: {sorted(fields)}")
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    raw = message_bytes(msg.data)
    n = h * w
    if n == 0:
        return {k: np.zeros(0) for k in (*names, *optional)}
    if rs < w * ps:
        raise ConversionError("bad_cloud", f"PointCloud2 row_step {rs} is smaller than width*point_step = "
                                           f"{w}*{ps} = {w * ps}")
    if raw.size < h * rs:
        raise ConversionError("bad_cloud", f"PointCloud2 data has {raw.size} bytes, height*row_step = "
                                           f"{h}*{rs} = {h * rs}")
    rows = raw[: h * rs].reshape(h, rs)[:, : w * ps]
    rec = np.ascontiguousarray(rows).reshape(n, ps)
    used = [k for k in (*names, *optional) if k in fields]
    out = {k: np.zeros(n) for k in (*names, *optional) if k not in fields}
    for k in used:
        off, dt = fields[k]
        if off < 0 or off + dt.itemsize > ps:
            raise ConversionError("bad_cloud", f"PointCloud2 field {k!r} (offset {off}, {dt.itemsize} bytes) "
                                               f"lies outside point_step {ps}")
        out[k] = np.ascontiguousarray(rec[:, off: off + dt.itemsize]).view(dt).reshape(n).astype(np.float64)
    return out


class CloudToRangeAzimuth:
    """Callable: PointCloud2 scan -> float32 ``(range_bins, azimuth_bins)`` map in [0, 1]."""

    def __init__(self, radar: RadarConfig) -> None:
        self.radar = radar
        self.cfg = radar.pointcloud
        self._max_range = radar.max_range_m + 2 * radar.range_res_m
        self._max_az = math.radians(radar.fov_deg) / 2 + math.radians(RADAR_BEAM_DEG)

    def power(self, intensity: np.ndarray) -> np.ndarray:
        """Point power (1 = the simulated target 2 m away) from the intensity field."""
        c = self.cfg
        if c.intensity_unit == "db":
            return np.power(10.0, (intensity - c.intensity_ref) / 10.0)
        return np.maximum(intensity, 0.0) / c.intensity_ref

    def __call__(self, msg: Any) -> np.ndarray:
        fld = self.cfg.intensity_field
        p = read_points(msg, ("x", "y") + ((fld,) if fld else ()), optional=("z",))
        x, y, z = p["x"], p["y"], p["z"]
        r = np.sqrt(x * x + y * y + z * z)
        az = np.arctan2(y, x)
        pw = self.power(p[fld]) if fld else np.ones_like(r)
        with np.errstate(invalid="ignore"):
            keep = np.isfinite(r) & np.isfinite(pw) & (r <= self._max_range) & (np.abs(az) <= self._max_az)
        m = radar_point_response(self.radar, r[keep], az[keep], pw[keep]) + np.float32(RADAR_NOISE_POWER)
        return radar_power_to_unit(m)
