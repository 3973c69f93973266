"""Bag streams through the one image converter: a PointCloud2 radar topic drawn into the
range-azimuth map, a message the stream cannot use skipped and counted (never the end of
the replay), and offline reading and replay with no ROS message package importable
(rosbags only). No DDS."""
from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from admn_ros.bags import msgs
from admn_ros.bags.reader import BagFrames
from admn_ros.bags.record import open_writer
from admn_ros.bags.typestore import get_admn_typestore
from admn_ros.core.paths import SOURCE_ROOT
from admn_ros.core.tasks import get_task

FRAMES = 10
TRACKING = get_task("tracking")
BAD_FRAME = 4          # its rgb message is yuv422
T0 = 1_700_000_000_000_000_000
PERIOD = 66_666_667
MAPPING = {"slop": 0.02,
           "streams": {"node1/rgb": "/cam/image_raw", "node1/depth": "/cam/depth",
                       "node1/radar": {"topic": "/ti_mmwave/radar_scan_pcl", "encoding": "PointCloud2"}},
           "ground_truth": "/mocap/point"}


def radar_cloud(hdr, points: np.ndarray):
    """sensor_msgs/PointCloud2 with float32 x, y, z, intensity, velocity (as TI mmWave drivers)."""
    names = ("x", "y", "z", "intensity", "velocity")
    fields = [msgs.new_msg("sensor_msgs/msg/PointField", name=n, offset=4 * i, datatype=7, count=1)
              for i, n in enumerate(names)]
    data = np.ascontiguousarray(points, dtype="<f4").reshape(-1).view(np.uint8)
    return msgs.new_msg("sensor_msgs/msg/PointCloud2", header=hdr, height=1, width=len(points), fields=fields,
                        is_bigendian=False, point_step=20, row_step=20 * len(points), data=data.copy(),
                        is_dense=True)


def bin_point(i: int, j: int, intensity: float) -> list[float]:
    """A detection at the centre of range bin i, azimuth column j of the shipped radar map."""
    r, az = (i + 0.5) * 0.1, math.radians(60.0 - (j + 0.5) * 1.875)
    return [r * math.cos(az), r * math.sin(az), 0.0, intensity, 0.3]


def write_bag(path: Path) -> Path:
    ts = get_admn_typestore()
    w = open_writer(path, "sqlite3")
    c_rgb = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
    c_d = w.add_connection("/cam/depth", "sensor_msgs/msg/Image", typestore=ts)
    c_r = w.add_connection("/ti_mmwave/radar_scan_pcl", "sensor_msgs/msg/PointCloud2", typestore=ts)
    c_gt = w.add_connection("/mocap/point", "geometry_msgs/msg/PointStamped", typestore=ts)
    for k in range(FRAMES):
        t = T0 + k * PERIOD
        hdr = msgs.header(t, "node1")
        rgb = np.full((8, 8, 3), k, np.uint8)
        m = msgs.image(rgb, "rgb8", hdr)
        if k == BAD_FRAME:
            m = msgs.new_msg("sensor_msgs/msg/Image", header=hdr, height=8, width=8, encoding="yuv422", step=16,
                             data=np.zeros(128, np.uint8))
        w.write(c_rgb, t, msgs.serialize(m))
        w.write(c_d, t, msgs.serialize(msgs.image(np.full((8, 8), 1000 + k, np.uint16), "16UC1", hdr)))
        pts = np.array([bin_point(10 + k, 16, 30.0), bin_point(50, 40, 20.0)], np.float32)
        w.write(c_r, t, msgs.serialize(radar_cloud(hdr, pts)))
        w.write(c_gt, t, msgs.serialize(TRACKING.fill_truth(msgs.new_msg("geometry_msgs/msg/PointStamped", header=hdr),
                                                            (0.1 * k, 0.0))))
    w.close()
    return path


def test_pointcloud_radar_and_undecodable_messages(tmp_path, caplog):
    """PointCloud2 radar frames become the range-azimuth map (peak in the detection's bin);
    the one yuv422 rgb message is skipped: that frame has no rgb, every frame is still there,
    the skip is counted and logged once with the topic and encoding.
    Break tried: raising on an undecodable message mid-bag (the old behaviour) fails here."""
    from admn_ros.core.radar_cloud import CloudToRangeAzimuth
    from admn_ros.core.sim import load_sim_config

    bag = write_bag(tmp_path / "rig")
    caplog.set_level(logging.WARNING, logger="admn_ros.bags.reader")
    with BagFrames(bag, MAPPING) as bf:
        frames = list(bf)
        assert bf.kinds["node1/radar"] == "pointcloud2"
    assert len(frames) == FRAMES
    assert bf.undecodable == {"node1/rgb": 1}
    warned = [r.getMessage() for r in caplog.records if "yuv422" in r.getMessage()]
    assert len(warned) == 1 and "/cam/image_raw" in warned[0]
    to_map = CloudToRangeAzimuth(load_sim_config().radar)
    for k, f in enumerate(frames):
        assert f.stamp_ns == T0 + k * PERIOD
        if k == BAD_FRAME:
            assert f.streams["node1/rgb"] is None and f.stream_stamps_ns["node1/rgb"] is None
        else:
            assert (f.streams["node1/rgb"] == k).all()
        assert (f.streams["node1/depth"] == 1000 + k).all()
        radar = f.streams["node1/radar"]
        assert radar.shape == (64, 64) and radar.dtype == np.float32
        assert np.unravel_index(int(radar.argmax()), radar.shape) == (10 + k, 16)
        pts = np.array([bin_point(10 + k, 16, 30.0), bin_point(50, 40, 20.0)], np.float32)
        np.testing.assert_array_equal(radar, to_map(radar_cloud(msgs.header(0), pts)))
        assert f.gt_xy == pytest.approx([0.1 * k, 0.0])


def test_a_radar_seeing_the_same_scene_is_not_frozen(tmp_path):
    """A radar driver's scans repeat exactly in a static or empty scene (here: no detection in 12
    scans): its stream stays ok and present in every frame. Break tried: the content signature of
    PointCloud2 radar checked like an image's (frozen from the 9th scan on)."""
    ts = get_admn_typestore()
    w = open_writer(tmp_path / "empty", "sqlite3")
    cons = {t: w.add_connection(t, ty, typestore=ts) for t, ty in (
        ("/cam/image_raw", "sensor_msgs/msg/Image"), ("/cam/depth", "sensor_msgs/msg/Image"),
        ("/ti_mmwave/radar_scan_pcl", "sensor_msgs/msg/PointCloud2"))}
    rng = np.random.default_rng(0)
    for k in range(12):
        t = T0 + k * PERIOD
        hdr = msgs.header(t, "node1")
        w.write(cons["/cam/image_raw"], t, msgs.serialize(msgs.image(rng.integers(0, 255, (8, 8, 3), np.uint8),
                                                                     "rgb8", hdr)))
        w.write(cons["/cam/depth"], t, msgs.serialize(msgs.image(np.full((8, 8), 1000 + k, np.uint16), "16UC1", hdr)))
        w.write(cons["/ti_mmwave/radar_scan_pcl"], t, msgs.serialize(radar_cloud(hdr, np.zeros((0, 5), np.float32))))
    w.close()
    with BagFrames(tmp_path / "empty", {k: v for k, v in MAPPING.items() if k != "ground_truth"}) as bf:
        frames = list(bf)
    assert len(frames) == 12
    assert all(f.status["node1/radar"] == "ok" and f.streams["node1/radar"] is not None for f in frames)


def test_pointcloud_on_a_camera_stream_is_a_content_error(tmp_path):
    from admn_ros.bags.reader import BagContentError

    bag = write_bag(tmp_path / "rig")
    with pytest.raises(BagContentError, match=r"node1/rgb.*PointCloud2.*expected sensor_msgs/Image or "
                                              r"sensor_msgs/CompressedImage\n"):
        BagFrames(bag, {"streams": {"node1/rgb": "/ti_mmwave/radar_scan_pcl"}})


#: Imports refused in the child: rclpy and every ROS message / middleware package.
BLOCKER = textwrap.dedent("""
    import importlib.abc, re, sys
    BLOCKED = re.compile(r"(rclpy|rcl_.*|rmw.*|rosidl.*|rpyutils|.*_msgs|.*_interfaces|cv_bridge|message_filters)$")
    tried = []

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if BLOCKED.match(name.split(".")[0]) or name == "admn_ros.msg" or name.startswith("admn_ros.msg."):
                tried.append(name)
                raise ModuleNotFoundError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, Blocker())
""")


def test_offline_bag_reading_needs_no_ros_packages(tmp_path):
    """In a process where rclpy, sensor_msgs, std_msgs, admn_ros.msg and every other ROS
    message package are unimportable: import admn_ros.bags, record the simulator, read both
    bags (PointCloud2 radar included) and replay them with `admn-ros replay`.
    Break tried: the bag reader importing depth_m_to_mm16 from admn_ros.ros.convert again
    (which imports sensor_msgs) fails here."""
    bag = write_bag(tmp_path / "rig")
    mapping = tmp_path / "rig.yaml"
    mapping.write_text(yaml.safe_dump(MAPPING))
    script = BLOCKER + textwrap.dedent(f"""
        import json
        import admn_ros.bags
        from admn_ros.bags.reader import BagFrames
        from admn_ros.bags.record import record_sim
        from admn_ros.bags.replay_cli import main

        out = {{}}
        with BagFrames({str(bag)!r}, {str(mapping)!r}) as bf:
            frames = list(bf)
        out["rig_frames"] = len(frames)
        out["radar_shape"] = list(frames[0].streams["node1/radar"].shape)
        out["undecodable"] = bf.undecodable
        s = record_sim({str(tmp_path / 'sim')!r}, frames=6)
        with BagFrames(s.path) as bf:
            out["sim_frames"] = len(list(bf))
        out["replay_rig"] = main([{str(bag)!r}, "--mapping", {str(mapping)!r}, "--pipeline", "baseline",
                                  "--out", {str(tmp_path / 'replay_rig')!r}, "--no-progress"])
        out["replay_sim"] = main([str(s.path), "--pipeline", "baseline", "--out", {str(tmp_path / 'replay_sim')!r},
                                  "--no-progress"])
        out["loaded"] = sorted(m for m in sys.modules if BLOCKED.match(m.split(".")[0]) or m.startswith("admn_ros.msg"))
        out["tried"] = sorted(set(tried))
        print("RESULT " + json.dumps(out))
    """)
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(next(line for line in p.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert res["rig_frames"] == FRAMES and res["radar_shape"] == [64, 64]
    assert res["undecodable"] == {"node1/rgb": 1}
    assert res["sim_frames"] == 6
    assert res["replay_rig"] == 0 and res["replay_sim"] == 0, p.stderr[-3000:]
    assert res["loaded"] == []
    assert (tmp_path / "replay_sim" / "summary.json").is_file()
    assert json.loads((tmp_path / "replay_rig" / "summary.json").read_text())["frames"] == FRAMES
