"""Simulated MM-Fi-style activity data: the articulated-body simulator (admn_ros.core.sim.activity)
and the activity dataset format, writer, reader and generator (admn_ros.core.data.activity)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from admn_ros.core.data.activity import (ACTIVITY_FORMAT, ActivityDataset, ActivityWriter, frame_names,
                                         generate_activity_dataset, plan_subject_splits)
from admn_ros.core.data.simdata import DatasetError
from admn_ros.core.preprocess import from_storage, to_model_input, to_storage
from admn_ros.core.sim.activity import (ACTIVITIES, RADAR_BINS, STREAM_IDS, ActivityError, ActivityRenderer,
                                        ActivitySimulator, draw_subject, forward_kinematics, activity_params,
                                        render_window)
from admn_ros.core.sim.corruptions import CorruptionSpec
from admn_ros.core.sim.render import radar_unit_to_power

ARRAYS = ("rgb", "depth", "radar", "label", "subject", "t")


@pytest.fixture(scope="module")
def subject():
    return draw_subject(0, 1)


@pytest.fixture(scope="module")
def renderer(subject):
    return ActivityRenderer(subject)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("act") / "ds"
    generate_activity_dataset(out, n_subjects=4, val_subjects=1, test_subjects=1, windows_per_activity=1,
                              frames=2, seed=3, workers=1, progress=False)
    return out


# ----------------------------------------------------------------------------- simulator
def test_activities_and_subjects_are_fixed_by_their_seeds():
    assert ACTIVITIES == ("wave", "squat", "jump", "walk_in_place", "raise_arms", "sit_down", "bend", "kick",
                          "punch", "clap")
    assert draw_subject(5, 2) == draw_subject(5, 2) and draw_subject(5, 2) != draw_subject(5, 3)
    for i in range(20):
        s = draw_subject(0, i)
        assert 1.5 <= s.height_m <= 1.95 and 0.7 <= s.speed <= 1.3 and 0.8 <= s.amplitude <= 1.2
        assert 2.3 <= s.distance_m <= 3.5 and abs(s.lateral_m) <= 0.5 and abs(s.yaw_deg) <= 30
        assert s.wall_m >= s.distance_m + 0.8 and json.dumps(s.to_dict())
    with pytest.raises(ActivityError, match="subject_id"):
        draw_subject(0, -1)
    with pytest.raises(ActivityError, match="unknown activity 'dance'"):
        activity_params(draw_subject(0, 0), "dance", np.zeros(1))


def test_body_stands_on_the_floor_and_moves(subject):
    t = np.linspace(0, 3, 31)
    for act in ("squat", "sit_down", "walk_in_place", "kick"):
        J = forward_kinematics(subject, activity_params(subject, act, t))
        assert J.shape == (31, 18, 3)
        feet = J[:, [12, 15, 16, 17], 2].min(1)            # ankles, toes
        assert np.all(np.abs(feet) < 0.05), act              # on the floor (no jumping here)
        assert np.ptp(J, axis=0).max() > 0.15, act          # some joint moves by > 15 cm
    J = forward_kinematics(subject, activity_params(subject, "jump", t))
    assert J[:, [12, 15], 2].min(1).max() > 0.1              # both feet leave the floor


def test_render_window_shapes_and_determinism(subject, renderer):
    a = render_window(renderer, "squat", 1.0, 3, seed=7)
    b = render_window(ActivityRenderer(subject), "squat", 1.0, 3, seed=7)      # a fresh renderer: same arrays
    assert a["rgb"].dtype == np.uint8 and a["rgb"].shape == (3, 120, 160, 3)
    assert a["depth"].dtype == np.uint16 and a["depth"].shape == (3, 120, 160)
    assert a["radar"].dtype == np.float32 and a["radar"].shape == (3, RADAR_BINS, RADAR_BINS)
    assert 0.0 <= a["radar"].min() and a["radar"].max() <= 1.0
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    d = a["depth"][0]
    assert (d == 0).any() and 4000 <= int(np.median(d[10])) <= 5000          # holes; the wall at 4-5 m
    c = render_window(renderer, "squat", 1.0, 3, seed=8)
    assert not np.array_equal(a["rgb"], c["rgb"])                            # noise follows the seed
    small = render_window(ActivityRenderer(subject, 80, 60), "wave", 0.0, 1)
    assert small["rgb"].shape == (1, 60, 80, 3)


def _moving_power(radar: np.ndarray, distance: float) -> float:
    """Radar power near the subject's range away from zero Doppler (|v| > 0.3 m/s), minus the
    same over an empty range band (receiver noise)."""
    row = int(distance / (6.0 / RADAR_BINS))
    v = (np.arange(RADAR_BINS) + 0.5) * 6.0 / RADAR_BINS - 3.0
    p = radar_unit_to_power(radar)[..., np.abs(v) > 0.3]
    return float(p[:, row - 8:row + 9].sum((1, 2)).mean() - p[:, 4:21].sum((1, 2)).mean())


def test_activities_differ_in_rgb_and_radar(subject, renderer):
    w = {a: render_window(renderer, a, 1.0, 10, seed=1) for a in ("wave", "squat", "jump", "clap")}
    noise = render_window(renderer, "wave", 1.0, 10, seed=2)
    def changed(x: np.ndarray, y: np.ndarray) -> float:   # fraction of pixels that differ by > 40 levels
        return float((np.abs(x.astype(int) - y).max(-1) > 40).mean())

    assert changed(w["wave"]["rgb"], noise["rgb"]) < 1e-4                   # same motion, other noise
    for a in ("squat", "jump", "clap"):
        assert changed(w["wave"]["rgb"], w[a]["rgb"]) > 0.005, a
    # whole-body motions show far more Doppler than a wave (the hand moves across the beam)
    wave = _moving_power(w["wave"]["radar"], subject.distance_m)
    for a in ("squat", "jump"):
        assert _moving_power(w[a]["radar"], subject.distance_m) > 3 * wave, a


def test_simulator_schedule_labels_and_determinism(subject):
    sched = [("squat", 0.3), ("clap", 0.2)]
    sim = ActivitySimulator(subject, seed=1, episode=2, rate_hz=10.0, schedule=sched)
    frames = [sim.step() for _ in range(6)]
    assert [f.label for f in frames] == ["squat"] * 3 + ["clap"] * 2 + ["squat"]
    assert [f.index for f in frames] == list(range(6)) and frames[3].label_index == ACTIVITIES.index("clap")
    assert list(frames[0].streams) == list(STREAM_IDS) and frames[2].t == pytest.approx(0.2)
    again = ActivitySimulator(subject, seed=1, episode=2, rate_hz=10.0, schedule=sched)
    for f in frames:
        g = again.step()
        for sid in STREAM_IDS:
            assert np.array_equal(f.streams[sid].data, g.streams[sid].data)
    default = ActivitySimulator(subject, seed=0, episode=0)
    assert sorted(a for a, _ in default.schedule) == sorted(ACTIVITIES)
    default.skip(41)   # 4.1 s: the second schedule entry
    assert default.step().label == default.schedule[1][0]
    with pytest.raises(ActivityError, match="unknown activity"):
        ActivitySimulator(subject, schedule=[("dance", 1.0)])


@pytest.mark.parametrize("rate_hz", [0.0, -5.0, float("nan"), float("inf"), "10"])
def test_bad_rate_is_refused_everywhere(subject, renderer, tmp_path, rate_hz):
    """The simulator, a rendered window and the writer refuse a rate that is not a finite number > 0,
    naming it; the writer leaves nothing behind.
    Break tried: check_rate without its math.isfinite test (inf was accepted)."""
    with pytest.raises(ActivityError, match="rate_hz must be > 0"):
        ActivitySimulator(subject, rate_hz=rate_hz)
    with pytest.raises(ActivityError, match="rate_hz must be > 0"):
        render_window(renderer, "wave", 0.0, 2, rate_hz)
    with pytest.raises(ValueError, match="rate_hz must be > 0"):
        ActivityWriter(tmp_path / "ds", ["a"], 2, rate_hz, "test", {"train": 1})
    assert not (tmp_path / "ds").exists()


def test_simulator_corruptions(subject):
    sched = [("jump", 10.0)]
    clean = ActivitySimulator(subject, seed=4, schedule=sched)
    sim = ActivitySimulator(subject, seed=4, schedule=sched)
    sim.set_corruption("node1/rgb", CorruptionSpec("gaussian", sigma=1.5))
    sim.set_corruption("node1/depth", CorruptionSpec("dropout"))
    sim.set_corruption("node1/radar", CorruptionSpec("frozen"))
    f0, _ = sim.step(), clean.step()
    f1, c1 = sim.step(), clean.step()
    rgb = f1.streams["node1/rgb"]
    assert (rgb.corruption, rgb.sigma, rgb.severity) == ("gaussian", 1.5, 0.5)
    assert np.abs(rgb.data.astype(int) - c1.streams["node1/rgb"].data).mean() > 20
    assert f1.streams["node1/depth"].data is None and f1.streams["node1/depth"].corruption == "dropout"
    assert f1.streams["node1/radar"].corruption == "frozen"
    assert np.array_equal(f1.streams["node1/radar"].data, f0.streams["node1/radar"].data)
    assert set(sim.corruptions) == set(STREAM_IDS)
    sim.set_corruption("node1/rgb", None)
    sim.clear_corruptions()
    f2, c2 = sim.step(), clean.step()
    assert f2.streams["node1/rgb"].corruption == "none" and f2.streams["node1/rgb"].sigma == 0.0
    assert np.array_equal(f2.streams["node1/rgb"].data, c2.streams["node1/rgb"].data)  # clean data unchanged
    with pytest.raises(ValueError, match="unknown stream 'node2/rgb'"):
        sim.set_corruption("node2/rgb", CorruptionSpec("gaussian", sigma=1.0))
    with pytest.raises(ValueError, match="does not apply to 'rgb'"):
        sim.set_corruption("node1/rgb", CorruptionSpec("clutter"))
    sim.set_corruption("node1/radar", CorruptionSpec("clutter", severity=1.0))
    r = sim.step().streams["node1/radar"]
    assert r.corruption == "clutter" and r.data.shape == (RADAR_BINS, RADAR_BINS) and 0 <= r.data.min()


# ----------------------------------------------------------------------------- generated dataset
def test_generated_dataset_layout_and_reader(dataset):
    meta = json.loads((dataset / "meta.json").read_text())
    assert meta["format"] == ACTIVITY_FORMAT and meta["format_version"] == 1 and meta["task"] == "activity"
    assert meta["source"] == "sim" and meta["classes"] == list(ACTIVITIES) and meta["frames"] == 2
    assert meta["nodes"] == ["f0", "f1"] == list(frame_names(2)) and meta["sensor_node"] == "node1"
    assert meta["stream_ids"] == ["f0/rgb", "f0/depth", "f0/radar", "f1/rgb", "f1/depth", "f1/radar"]
    assert meta["seed"] == 3 and meta["rate_hz"] == 10.0 and set(meta["arrays"]) == set(ARRAYS)
    subs = {s: set(meta["splits"][s]["subjects"]) for s in ("train", "val", "test")}
    assert subs["train"].isdisjoint(subs["val"] | subs["test"]) and subs["val"].isdisjoint(subs["test"])
    assert subs == {s: set(v) for s, v in plan_subject_splits(4, 1, 1, 3).items()}
    for split, n in (("train", 20), ("val", 10), ("test", 10)):
        ds = ActivityDataset(dataset, split)
        assert len(ds) == n == meta["splits"][split]["n_samples"]
        assert set(np.unique(ds.subjects).tolist()) == subs[split] and ds.classes == list(ACTIVITIES)
        assert sorted(np.bincount(ds.labels).tolist()) == [n // 10] * 10
        b = ds.batch([n - 1, 0])
        assert b["rgb"].shape == (2, 2, 3, 64, 64) and b["depth"].shape == (2, 2, 1, 64, 64)
        assert b["radar"].shape == (2, 2, 1, 64, 64) and b["label"].dtype == np.int64
        for m in ("rgb", "depth", "radar"):
            assert b[m].dtype == np.float32 and 0.0 <= b[m].min() and b[m].max() <= 1.0 and b[m].max() > 0.1
        assert b["label"].tolist() == [int(ds.labels[n - 1]), int(ds.labels[0])]
        assert ds[0]["rgb"].shape == (2, 3, 64, 64)
    # stored arrays are preprocess.to_storage of the sensor frames: the window can be re-rendered
    ds = ActivityDataset(dataset, "test")
    from admn_ros.core.data.activity import window_rng

    sid, lab = int(ds.subjects[3]), int(ds.labels[3])
    rng = window_rng(3, sid, lab, 0)
    start = float(rng.uniform(0.0, 30.0))
    assert ds.t[3] == np.float32(start)
    w = render_window(ActivityRenderer(draw_subject(3, sid)), ACTIVITIES[lab], start, 2, 10.0, rng)
    assert np.array_equal(ds.rgb[3, 1], to_storage("rgb", w["rgb"][1]))
    assert np.array_equal(ds.batch([3])["depth"][0, 0], to_model_input("depth", w["depth"][0]))


def test_generation_is_deterministic_and_refuses_overwrite(dataset, tmp_path):
    again = tmp_path / "again"
    generate_activity_dataset(again, n_subjects=4, val_subjects=1, test_subjects=1, windows_per_activity=1,
                              frames=2, seed=3, workers=1, progress=False)
    for split in ("train", "val", "test"):
        for a in ARRAYS:
            assert np.array_equal(np.load(again / split / f"{a}.npy"), np.load(dataset / split / f"{a}.npy"))
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        generate_activity_dataset(again, n_subjects=3, val_subjects=1, test_subjects=1, windows_per_activity=1,
                                  frames=2, progress=False)
    with pytest.raises(ValueError, match="none for train"):
        plan_subject_splits(2, 1, 1, 0)


def test_reader_errors(dataset, tmp_path):
    import shutil

    with pytest.raises(FileNotFoundError, match="dataset directory not found"):
        ActivityDataset(tmp_path / "nope", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/meta\.json"):
        ActivityDataset(tmp_path / "empty", "train")
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        ActivityDataset(bad, "dev")
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "train" / "radar.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"train/radar\.npy"):
        ActivityDataset(bad, "train")
    np.save(bad / "val" / "label.npy", np.zeros(3, np.int64))
    with pytest.raises(DatasetError, match=r"val/label\.npy: expected int64 \(10,\)"):
        ActivityDataset(bad, "val")
    for change, pattern in (({"format": "admn_ros.simdata"}, "is not 'admn_ros.activitydata'"),
                            ({"format_version": 2}, "format_version 2 is not supported"),
                            ({"nodes": ["node1"]}, "do not match frames"),
                            ({"splits": {**meta["splits"], "test": {"n_samples": 0, "subjects": []}}},
                             "split 'test' of .* has no samples")):
        (bad / "meta.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(DatasetError, match=pattern) as e:
            ActivityDataset(bad, "test")
        assert str(bad) in str(e.value)


# ----------------------------------------------------------------------------- writer
def test_writer_round_trip(renderer, tmp_path):
    """Windows added to preallocated splits come back exactly; close trims a split that got fewer
    windows than preallocated (train 2 of 3, val 0 of 1), abort removes everything.

    Break tried: close without trimming (ActivityDataset then rejects train/rgb.npy's shape)."""
    w1 = render_window(renderer, "kick", 0.5, 2, seed=1)          # sensor frames
    w2 = render_window(renderer, "clap", 2.0, 2, seed=2)
    s1, stored = ({m: np.stack([to_storage(m, f) for f in w[m]])[None] for m in ("rgb", "depth", "radar")}
                  for w in (w1, w2))
    one = {"subject": np.array([7]), "t": np.array([0.5])}
    out = tmp_path / "w"
    writer = ActivityWriter(out, ["kick", "clap"], 2, 10.0, "test", {"train": 3, "val": 1, "test": 1},
                            extra_meta={"note": "hi"})
    assert writer.add("train", s1["rgb"], s1["depth"], s1["radar"], label=np.array([0]), **one) == 1
    assert writer.add("train", stored["rgb"], stored["depth"], stored["radar"], label=np.array([1]),
                      subject=np.array([7]), t=np.array([2.0])) == 1
    writer.add("test", stored["rgb"], stored["depth"], stored["radar"], label=np.array([1]), **one)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 2\)"):
        writer.add("val", stored["rgb"], stored["depth"], stored["radar"], label=np.array([2]), **one)
    with pytest.raises(ValueError, match="holds 1 windows of 1 frames, the labels 1 and the dataset 2"):
        writer.add("val", stored["rgb"][:, :1], stored["depth"][:, :1], stored["radar"][:, :1], label=np.array([0]),
                   **one)
    with pytest.raises(ValueError, match=r"rgb must be uint8 \[N, F, 3, 64, 64\] storage windows"):
        writer.add("val", w2["rgb"][None], stored["depth"], stored["radar"], label=np.array([0]), **one)
    assert not (out / "meta.json").exists()                                        # written last
    meta = writer.close()
    assert meta["source"] == "test" and meta["note"] == "hi" and meta["splits"]["val"]["n_samples"] == 0
    assert meta["splits"]["train"] == {"n_samples": 2, "subjects": [7], "class_counts": [1, 1]}
    ds = ActivityDataset(out, "train")
    b = ds.batch([0, 1])
    for m in ("rgb", "depth"):
        assert np.array_equal(b[m][0, 1], to_model_input(m, w1[m][1]))
        assert np.array_equal(b[m][1], from_storage(m, stored[m][0]))
    assert np.allclose(b["radar"][0, 0], to_model_input("radar", w1["radar"][0]), atol=1e-3)
    assert ds.labels.tolist() == [0, 1] and ds.t.tolist() == [0.5, 2.0] and ds.subject_ids == [7]
    assert not list((out / "train").glob(".*.part"))
    with pytest.raises(DatasetError, match="has no samples"):
        ActivityDataset(out, "val")
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        ActivityWriter(out, ["a"], 2, 10.0, "test", {})
    # no more windows than preallocated; abort leaves nothing behind
    pre = ActivityWriter(out, ["a"], 2, 10.0, "test", {"train": 1}, overwrite=True)
    pre.add("train", stored["rgb"], stored["depth"], stored["radar"], label=np.array([0]), subject=np.array([1]),
            t=np.array([0.0]))
    with pytest.raises(ValueError, match="2 windows exceed the preallocated size 1"):
        pre.add("train", stored["rgb"], stored["depth"], stored["radar"], label=np.array([0]), subject=np.array([1]),
                t=np.array([0.0]))
    pre.abort()
    assert not (out / "meta.json").exists() and not (out / "train").exists()


def test_dataset_cli(tmp_path, capsys):
    from admn_ros.cli import COMMANDS

    assert COMMANDS["dataset"][:2] == ("admn_ros.bags.dataset", "dataset_main")  # --from-bag, else the generators
    from admn_ros.bags.dataset import dataset_main
    out = tmp_path / "cli"
    args = ["--out", str(out), "--subjects", "3", "--val-subjects", "1", "--test-subjects", "1",
            "--windows-per-activity", "1", "--frames", "1", "--workers", "1", "--width", "64", "--height", "48",
            "--quiet"]
    assert dataset_main(["--task", "activity", *args]) == 0
    assert ActivityDataset(out, "val").frames == 1 and len(ActivityDataset(out, "train")) == 10
    assert dataset_main(["--task", "activity", *args]) == 2 and "already holds a dataset" in capsys.readouterr().err
    assert dataset_main(["--task", "dance"]) == 2 and "unknown --task" in capsys.readouterr().err
