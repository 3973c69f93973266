"""Simulator: config loading/validation, determinism, geometry, occlusion, corruptions, schedules."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from admn_ros.core.noise import add_gaussian_noise
from admn_ros.core.preprocess import to_unit
from admn_ros.core.sim import (CorruptionSpec, GDTMSimulator, NodeConfig, SimConfig, SimConfigError,
                               SimFrame, StreamFrame, load_sim_config)
from admn_ros.core.sim.corruptions import apply_gaussian
from admn_ros.core.sim.render import CameraRenderer
from admn_ros.core.sim.scene import Obstacle, Scene
from admn_ros.core.streams import DEPTH_MAX_M, MODALITIES, StreamSet


@pytest.fixture(scope="module")
def cfg() -> SimConfig:
    return load_sim_config()


def _frames(sim: GDTMSimulator, n: int) -> list[SimFrame]:
    return [sim.step() for _ in range(n)]


# ----------------------------------------------------------------------------- config
def test_default_config(cfg: SimConfig) -> None:
    assert cfg.rate_hz == 15.0
    assert isinstance(cfg.streams, StreamSet)
    assert cfg.streams.ids[:3] == ["node1/rgb", "node1/depth", "node1/radar"]
    assert len(cfg.streams) == 9
    assert [n.name for n in cfg.nodes] == ["node1", "node2", "node3"]
    for n in cfg.nodes:
        assert isinstance(n, NodeConfig)
        assert (n.camera.width, n.camera.height) == (320, 240)
        assert n.position[2] == pytest.approx(1.5)
        assert 0 < n.pitch < math.pi / 2  # looking down
        # the optical axis points towards the track centre (inward)
        axis = n.rotation_optical()[:, 2]
        to_centre = -np.asarray(n.position)
        assert axis @ to_centre / np.linalg.norm(to_centre) > 0.9
    assert cfg.source is not None and cfg.source.name == "sensors.yaml"


def test_node_quaternion_matches_rotation(cfg: SimConfig) -> None:
    for n in cfg.nodes:
        x, y, z, w = n.quaternion_xyzw()
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        np.testing.assert_allclose(r, n.rotation_body(), atol=1e-12)


def test_config_missing_file_names_it(tmp_path: Path) -> None:
    p = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_sim_config(p)


@pytest.mark.parametrize("text, key", [
    ("rate_hz: 15\nbogus: 1\n", "bogus"),
    ("nodes:\n  - {name: node1, position: [0, 0, 1.5], yawdeg: 10}\n", r"nodes\[0\]\.yawdeg"),
    ("camera: {width: 320, heigth: 240}\n", r"camera\.heigth"),
    ("rate_hz: -5\n", "rate_hz"),
    ("camera: {width: 320.5}\n", r"camera\.width"),
    ("nodes:\n  - {name: node1, position: [0, 0]}\n", r"nodes\[0\]\.position"),
    ("nodes:\n  - {name: node1, position: [9, 0, 1.5]}\n", r"nodes\[0\]\.position"),
    ("nodes:\n  - {name: 'a/b', position: [0, 0, 1.5]}\n", r"nodes\[0\]\.name"),
    ("obstacles: {min: 3, max: 1}\n", r"obstacles\.min"),
    ("lighting: {gain: [1.2, 0.8]}\n", r"lighting\.gain"),
    ("lighting: {lights: [1, 2.5]}\n", r"lighting\.lights"),
    ("lighting: {sun: [0, 1]}\n", r"lighting\.sun"),
])
def test_config_bad_key_or_value_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "bad_sensors.yaml"
    p.write_text(text)
    with pytest.raises(SimConfigError, match="bad_sensors.yaml") as e:
        load_sim_config(p)
    assert e.match(key)
    assert isinstance(e.value, ValueError)


def test_config_invalid_yaml(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("rate_hz: [1, 2\n")
    with pytest.raises(SimConfigError, match="broken.yaml"):
        load_sim_config(p)


def test_config_partial_file_and_node_override(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("rate_hz: 10\ncamera: {width: 160, height: 120, hfov_deg: 80}\n"
                 "nodes:\n  - {name: a, position: [-2, -2, 1.4]}\n"
                 "  - {name: b, position: [2, -2, 1.4], camera: {width: 96, height: 96}}\n")
    c = load_sim_config(p)
    assert c.rate_hz == 10 and [n.name for n in c.nodes] == ["a", "b"]
    assert (c.nodes[0].camera.width, c.nodes[0].camera.height) == (160, 120)
    assert c.nodes[0].camera.hfov_deg == pytest.approx(80)
    assert (c.nodes[1].camera.width, c.nodes[1].camera.height) == (96, 96)
    assert c.nodes[0].yaw == pytest.approx(math.atan2(2, 2))  # default yaw: look at the centre
    f = GDTMSimulator(c, seed=1).step()
    assert f.streams["b/rgb"].data.shape == (96, 96, 3)
    assert f.streams["a/depth"].data.shape == (120, 160)


def test_config_lighting_ranges_set_the_episode_lighting(tmp_path: Path) -> None:
    """The shipped file states the built-in lighting ranges; a dimmer site renders darker frames.

    Break tried: ``sample_appearance`` drawing the gain from the built-in range again."""
    assert load_sim_config().lighting == SimConfig().lighting
    p = tmp_path / "dim.yaml"
    p.write_text("lighting: {lights: [4, 4], ambient: [0.1, 0.2], power: [1.0, 2.0], gain: [0.3, 0.4]}\n")
    dim = load_sim_config(p)
    assert dim.lighting.lights == (4, 4) and dim.lighting.gain == (0.3, 0.4)
    assert dim.to_dict()["lighting"]["ambient"] == [0.1, 0.2]
    bright, dark = (GDTMSimulator(c, seed=3).step().streams["node1/rgb"].data.mean() for c in (SimConfig(), dim))
    assert dark < 0.6 * bright


# ----------------------------------------------------------------------------- frames
def test_frame_format(cfg: SimConfig) -> None:
    sim = GDTMSimulator(cfg, seed=0, episode=0)
    f0, f1 = _frames(sim, 2)
    assert f0.t == 0.0 and f1.t == pytest.approx(1 / cfg.rate_hz) and f1.index == 1
    assert f0.gt_xy.dtype == np.float32 and f0.gt_xy.shape == (2,)
    assert list(f0.streams) == cfg.streams.ids
    for sid, sf in f0.streams.items():
        assert isinstance(sf, StreamFrame)
        assert (sf.corruption, sf.sigma, sf.severity) == ("none", 0.0, 0.0)
        mod = sid.split("/")[1]
        if mod == "rgb":
            assert sf.data.dtype == np.uint8 and sf.data.shape == (240, 320, 3)
        elif mod == "depth":
            assert sf.data.dtype == np.uint16 and sf.data.shape == (240, 320)
            assert sf.data.max() <= DEPTH_MAX_M * 1000
            assert (sf.data == 0).mean() < 0.2  # some holes, mostly valid
            assert (sf.data > 0).any()
        else:
            assert sf.data.dtype == np.float32 and sf.data.shape == (64, 64)
            assert 0.0 <= sf.data.min() and sf.data.max() <= 1.0
    assert set(f0.visibility) == {"node1", "node2", "node3"}


def test_determinism_same_seed_same_arrays(cfg: SimConfig) -> None:
    a = _frames(GDTMSimulator(cfg, seed=3, episode=2), 3)
    b = _frames(GDTMSimulator(cfg, seed=3, episode=2), 3)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.gt_xy, fb.gt_xy)
        for sid in fa.streams:
            np.testing.assert_array_equal(fa.streams[sid].data, fb.streams[sid].data)


def test_different_seed_or_episode_differs(cfg: SimConfig) -> None:
    ref = GDTMSimulator(cfg, seed=0, episode=0).step()
    for seed, ep in ((1, 0), (0, 1)):
        f = GDTMSimulator(cfg, seed=seed, episode=ep).step()
        assert not np.array_equal(ref.gt_xy, f.gt_xy)
        for sid in ref.streams:
            assert not np.array_equal(ref.streams[sid].data, f.streams[sid].data), sid


def test_reset_replays_episode(cfg: SimConfig) -> None:
    sim = GDTMSimulator(cfg, seed=0, episode=4)
    a = _frames(sim, 2)
    sim.reset()
    b = _frames(sim, 2)
    np.testing.assert_array_equal(a[1].streams["node2/rgb"].data, b[1].streams["node2/rgb"].data)


def test_bad_seed_or_episode(cfg: SimConfig) -> None:
    with pytest.raises(ValueError, match="seed"):
        GDTMSimulator(cfg, seed=-1)
    with pytest.raises(ValueError, match="episode"):
        GDTMSimulator(cfg, episode=1.5)  # type: ignore[arg-type]


def test_gt_stays_inside_track_and_speed_in_range(cfg: SimConfig) -> None:
    """The driven speed (arc length per step) stays in the car's range. Break tried: tripled the
    speed oscillation amplitudes in sample_trajectory."""
    x0, x1, y0, y1 = cfg.track.bounds
    kinds = set()
    dt = 0.05
    for ep in range(24):
        scene = Scene.sample(cfg, np.random.default_rng([0, ep]))
        kinds.add(scene.trajectory.kind)
        poses = np.array([scene.trajectory.pose(t) for t in np.arange(0, 40, dt)])
        assert poses[:, 0].min() >= x0 and poses[:, 0].max() <= x1
        assert poses[:, 1].min() >= y0 and poses[:, 1].max() <= y1
        v = np.diff([scene.trajectory.arc_length(t) for t in np.arange(0, 40, dt)]) / dt
        assert v.min() >= cfg.car.speed_min - 1e-9 and v.max() <= cfg.car.speed_max + 1e-9
        # heading follows the velocity direction
        vel = np.diff(poses[:, :2], axis=0)
        head = np.arctan2(vel[:, 1], vel[:, 0])
        err = np.abs((head - poses[:-1, 2] + np.pi) % (2 * np.pi) - np.pi)
        assert np.median(err) < 0.1
        assert cfg.obstacles_min <= len(scene.obstacles) <= cfg.obstacles_max
        car_r = 0.5 * math.hypot(cfg.car.length, cfg.car.width)
        for ob in scene.obstacles:  # the car never drives through an obstacle
            assert ob.footprint_distance(poses[:, :2]).min() > car_r
    assert kinds == {"oval", "figure8", "spline"}


# ----------------------------------------------------------------------------- occlusion
def test_obstacle_hides_car(cfg: SimConfig) -> None:
    node = cfg.nodes[0]
    base = Scene.sample(cfg, np.random.default_rng(7))
    # car 1.2 m in front of node1 on the floor; a tall box half-way between
    d = -np.asarray(node.position[:2]) / np.linalg.norm(node.position[:2])
    car_xy = np.asarray(node.position[:2]) + 2.6 * d
    box_xy = np.asarray(node.position[:2]) + 1.6 * d
    pose = (float(car_xy[0]), float(car_xy[1]), 0.3)
    box = Obstacle("box", (float(box_xy[0]), float(box_xy[1])), 0.5, 0.5, 1.2, 0.0, (0.5, 0.5, 0.5))
    rng = np.random.default_rng(0)
    free = CameraRenderer(node, cfg, Scene(base.trajectory, [], base.appearance), rng)
    blocked = CameraRenderer(node, cfg, Scene(base.trajectory, [box], base.appearance), rng)
    rgb_f, depth_f, vis_f, px_f = free.render(pose, np.random.default_rng(1))
    rgb_b, depth_b, vis_b, px_b = blocked.render(pose, np.random.default_rng(1))
    assert vis_f == 1.0 and px_f > 50
    assert vis_b == 0.0 and px_b == 0
    # with no car drawn, the blocked frame equals its own background bank entry
    bank_rgb = [blocked._bank_rgb[k] for k in range(len(blocked._bank_rgb))]
    assert any(np.array_equal(rgb_b, b) for b in bank_rgb)
    # the car changes the depth image where it is visible (nearer than the floor)
    assert not any(np.array_equal(depth_f, b) for b in free._bank_depth)


def test_occlusion_happens_in_some_simulated_frames(cfg: SimConfig) -> None:
    found = False
    for ep in range(20):
        sim = GDTMSimulator(cfg, seed=0, episode=ep)
        for _ in range(40):
            f = sim.step()
            if any(0.0 <= v < 0.5 for v in f.visibility.values()) and max(f.visibility.values()) > 0.9:
                found = True
                break
            sim.skip(3)
        if found:
            break
    assert found, "no frame where an obstacle hides the car from one node"


def test_car_is_visible_and_large_enough(cfg: SimConfig) -> None:
    sim = GDTMSimulator(cfg, seed=0, episode=1)
    px = []
    for _ in range(20):
        f = sim.step()
        px.extend(f.car_pixels.values())
        sim.skip(5)
    px = np.array(px)
    # median car area at 64x64 (5 x 3.75 sensor pixels per model pixel) is several pixels
    assert np.median(px) / (5 * 3.75) >= 4


# ----------------------------------------------------------------------------- corruption math
@pytest.mark.parametrize("modality", ["rgb", "depth", "radar"])
def test_gaussian_sigma_statistics_before_clip(modality: str) -> None:
    rng = np.random.default_rng(0)
    sigma = 0.05  # mid-grey +- 10 sigma: clipping never happens
    shape = {"rgb": (240, 320, 3), "depth": (240, 320), "radar": (240, 320)}[modality]
    data = {"rgb": np.full(shape, 128, np.uint8), "depth": np.full(shape, 4000, np.uint16),
            "radar": np.full(shape, 0.5, np.float32)}[modality]
    out = to_unit(modality, apply_gaussian(modality, data, sigma, rng))
    diff = out - to_unit(modality, data)
    assert abs(diff.mean()) < 0.002
    assert diff.std() == pytest.approx(sigma, rel=0.03)
    assert out.dtype == np.float32


@pytest.mark.parametrize("modality", ["rgb", "depth", "radar"])
def test_gaussian_clip_bounds_and_identity(modality: str) -> None:
    rng = np.random.default_rng(1)
    data = {"rgb": np.full((60, 80, 3), 128, np.uint8), "depth": np.full((60, 80), 4000, np.uint16),
            "radar": np.full((60, 80), 0.5, np.float32)}[modality]
    smax = MODALITIES[modality].sigma_max
    big = apply_gaussian(modality, data, smax, rng)
    assert big.dtype == data.dtype and big.shape == data.shape
    u = to_unit(modality, big)
    assert u.min() >= 0.0 and u.max() <= 1.0
    assert (u == 0).mean() > 0.2 and (u == 1).mean() > 0.2  # heavy noise saturates both ends
    np.testing.assert_array_equal(apply_gaussian(modality, data, 0.0, rng), data)
    # the shared helper agrees on the math
    x = add_gaussian_noise(np.full(1000, 0.5, np.float32), 0.0, rng)
    np.testing.assert_array_equal(x, 0.5)


@pytest.mark.parametrize("modality", ["rgb", "depth", "radar"])
def test_sigma_max_per_modality(modality: str) -> None:
    smax = MODALITIES[modality].sigma_max
    r = CorruptionSpec("gaussian", severity=1.0).resolved(modality)
    assert r.sigma == pytest.approx(smax) and r.severity == 1.0
    r = CorruptionSpec("gaussian", sigma=smax / 2).resolved(modality)
    assert r.severity == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sigma_max"):
        CorruptionSpec("gaussian", sigma=smax * 1.01).resolved(modality)


def test_sigma_zero_corruption_is_identity_in_simulator(cfg: SimConfig) -> None:
    clean = GDTMSimulator(cfg, seed=5).step()
    sim = GDTMSimulator(cfg, seed=5)
    sim.set_corruption("node2/depth", CorruptionSpec("gaussian", sigma=0.0))
    f = sim.step()
    np.testing.assert_array_equal(f.streams["node2/depth"].data, clean.streams["node2/depth"].data)
    assert f.streams["node2/depth"].corruption == "gaussian" and f.streams["node2/depth"].sigma == 0.0


def test_corruption_reports_truth_and_leaves_other_streams_clean(cfg: SimConfig) -> None:
    clean = GDTMSimulator(cfg, seed=2).step()
    sim = GDTMSimulator(cfg, seed=2)
    sim.set_corruption("node1/rgb", CorruptionSpec("gaussian", sigma=1.5))
    sim.set_corruption("node3/radar", CorruptionSpec("clutter", severity=0.5))
    f = sim.step()
    s = f.streams["node1/rgb"]
    assert (s.corruption, s.sigma, s.severity) == ("gaussian", 1.5, 0.5)
    assert not np.array_equal(s.data, clean.streams["node1/rgb"].data)
    r = f.streams["node3/radar"]
    assert (r.corruption, r.sigma, r.severity) == ("clutter", 0.0, 0.5)
    assert r.data.dtype == np.float32 and r.data.mean() > clean.streams["node3/radar"].data.mean()
    for sid in ("node1/depth", "node1/radar", "node2/rgb", "node3/rgb"):
        np.testing.assert_array_equal(f.streams[sid].data, clean.streams[sid].data)
        assert f.streams[sid].corruption == "none"
    np.testing.assert_array_equal(f.gt_xy, clean.gt_xy)


def test_real_world_corruptions(cfg: SimConfig) -> None:
    clean = GDTMSimulator(cfg, seed=4).step()
    sim = GDTMSimulator(cfg, seed=4)
    sim.set_corruption("node1/rgb", CorruptionSpec("low_light", severity=0.9))
    sim.set_corruption("node2/rgb", CorruptionSpec("motion_blur", severity=0.8))
    sim.set_corruption("node2/depth", CorruptionSpec("motion_blur", severity=0.8))
    sim.set_corruption("node3/depth", CorruptionSpec("dropout"))
    f = sim.step()
    ll = f.streams["node1/rgb"]
    assert ll.data.dtype == np.uint8 and ll.data.mean() < 0.7 * clean.streams["node1/rgb"].data.mean()
    mb = f.streams["node2/rgb"].data.astype(np.float32)
    cl = clean.streams["node2/rgb"].data.astype(np.float32)
    assert np.abs(np.diff(mb, axis=1)).mean() < 0.8 * np.abs(np.diff(cl, axis=1)).mean()
    assert f.streams["node2/depth"].data.dtype == np.uint16
    d = f.streams["node3/depth"]
    assert d.data is None and d.corruption == "dropout" and d.severity == 1.0


def test_frozen_repeats_last_clean_frame(cfg: SimConfig) -> None:
    ref = _frames(GDTMSimulator(cfg, seed=6), 5)
    sim = GDTMSimulator(cfg, seed=6)
    _frames(sim, 2)
    sim.set_corruption("node1/rgb", CorruptionSpec("frozen"))
    f2, f3, f4 = _frames(sim, 3)
    for f in (f2, f3, f4):
        assert f.streams["node1/rgb"].corruption == "frozen"
        np.testing.assert_array_equal(f.streams["node1/rgb"].data, ref[1].streams["node1/rgb"].data)
    np.testing.assert_array_equal(f4.streams["node2/rgb"].data, ref[4].streams["node2/rgb"].data)


def test_flicker_schedule(cfg: SimConfig) -> None:
    sim = GDTMSimulator(cfg, seed=0)
    sim.set_corruption("node2/radar", CorruptionSpec("gaussian", sigma=0.3, schedule="flicker",
                                                     period_s=1.0, duty=0.4))
    frames = _frames(sim, 31)
    on = np.array([f.streams["node2/radar"].corruption == "gaussian" for f in frames])
    t = np.array([f.t for f in frames])
    np.testing.assert_array_equal(on, (t + 1e-9) % 1.0 < 0.4)
    assert 0.3 < on.mean() < 0.5
    for f, o in zip(frames, on):
        s = f.streams["node2/radar"]
        assert s.sigma == (0.3 if o else 0.0) and s.severity == pytest.approx(0.3 if o else 0.0)


def test_clear_corruption(cfg: SimConfig) -> None:
    sim = GDTMSimulator(cfg, seed=0)
    sim.set_corruption("node1/radar", CorruptionSpec("dropout"))
    assert "node1/radar" in sim.corruptions
    sim.set_corruption("node1/radar", None)
    assert sim.step().streams["node1/radar"].data is not None
    sim.set_corruption("node1/rgb", CorruptionSpec("frozen"))
    sim.clear_corruptions()
    assert sim.corruptions == {}


# ----------------------------------------------------------------------------- bad parameters
def test_bad_corruption_parameters(cfg: SimConfig) -> None:
    sim = GDTMSimulator(cfg, seed=0)
    with pytest.raises(ValueError, match="node9/rgb"):
        sim.set_corruption("node9/rgb", CorruptionSpec("gaussian", sigma=0.1))
    with pytest.raises(ValueError, match="'fog'"):
        CorruptionSpec("fog")
    with pytest.raises(ValueError, match="sigma"):
        CorruptionSpec("gaussian", sigma=-0.1)
    with pytest.raises(ValueError, match="severity"):
        CorruptionSpec("low_light", severity=1.5)
    with pytest.raises(ValueError, match="schedule"):
        CorruptionSpec("gaussian", sigma=0.1, schedule="sometimes")
    with pytest.raises(ValueError, match="duty"):
        CorruptionSpec("gaussian", sigma=0.1, schedule="flicker", duty=0.0)
    with pytest.raises(ValueError, match="period_s"):
        CorruptionSpec("gaussian", sigma=0.1, schedule="flicker", period_s=0.0)
    with pytest.raises(ValueError, match=r"node1/rgb.*'clutter'"):
        sim.set_corruption("node1/rgb", CorruptionSpec("clutter"))
    with pytest.raises(ValueError, match="'low_light'"):
        sim.set_corruption("node1/depth", CorruptionSpec("low_light"))
    with pytest.raises(ValueError, match="gaussian"):
        sim.set_corruption("node1/rgb", CorruptionSpec("motion_blur", sigma=0.2))
    with pytest.raises(ValueError, match="sigma or severity"):
        sim.set_corruption("node1/rgb", CorruptionSpec("gaussian"))


def test_core_sim_is_rclpy_free() -> None:
    root = Path(__file__).resolve().parents[2] / "admn_ros" / "core"
    files = list((root / "sim").glob("*.py")) + list((root / "data").glob("*.py")) + [root / "preprocess.py"]
    imports = re.compile(r"^\s*(import|from)\s+rclpy\b", re.MULTILINE)
    for p in files:
        assert not imports.search(p.read_text()), p


def test_one_corruption_parser_for_parameters_and_arguments():
    """``parse_corruption`` reads the sensor node's parameter syntax and ``record --corrupt``'s
    short one alike, and checks the spec against a modality. Break tried: ``period`` not
    accepted as ``period_s`` (the short syntax failed)."""
    from admn_ros.core.sim import corruption_text, parse_corruption

    long = parse_corruption("gaussian:sigma=2.0,schedule=flicker,period_s=2.0,duty=0.5")
    assert parse_corruption("gaussian:sigma=2,flicker:period=2:duty=0.5") == long
    assert parse_corruption(corruption_text(long)) == long and parse_corruption("DROPOUT").kind == "dropout"
    assert parse_corruption("dropout,flicker:period=0.4").period_s == 0.4
    for bad, why in (("", "empty"), ("flicker", "is a schedule"), ("bogus", "unknown corruption kind"),
                     ("gaussian:sigma", "key=value"), ("gaussian:foo=1", "unknown corruption option"),
                     ("gaussian:sigma=x", "not a number"), ("gaussian:sigma=-1", "negative sigma")):
        with pytest.raises(ValueError, match=why):
            parse_corruption(bad)
    with pytest.raises(ValueError, match="does not apply to 'radar'"):
        parse_corruption("low_light:severity=0.5", "radar")
