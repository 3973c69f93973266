"""PointCloud2 radar -> range-azimuth map (admn_ros.core.radar_cloud) on hand-built clouds,
and its configuration (``radar.pointcloud`` in the sensors YAML).

Expected values follow the documented model, written out here: a point of power P at the
centre of bin (i, j) gives P + 0.006 (the simulator's noise floor) there, mapped to
(10 log10(power) + 25) / 30; row i has range (i + 0.5) * 0.1 m, column j azimuth
60 deg - (j + 0.5) * 1.875 deg (left positive)."""
from __future__ import annotations

import math
from types import SimpleNamespace as NS

import numpy as np
import pytest

from admn_ros.core.image_convert import ConversionError, decode_stream
from admn_ros.core.radar_cloud import CloudToRangeAzimuth, read_points
from admn_ros.core.sim.config import RadarCloudConfig, RadarConfig, SimConfigError, load_sim_config, parse_sim_config

FLOAT32, FLOAT64, INT16, UINT8 = 7, 8, 3, 2
CODES = {FLOAT32: "f4", FLOAT64: "f8", INT16: "i2", UINT8: "u1"}


def cloud(fields: list[tuple[str, int]], rows: list[tuple], *, big: bool = False, pad: int = 0,
          row_pad: int = 0, height: int = 1) -> NS:
    """A PointCloud2-like message: ``fields`` (name, datatype) packed in order, ``pad`` junk
    bytes after each point and ``row_pad`` after each row; ``rows`` split over ``height`` rows."""
    order = ">" if big else "<"
    offs, off = [], 0
    for _, dt in fields:
        offs.append(off)
        off += np.dtype(CODES[dt]).itemsize
    ps = off + pad
    dtype = np.dtype({"names": [n for n, _ in fields], "formats": [order + CODES[dt] for _, dt in fields],
                      "offsets": offs, "itemsize": ps})
    arr = np.zeros(len(rows), dtype)
    for k, r in enumerate(rows):
        arr[k] = r
    raw = arr.tobytes()
    w = len(rows) // height
    rs = w * ps + row_pad
    data = b"".join(raw[i * w * ps:(i + 1) * w * ps] + b"\xab" * row_pad for i in range(height))
    return NS(header=NS(), height=height, width=w, is_bigendian=big, point_step=ps, row_step=rs, is_dense=True,
              fields=[NS(name=n, offset=o, datatype=dt, count=1) for (n, dt), o in zip(fields, offs)], data=data)


XYZI = [("x", FLOAT32), ("y", FLOAT32), ("z", FLOAT32), ("intensity", FLOAT32)]


def at_bin(i: int, j: int, z: float = 0.0) -> tuple[float, float, float]:
    """x, y, z of a point at the centre of range bin i and azimuth column j (default map)."""
    r = (i + 0.5) * 0.1
    az = math.radians(60.0 - (j + 0.5) * 1.875)
    g = math.sqrt(r * r - z * z)
    return g * math.cos(az), g * math.sin(az), z


def unit(power: float) -> float:
    return (10 * math.log10(power) + 25) / 30


# ---------------------------------------------------------------------------- reading points


@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("pad,row_pad,height", [(0, 0, 1), (4, 0, 1), (2, 6, 2)])
def test_read_points_layouts(big, pad, row_pad, height):
    """Byte order, point padding (extra bytes per point), row padding (row_step) and
    organised clouds (height > 1). Break tried: ignoring row_step (reading the points
    back to back) fails here."""
    fields = [("x", FLOAT64), ("velocity", FLOAT32), ("y", FLOAT32), ("intensity", INT16), ("z", FLOAT32)]
    rows = [(1.5, 9.0, -2.0, -7, 0.25), (3.0, 9.0, 4.5, 300, -1.0)]
    c = cloud(fields, rows, big=big, pad=pad, row_pad=row_pad, height=height)
    p = read_points(c, ("x", "y", "intensity"), optional=("z", "elevation"))
    np.testing.assert_array_equal(p["x"], [1.5, 3.0])
    np.testing.assert_array_equal(p["y"], [-2.0, 4.5])
    np.testing.assert_array_equal(p["intensity"], [-7, 300])
    np.testing.assert_array_equal(p["z"], [0.25, -1.0])
    np.testing.assert_array_equal(p["elevation"], [0.0, 0.0])   # absent optional field


def test_bad_clouds_name_the_problem():
    c = cloud([("x", FLOAT32), ("y", FLOAT32)], [(1.0, 2.0)])
    with pytest.raises(ConversionError, match=r"no field\(s\) \['intensity'\]; fields: \['x', 'y'\]") as e:
        read_points(c, ("x", "y", "intensity"))
    assert e.value.reason == "bad_cloud"
    short = cloud(XYZI, [(1.0, 2.0, 0.0, 3.0)] * 2)
    short.data = short.data[:-1]
    with pytest.raises(ConversionError, match=r"31 bytes, height\*row_step = 1\*32 = 32"):
        read_points(short, ("x",))
    narrow = cloud(XYZI, [(1.0, 2.0, 0.0, 3.0)])
    narrow.point_step = 12
    with pytest.raises(ConversionError, match=r"field 'intensity' \(offset 12, 4 bytes\) lies outside point_step 12"):
        read_points(narrow, ("x", "intensity"))
    narrow.point_step, narrow.row_step = 16, 8
    with pytest.raises(ConversionError, match=r"row_step 8 is smaller than width\*point_step"):
        read_points(narrow, ("x",))
    odd = cloud(XYZI, [(1.0, 2.0, 0.0, 3.0)])
    odd.fields[0].datatype = 42
    with pytest.raises(ConversionError, match="field 'x' has unknown datatype 42"):
        read_points(odd, ("x",))


# ---------------------------------------------------------------------------- the map


def test_point_lands_in_its_range_azimuth_bin():
    """A 30 dB return (the reference: power 1) at the centre of bin (24, 16) peaks there with
    unit(1 + 0.006); left of the heading (+y) is a low column, and z counts in the (slant)
    range. Break tried: azimuth atan2(-y, x) (mirrored columns) fails here."""
    to_map = CloudToRangeAzimuth(RadarConfig())
    for i, j, z in ((24, 16, 0.0), (40, 50, 0.0), (30, 5, -1.5)):
        m = to_map(cloud(XYZI, [(*at_bin(i, j, z), 30.0)]))
        assert m.shape == (64, 64) and m.dtype == np.float32
        assert np.unravel_index(int(m.argmax()), m.shape) == (i, j)
        assert m[i, j] == pytest.approx(unit(1.0 + 0.006), abs=1e-5)
    # empty scan / everything outside: the noise floor everywhere
    floor = unit(0.006)
    for rows in ([], [(7.0, 0.0, 0.0, 30.0), (0.5, 3.0, 0.0, 30.0), (np.nan, 1.0, 0.0, 30.0), (2.0, 0.0, 0.0, np.nan)]):
        m = to_map(cloud(XYZI, rows))
        np.testing.assert_allclose(m, floor, atol=1e-6)


def test_intensity_units():
    """dB: power 10^((I - ref) / 10); linear: I / ref; no intensity field: power 1.
    Break tried: power 10^(I / 10) without the reference fails here."""
    def peak(cfg, fields, row):
        m = CloudToRangeAzimuth(RadarConfig(pointcloud=cfg))(cloud(fields, [row]))
        return float(m[24, 16])

    x, y, z = at_bin(24, 16)
    assert peak(RadarCloudConfig("intensity", "db", 30.0), XYZI, (x, y, z, 20.0)) == pytest.approx(unit(0.1 + 0.006), abs=1e-5)
    assert peak(RadarCloudConfig("snr", "linear", 4.0), [("x", FLOAT32), ("y", FLOAT32), ("snr", FLOAT32)],
                (x, y, 2.0)) == pytest.approx(unit(0.5 + 0.006), abs=1e-5)
    assert peak(RadarCloudConfig("", "db", 30.0), [("x", FLOAT32), ("y", FLOAT32)], (x, y)) == \
        pytest.approx(unit(1.006), abs=1e-5)


def test_geometry_comes_from_the_radar_config():
    radar = RadarConfig(range_bins=32, range_res_m=0.2, azimuth_bins=16, fov_deg=90.0)
    r, az = (10 + 0.5) * 0.2, math.radians(45.0 - (3 + 0.5) * 90.0 / 16)
    m = CloudToRangeAzimuth(radar)(cloud(XYZI, [(r * math.cos(az), r * math.sin(az), 0.0, 30.0)]))
    assert m.shape == (32, 16) and np.unravel_index(int(m.argmax()), m.shape) == (10, 3)


def test_decode_stream_pointcloud2_for_radar_only():
    to_map = CloudToRangeAzimuth(RadarConfig())
    c = cloud(XYZI, [(*at_bin(24, 16), 30.0)])
    out = decode_stream(c, "pointcloud2", "radar", cloud_to_map=to_map)
    np.testing.assert_array_equal(out, to_map(c))
    assert out.flags.owndata and out.flags.writeable
    with pytest.raises(ConversionError, match="PointCloud2 cannot feed a rgb stream"):
        decode_stream(c, "pointcloud2", "rgb", cloud_to_map=to_map)


# ---------------------------------------------------------------------------- configuration


def test_shipped_sensors_config_has_the_pointcloud_section():
    cfg = load_sim_config()
    assert cfg.radar.pointcloud == RadarCloudConfig("intensity", "db", 30.0)
    assert cfg.to_dict()["radar"]["pointcloud"]["intensity_unit"] == "db"


@pytest.mark.parametrize("pc, key", [
    ({"intensity_unit": "dB"}, "radar.pointcloud.intensity_unit"),
    ({"intensity_field": 3}, "radar.pointcloud.intensity_field"),
    ({"intensity_unit": "linear", "intensity_ref": 0.0}, "radar.pointcloud.intensity_ref"),
    ({"intensity_ref": "high"}, "radar.pointcloud.intensity_ref"),
    ({"velocity_field": "v"}, "radar.pointcloud.velocity_field"),
])
def test_bad_pointcloud_config_names_key_and_file(pc, key):
    with pytest.raises(SimConfigError) as e:
        parse_sim_config({"radar": {"pointcloud": pc}}, "my_sensors.yaml")
    assert "my_sensors.yaml" in str(e.value) and f"'{key}'" in str(e.value)
