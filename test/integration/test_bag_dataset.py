"""``admn-ros dataset --from-bag``: datasets from recordings written here (sqlite3, mcap, ROS 1,
``admn-ros record`` output, realsense/zed-style names), every ground-truth message type,
skip reasons, time-disjoint splits, and the whole own-robot path through the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from admn_ros.bags import msgs
from admn_ros.bags.dataset import assign_splits, build_dataset, dataset_main
from admn_ros.bags.reader import BagContentError
from admn_ros.bags.record import DEFAULT_START_TIME, open_writer, parse_corrupt_arg, record_sim
from admn_ros.bags.typestore import get_admn_typestore
from admn_ros.core.data import SPLITS, SimDataset
from admn_ros.core.paths import SOURCE_ROOT
from admn_ros.core.preprocess import to_storage
from admn_ros.core.sim import GDTMSimulator, load_sim_config
from admn_ros.core.tasks import get_task

T0 = 1_700_000_000_000_000_000
PERIOD = round(1e9 / 15)
NODES = ("node1", "node2", "node3")


def _splits(out: Path) -> dict[str, SimDataset]:
    return {s: SimDataset(out, s) for s in SPLITS}


def _check_time_disjoint(ds: dict[str, SimDataset], gap_s: float) -> None:
    """Kept frames of different splits are at least ``gap_s`` apart; segments are in one split."""
    stamps = {s: np.load(d.root / s / "stamp_ns.npy") for s, d in ds.items()}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert np.abs(stamps[a][:, None] - stamps[b][None, :]).min() >= gap_s * 1e9, (a, b)
                assert not set(ds[a].episode.tolist()) & set(ds[b].episode.tolist())


def _rig_frames(n: int) -> list:
    sim = GDTMSimulator(load_sim_config(None), seed=5, episode=2)
    return [sim.step() for _ in range(n)]


def _write_rig_bag(path: Path, frames: list, gt_xy, *, storage: str = "mcap", gt_hole: tuple[float, float] = (),
                   hole_nan: bool = False, bad_rgb: int = -1, no_depth: int = -1) -> None:
    """A realsense/zed-style recording (config/bag_topics_realsense_zed.yaml names): ZED colour as
    PNG (node1) / JPEG CompressedImage, RealSense 16UC1 depth (node1, node2) and 32FC1 metres
    (node3), no radar, per-driver stamp offsets, mocap PoseStamped at 120 Hz from ``gt_xy(t_s)``
    with no samples in ``gt_hole`` (s), or NaN positions there (``hole_nan``: a tracker that lost
    the target); frame ``bad_rgb`` has a broken node2 JPEG and frame ``no_depth`` no node1 depth."""
    ts = get_admn_typestore()
    w = open_writer(path, storage)
    conns: dict[str, object] = {}

    def put(topic: str, typ: str, t: int, m: object) -> None:
        if topic not in conns:
            conns[topic] = w.add_connection(topic, typ, typestore=ts)
        w.write(conns[topic], t + 1_000_000, msgs.serialize(m))

    for k, f in enumerate(frames):
        for n, node in enumerate(NODES):
            t = T0 + k * PERIOD + 3_000_000 * n
            rgb = f.streams[f"{node}/rgb"].data[:, :, ::-1]
            ok, buf = cv2.imencode(".png" if node == "node1" else ".jpg", rgb)
            data = buf.tobytes() if k != bad_rgb or node != "node2" else b"\xff\xd8 not a jpeg"
            put(f"/{node}/zed/zed_node/rgb/image_rect_color/compressed", "sensor_msgs/msg/CompressedImage", t,
                msgs.new_msg("sensor_msgs/msg/CompressedImage", header=msgs.header(t, f"{node}_zed"),
                             format="png" if node == "node1" else "jpeg", data=np.frombuffer(data, np.uint8)))
            depth = f.streams[f"{node}/depth"].data
            if depth is None or (k == no_depth and node == "node1"):
                continue
            img = msgs.image(depth.astype(np.float32) / 1000.0, "32FC1", msgs.header(t + 7_000_000)) \
                if node == "node3" else msgs.image(depth, "16UC1", msgs.header(t + 7_000_000))
            put(f"/{node}/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", t + 7_000_000, img)
    for j in range(int(len(frames) * PERIOD / 1e9 * 120) + 12):
        t = T0 - 40_000_000 + j * round(1e9 / 120)
        s = (t - T0) * 1e-9
        x, y = gt_xy(s)
        if gt_hole and gt_hole[0] <= s < gt_hole[1]:
            if not hole_nan:
                continue
            x = y = float("nan")
        put("/vrpn_mocap/rc_car/pose", "geometry_msgs/msg/PoseStamped", t,
            msgs.new_msg("geometry_msgs/msg/PoseStamped", header=msgs.header(t, "world"), pose=msgs.pose(x, y, 0.1)))
    w.close()


def _line(s: float) -> tuple[float, float]:
    return 0.1 + 0.5 * s, -0.3 + 0.2 * s


# ---------------------------------------------------------------------------- our own recordings


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_record_output_becomes_a_dataset_equal_to_the_simulator(tmp_path, storage):
    """`admn-ros record` bags (our names): every kept sample is the simulator's frame through
    to_storage with its ground truth; frames without node2 depth are skipped and counted;
    splits are whole segments, disjoint in time by the gap.
    Break tried: storing every frame (no missing-stream check) fails the counts and the equality."""
    n = 45
    corrupt = dict([parse_corrupt_arg("node2/depth=dropout,flicker:period=0.7:duty=0.3")])
    bag = record_sim(tmp_path / "bag", frames=n, seed=1, episode=3, corruptions=corrupt, storage=storage).path
    sim = GDTMSimulator(load_sim_config(None), seed=1, episode=3)
    for sid, spec in corrupt.items():
        sim.set_corruption(sid, spec)
    ref = [sim.step() for _ in range(n)]
    missing = sum(f.streams["node2/depth"].data is None for f in ref)
    assert 0 < missing < n

    out = tmp_path / "ds"
    rep = build_dataset([bag], "default", out, segment_s=0.5, gap_s=0.15, progress=False, log=None)
    r = rep["bags"][0]
    assert r["frames"] == n and r["skipped"]["missing stream"] == missing
    assert r["skipped_streams"] == {"missing stream: node2/depth": missing}
    assert r["kept"] + sum(r["skipped"].values()) == n and sum(r["splits"].values()) == r["kept"]
    ds = _splits(out)
    assert sum(len(d) for d in ds.values()) == r["kept"] and all(len(d) for d in ds.values())
    _check_time_disjoint(ds, 0.15)
    t_start = int(DEFAULT_START_TIME * 1e9)
    rate = load_sim_config(None).rate_hz
    for d in ds.values():
        stamps = np.load(d.root / d.split / "stamp_ns.npy")
        for i, st in enumerate(stamps):
            f = ref[round((st - t_start) * rate / 1e9)]
            for k, node in enumerate(NODES):
                for mod, arr in (("rgb", d.rgb), ("depth", d.depth), ("radar", d.radar)):
                    assert np.array_equal(arr[i, k], to_storage(mod, f.streams[f"{node}/{mod}"].data)), (i, node, mod)
            assert np.allclose(d.gt[i], f.gt_xy, atol=1e-6)
    assert SimDataset(out, "train").meta["nodes"] == list(NODES)


# ---------------------------------------------------------------------------- foreign recordings


@pytest.mark.parametrize("hole_nan", [False, True], ids=["no_samples", "nan_samples"])
def test_realsense_zed_bag_reports_each_skip_reason(tmp_path, hole_nan):
    """A foreign rig bag: PNG / JPEG colour, 16UC1 mm and 32FC1 m depth, mocap PoseStamped with
    a hole (no samples, or NaN positions); one broken JPEG and one frame without node1 depth. Each
    skipped frame is counted under its reason; kept ground truth is the mocap interpolated to the
    frame stamp; the absent radar is stored as zeros and listed.
    Breaks tried: ignoring ground_truth.tolerance (nearest sample at any distance) keeps the hole's
    frames; keeping NaN positions stores NaN ground truth for them."""
    frames = _rig_frames(40)
    bag = tmp_path / "rig"
    _write_rig_bag(bag, frames, _line, gt_hole=(1.0, 1.5), hole_nan=hole_nan, bad_rgb=5, no_depth=30)
    out = tmp_path / "ds"
    rep = build_dataset([bag], "realsense_zed", out, segment_s=0.5, gap_s=0.1, progress=False, log=None)
    r = rep["bags"][0]
    # frame k is stamped k / 15 + 0.013 s (the newest of its set: node3 depth); the mocap samples
    # around the hole are at 0.9933 and 1.5017 s, so with tolerance 0.02 s frames 16..22 have none
    no_gt = list(range(16, 23))
    assert r["frames"] == 40
    assert r["skipped_streams"] == {"bad message: node2/rgb": 1, "missing stream: node1/depth": 1}
    assert r["skipped"]["no ground truth"] == len(no_gt) > 0
    assert r["kept"] == 40 - 2 - len(no_gt) - r["skipped"].get("split gap", 0)
    ds = _splits(out)
    meta = ds["train"].meta
    assert meta["absent_streams"] == ["node1/radar", "node2/radar", "node3/radar"]
    assert meta["source"] == "rosbag" and meta["mapping"]["ground_truth"]["topic"] == "/vrpn_mocap/rc_car/pose"
    _check_time_disjoint(ds, 0.1)
    for d in ds.values():
        stamps = np.load(d.root / d.split / "stamp_ns.npy")
        assert np.allclose(d.gt[:], [_line((s - T0) * 1e-9) for s in stamps], atol=1e-5)
        assert not np.asarray(d.radar).any()
        for i, st in enumerate(stamps):
            f = frames[int((st - T0) // PERIOD)]
            assert np.array_equal(d.rgb[i, 0], to_storage("rgb", f.streams["node1/rgb"].data))  # png: exact
            want3 = to_storage("depth", f.streams["node3/depth"].data).astype(int)
            assert np.abs(d.depth[i, 2].astype(int) - want3).max() <= 1  # 32FC1 m -> mm
            assert np.array_equal(d.depth[i, 0], to_storage("depth", f.streams["node1/depth"].data))
    b = ds["val"].batch([0])
    assert b["rgb"].shape == (1, 3, 3, 64, 64) and b["gt"].shape == (1, 2)


def _small_bag(path: Path, gt_type: str, storage: str = "sqlite3", n: int = 30) -> None:
    """10 Hz 8x8 bgr8 camera + one ground-truth topic of ``gt_type`` at 50 Hz on the line
    ``_line``; transform types also carry a decoy transform world -> base_link."""
    ts = get_admn_typestore()
    w = open_writer(path, storage)
    cam = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
    typ = {"point": "geometry_msgs/msg/PointStamped", "pose": "geometry_msgs/msg/PoseStamped",
           "pose_cov": "geometry_msgs/msg/PoseWithCovarianceStamped", "odom": "nav_msgs/msg/Odometry",
           "transform": "geometry_msgs/msg/TransformStamped", "tf": "tf2_msgs/msg/TFMessage"}[gt_type]
    gtc = w.add_connection("/truth", typ, typestore=ts)
    for k in range(n):
        t = T0 + k * 100_000_000
        img = np.full((8, 8, 3), (k, 2 * k, 3 * k), np.uint8)
        w.write(cam, t, msgs.serialize(msgs.image(img, "bgr8", msgs.header(t, "cam"))))
    for j in range(5 * n + 5):
        t = T0 - 50_000_000 + j * 20_000_000
        x, y = _line((t - T0) * 1e-9)
        h = msgs.header(t, "world")
        pose = msgs.pose(x, y, 0.5)
        tr = lambda child, x=x, y=y, h=h: msgs.new_msg(  # noqa: E731
            "geometry_msgs/msg/TransformStamped", header=h, child_frame_id=child,
            transform=msgs.new_msg("geometry_msgs/msg/Transform", translation=msgs.vector3(x, y, 0.5)))
        m = {"point": lambda: get_task("tracking").fill_truth(msgs.new_msg(typ, header=h), (x, y)),
             "pose": lambda: msgs.new_msg(typ, header=h, pose=pose),
             "pose_cov": lambda: msgs.new_msg(typ, header=h, pose=msgs.new_msg(
                 "geometry_msgs/msg/PoseWithCovariance", pose=pose)),
             "odom": lambda: msgs.new_msg(typ, header=h, child_frame_id="rc_car", pose=msgs.new_msg(
                 "geometry_msgs/msg/PoseWithCovariance", pose=pose)),
             "transform": lambda: tr("rc_car" if j % 2 == 0 else "base_link"),
             "tf": lambda: msgs.new_msg(typ, transforms=[tr("base_link"), tr("rc_car")] if j % 2 == 0
                                        else [tr("base_link")])}[gt_type]()
        if gt_type in ("transform", "tf") and j % 2:  # decoys: the same pose 3 m off
            for t_ in (m.transforms if gt_type == "tf" else [m]):
                t_.transform.translation.x += 3.0
        w.write(gtc, t, msgs.serialize(m))
    w.close()


@pytest.mark.parametrize("gt_type", ["point", "pose", "pose_cov", "odom", "transform", "tf"])
def test_every_ground_truth_type(tmp_path, gt_type):
    """PointStamped, PoseStamped, PoseWithCovarianceStamped, Odometry, TransformStamped and
    /tf (parent -> child from the mapping, decoy transforms ignored) all give the position
    interpolated to the frame stamp; bgr8 colour is stored as RGB.
    Break tried: ignoring the parent/child filter mixes in the decoys 3 m away."""
    bag = tmp_path / "b"
    _small_bag(bag, gt_type)
    gt: dict = {"topic": "/truth", "tolerance": 0.05}
    if gt_type in ("transform", "tf"):
        gt.update(parent="/world", child="rc_car")
    mp = tmp_path / "m.yaml"
    mp.write_text(yaml.safe_dump({"streams": {"node1/rgb": {"topic": "/cam/image_raw", "encoding": "bgr8"}},
                                  "ground_truth": gt}))
    out = tmp_path / "ds"
    rep = build_dataset([bag], str(mp), out, segment_s=0.5, gap_s=0.1, progress=False, log=None)
    assert rep["bags"][0]["frames"] == 30 and set(rep["bags"][0]["skipped"]) <= {"split gap"}
    ds = _splits(out)
    for d in ds.values():
        stamps = np.load(d.root / d.split / "stamp_ns.npy")
        assert np.allclose(d.gt[:], [_line((s - T0) * 1e-9) for s in stamps], atol=1e-5)
        k = (stamps - T0) // 100_000_000
        assert np.array_equal(d.rgb[:, 0, :, 0, 0], np.stack([3 * k, 2 * k, k], 1))  # bgr8 -> rgb
    assert ds["test"].meta["nodes"] == ["node1"] and ds["test"].meta["modalities"] == ["rgb"]


def test_ros1_bag_with_tf_ground_truth(tmp_path):
    """A ROS 1 bag (rosbags): bgr8 colour, 16UC1 depth and mocap on /tf."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from admn_ros.bags.msgs import new_msg

    ts = get_typestore(Stores.ROS1_NOETIC)
    ts.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    path = tmp_path / "old.bag"

    def hdr(t: int, frame: str = "cam") -> object:
        sec, ns = divmod(t, 10**9)
        return new_msg("std_msgs/msg/Header", ts=ts, seq=0, frame_id=frame,
                       stamp=new_msg("builtin_interfaces/msg/Time", ts=ts, sec=sec, nanosec=ns))

    with Writer(path) as w:
        ci = w.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        cd = w.add_connection("/cam/depth", "sensor_msgs/msg/Image", typestore=ts)
        ct = w.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=ts)
        for k in range(24):
            t = T0 + k * 100_000_000
            bgr = np.full((6, 8, 3), (10, 20, k), np.uint8)
            w.write(ci, t, ts.serialize_ros1(new_msg("sensor_msgs/msg/Image", ts=ts, header=hdr(t), height=6, width=8,
                                                     encoding="bgr8", is_bigendian=0, step=24, data=bgr.reshape(-1)),
                                             "sensor_msgs/msg/Image"))
            d = np.full((6, 8), 1000 + k, np.uint16)
            w.write(cd, t, ts.serialize_ros1(new_msg("sensor_msgs/msg/Image", ts=ts, header=hdr(t), height=6, width=8,
                                                     encoding="16UC1", is_bigendian=0, step=16,
                                                     data=d.reshape(-1).view(np.uint8)), "sensor_msgs/msg/Image"))
            x, y = _line(k * 0.1)
            tf = new_msg("geometry_msgs/msg/TransformStamped", ts=ts, header=hdr(t, "world"), child_frame_id="car",
                         transform=new_msg("geometry_msgs/msg/Transform", ts=ts,
                                           translation=new_msg("geometry_msgs/msg/Vector3", ts=ts, x=x, y=y, z=0.0),
                                           rotation=new_msg("geometry_msgs/msg/Quaternion", ts=ts, w=1.0)))
            w.write(ct, t, ts.serialize_ros1(new_msg("tf2_msgs/msg/TFMessage", ts=ts, transforms=[tf]),
                                             "tf2_msgs/msg/TFMessage"))
    mapping = {"streams": {"node1/rgb": "/cam/image_raw", "node1/depth": "/cam/depth"},
               "ground_truth": {"topic": "/tf", "parent": "world", "child": "car"}}
    out = tmp_path / "ds"
    rep = build_dataset([path], mapping, out, segment_s=0.6, gap_s=0.1, progress=False, log=None)
    assert rep["bags"][0]["frames"] == 24
    ds = _splits(out)
    for d in ds.values():
        k = (np.load(d.root / d.split / "stamp_ns.npy") - T0) // 100_000_000
        assert np.array_equal(d.rgb[:, 0, 0, 0, 0], k) and np.array_equal(d.rgb[:, 0, 2, 0, 0], np.full(len(k), 10))
        assert np.array_equal(d.depth[:, 0, 0, 0], 1000 + k)
        assert np.allclose(d.gt[:], [_line(kk * 0.1) for kk in k], atol=1e-5)
    assert ds["train"].meta["modalities"] == ["rgb", "depth"]


# ---------------------------------------------------------------------------- splits and errors


def test_splits_are_time_segments_with_a_gap():
    """Segments of 1 s over two bags, every split present, frames of different splits >= gap apart.
    Break tried: no gap check lets a val frame follow a train frame 0.1 s later."""
    stamps = np.concatenate([np.arange(0, 10, 0.1), np.arange(0, 5, 0.1)])
    bag = np.repeat([0, 1], [100, 50])
    ns = (stamps * 1e9).round().astype(np.int64)
    seg, split, seg_split = assign_splits(bag, ns, 1.0, 0.35, 0.2, 0.2, seed=3)
    assert len(seg_split) == 15 and sorted(set(seg_split)) == ["test", "train", "val"]
    assert all(split[i] in ("", seg_split[seg[i]]) for i in range(150))
    for b in (0, 1):
        i = np.flatnonzero((bag == b) & (split != ""))
        for p, q in zip(i[:-1], i[1:]):
            if split[p] != split[q]:
                assert ns[q] - ns[p] >= 0.35e9
    dropped = int((split == "").sum())
    changes = sum(seg_split[a] != seg_split[b] for a, b in zip(range(14), range(1, 15)) if a != 9)
    assert dropped == 3 * changes  # 0.35 s gap at 10 Hz: the first 3 frames after each split change


def test_bad_input_is_explained_and_leaves_nothing(tmp_path, capsys):
    """A tf ground truth without parent/child, a transform the bag lacks (the error lists the
    pairs it has), no or a missing ground-truth topic, too few segments, an existing dataset
    and an invalid mapping: each is a clear error and leaves no partial output.
    Break tried: not removing the output directory after an error leaves ds/ behind."""
    bag = tmp_path / "b"
    _small_bag(bag, "tf")
    out = tmp_path / "ds"
    base = {"streams": {"node1/rgb": "/cam/image_raw"}}
    with pytest.raises(BagContentError, match="ground_truth.parent and ground_truth.child"):
        build_dataset([bag], {**base, "ground_truth": "/truth"}, out, progress=False, log=None)
    with pytest.raises(BagContentError, match=r"no transform map -> car.*world -> base_link, world -> rc_car"):
        build_dataset([bag], {**base, "ground_truth": {"topic": "/truth", "parent": "map", "child": "car"}}, out,
                      progress=False, log=None)
    with pytest.raises(ValueError, match="ground_truth: the mapping names no ground-truth topic"):
        build_dataset([bag], base, out, progress=False, log=None)
    with pytest.raises(ValueError, match=r"no frame of 1 bag\(s\).*no ground truth 30"):
        build_dataset([bag], {**base, "ground_truth": {"topic": "/truth", "parent": "world", "child": "rc_car",
                                                       "tolerance": 0.001}}, out, progress=False, log=None)
    with pytest.raises(ValueError, match="no position ground truth on '/nope'"):
        build_dataset([bag], {**base, "ground_truth": "/nope"}, out, progress=False, log=None)
    assert not out.exists()
    mp = tmp_path / "m.yaml"
    mp.write_text(yaml.safe_dump({**base, "ground_truth": {"topic": "/truth", "parent": "world", "child": "rc_car"}}))
    args = ["--from-bag", str(bag), "--mapping", str(mp), "--out", str(out), "--quiet"]
    assert dataset_main([*args, "--segment", "2"]) == 2  # 3 s of frames: 2 segments
    assert "2 segment(s) of 2 s: too few" in capsys.readouterr().err and not out.exists()
    args += ["--segment", "0.5", "--gap", "0.1"]
    assert dataset_main(args) == 0
    assert dataset_main(args) == 2 and "--overwrite" in capsys.readouterr().err
    mp.write_text(yaml.safe_dump({**base, "ground_truth": {"topic": "/truth", "child": "rc_car"}}))
    assert dataset_main([*args, "--overwrite"]) == 2
    assert f"{mp}: ground_truth.parent: missing" in capsys.readouterr().err
    assert (out / "meta.json").is_file()  # a failed --overwrite run names the problem before touching out


def test_a_bag_given_twice_is_refused(tmp_path):
    """The same recording twice in --from-bag (e.g. a repeated path in a long command) would put
    identical frames into train and test; it is refused, naming the bag, before anything is read.
    Break tried: without the check the dataset was built, 5 frames both in train and in test."""
    bag = tmp_path / "b"
    _small_bag(bag, "point")
    mapping = {"streams": {"node1/rgb": "/cam/image_raw"}, "ground_truth": "/truth"}
    out = tmp_path / "ds"
    with pytest.raises(ValueError, match=f"bag {bag} is given twice"):
        build_dataset([bag, tmp_path / "." / "b"], mapping, out, segment_s=0.5, gap_s=0.1, progress=False, log=None)
    assert not out.exists()


def test_a_failed_overwrite_keeps_the_dataset_it_would_replace(tmp_path, capsys):
    """`--overwrite` with a bag that turns out unusable only while it is read (its ground-truth
    topic is missing) names the topic and leaves the existing dataset byte for byte; a
    successful `--overwrite` replaces it and leaves nothing else next to it.
    Break tried: removing the old dataset before the bags are read: the failed run lost it."""
    bag = tmp_path / "b"
    _small_bag(bag, "point")
    out = tmp_path / "ds"
    mp = tmp_path / "m.yaml"
    mapping = {"streams": {"node1/rgb": "/cam/image_raw"}, "ground_truth": "/truth"}
    mp.write_text(yaml.safe_dump(mapping))
    args = ["--from-bag", str(bag), "--mapping", str(mp), "--out", str(out), "--quiet", "--segment", "0.5",
            "--gap", "0.1", "--overwrite"]
    assert dataset_main(args) == 0

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    before = files()
    mp.write_text(yaml.safe_dump({**mapping, "ground_truth": "/nope"}))
    assert dataset_main(args) == 2
    assert "no position ground truth on '/nope'" in capsys.readouterr().err
    assert files() == before
    mp.write_text(yaml.safe_dump(mapping))
    assert dataset_main([*args, "--seed", "1"]) == 0
    assert json.loads((out / "meta.json").read_text())["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "ds", "m.yaml"]


# ---------------------------------------------------------------------------- live recording


@pytest.mark.ros
def test_live_recording_becomes_a_dataset(tmp_path):
    """`admn-ros record --source live` of the sensor node, then `admn-ros dataset --from-bag`:
    at least 80% of the 10 Hz frames are kept with their images and ground truth (on a loaded
    machine a frame at either end may lack a topic).
    Break tried: storing zeros instead of the decoded images fails the content check."""
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT))
    node = subprocess.Popen([sys.executable, "-m", "admn_ros.ros.sensor_node", "--ros-args", "-p", "rate_hz:=10.0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        t0 = time.monotonic()
        rec = subprocess.run([sys.executable, "-m", "admn_ros.cli", "record", "--source", "live", "--duration", "3",
                              "--wait", "20", "--out", str(tmp_path / "live"), "--no-progress"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert rec.returncode == 0, rec.stderr
        assert time.monotonic() - t0 < 60
    finally:
        node.terminate()
        node.wait(timeout=10)
    out = tmp_path / "ds"
    rep = build_dataset([tmp_path / "live"], "default", out, segment_s=0.5, gap_s=0.1, progress=False, log=None)
    r = rep["bags"][0]
    assert 20 <= r["frames"] <= 40 and r["kept"] >= 0.8 * r["frames"]
    assert set(r["skipped"]) <= {"missing stream", "no ground truth", "split gap"}
    ds = _splits(out)
    _check_time_disjoint(ds, 0.1)
    assert ds["train"].rgb[0].any() and ds["train"].depth[0].any() and np.isfinite(ds["train"].gt[:]).all()


# ---------------------------------------------------------------------------- the whole path


def test_foreign_bag_to_trained_and_evaluated_model_through_the_cli(tmp_path):
    """Own-robot path: a realsense/zed-style bag with PoseStamped mocap -> `admn-ros dataset
    --from-bag` -> `admn-ros train stage1` / `stage2` (tiny) -> `admn-ros evaluate` ->
    `admn-ros train ship` -> `admn-ros replay` of the bag with those models. The evaluation
    ran on the bag's test segments (its sample and episode counts, and the clean full-depth
    error recomputed here from the dataset's test split); the replay scored every frame.
    Break tried: evaluating the val split or --samples 5 fails the counts."""
    import torch

    from admn_ros.core.train.common import to_torch
    from admn_ros.core.train.stage2 import load_stage1
    from fixtures.train import TINY_MODEL

    frames = _rig_frames(120)
    t_frames = np.arange(120) * PERIOD * 1e-9
    gt = np.array([f.gt_xy for f in frames])
    bag = tmp_path / "rig"
    _write_rig_bag(bag, frames, lambda s: (np.interp(s, t_frames, gt[:, 0]), np.interp(s, t_frames, gt[:, 1])))
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT), OMP_NUM_THREADS="1")

    def cli(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "admn_ros.cli", *args], capture_output=True, text=True, env=env,
                           timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    data, s1, c1, rep = (tmp_path / n for n in ("data", "s1", "c27", "rep"))
    txt = cli("dataset", "--from-bag", str(bag), "--mapping", "realsense_zed", "--out", str(data),
              "--segment", "1", "--gap", "0.2", "--quiet")
    assert txt == ""
    meta = json.loads((data / "meta.json").read_text())
    n_test = meta["splits"]["test"]["n_samples"]
    assert n_test > 0 and meta["from_bag"]["bags"][0]["frames"] == 120
    common = ["--data", str(data), "--epochs", "1", "--batch-size", "8", "--threads", "1", "--no-progress"]
    cli("train", "stage1", *common, "--out", str(s1), "--model", json.dumps(TINY_MODEL))
    cli("train", "stage2", *common, "--stage1", str(s1 / "model.safetensors"), "--out", str(c1),
        "--variant", "budget", "--budget", "27", "--warmup-epochs", "0")
    cli("evaluate", "--data", str(data), "--stage1", str(s1 / "model.safetensors"), "--models", "",
        "--controller", str(c1 / "controller.safetensors"), "--out", str(rep), "--no-latency", "--no-plots",
        "--no-progress", "--regimes", "binary", "--fractions", "0.25")
    res = json.loads((rep / "results.json").read_text())
    assert res["info"]["split"] == "test" and res["info"]["n_samples"] == n_test
    assert {r["n"] for r in res["records"]} == {n_test}
    assert {r["vs_naive_groups"] for r in res["records"] if r["method"] == "ADMN"} == \
        {len(meta["splits"]["test"]["episodes"])}
    model, _ = load_stage1(s1 / "model.safetensors")
    test = SimDataset(data, "test")
    with torch.no_grad():
        task = get_task("tracking")
        inputs, target = to_torch(test.batch(np.arange(n_test)), model.cfg.modalities, task)
        err = float(task.scores(model(inputs), target).mean())
    assert res["depth_curve"][-1]["blocks"] == 12 and res["depth_curve"][-1]["value"] == pytest.approx(err, rel=1e-4)
    assert "| binary | ADMN |" in (rep / "table1.md").read_text()
    models, rp = tmp_path / "models", tmp_path / "replay"
    cli("train", "ship", "--stage1", str(s1 / "model.safetensors"), "--controller", str(c1 / "controller.safetensors"),
        "--models", str(models))
    cli("replay", str(bag), "--mapping", "realsense_zed", "--model-dir", str(models), "--budget", "27",
        "--out", str(rp), "--no-progress", "--no-bag")
    summary = json.loads((rp / "summary.json").read_text())
    assert summary["pipeline"] == "admn_L27" and summary["frames"] == summary["frames_with_gt"] == 120
