"""GDTM reader: a tiny fake copy in the released HDF5 layout (mocap.hdf5 + node_<k>/{zed,realsense,
mmwave,respeaker}.hdf5, groups keyed by ms timestamps, JPEG frames, mocap JSON) converts into our
format; SimDataset, one stage-1 training step and the evaluation open it; alignment, drop counts and
the error cases (wrong path, missing node file / modality, empty split, corrupt file / key) are checked."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from admn_ros.core.data import SimDataset  # noqa: E402
from admn_ros.core.data.gdtm import GDTMError, convert_gdtm, main  # noqa: E402
from fixtures import write_synthetic_gdtm  # noqa: E402

FRAMES = {"train": 16, "val": 6, "test": 6}


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gdtm") / "src"
    return root, write_synthetic_gdtm(root, FRAMES)


@pytest.fixture(scope="module")
def converted(src, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gdtm_out") / "ds"
    return out, convert_gdtm(src[0], out, progress=False)


def _small(tmp_path: Path, **kw) -> tuple[Path, dict]:
    root = tmp_path / "src"
    return root, write_synthetic_gdtm(root, {"train": 5, "val": 3, "test": 3}, **kw)


# ----------------------------------------------------------------------------- conversion
def test_converted_dataset_opens_with_gt_shapes_and_meta(src, converted):
    root, truth = src
    out, summary = converted
    meta = json.loads((out / "meta.json").read_text())
    assert meta["source"] == "gdtm" and meta["mocap_axes"] == ["x", "z"]
    assert meta["nodes"] == ["node1", "node2", "node3"] and meta["modalities"] == ["rgb", "depth", "radar"]
    assert meta["gdtm"]["sources"]["depth"] == {"option": "zed", "file": "zed.hdf5", "key": "zed_camera_depth",
                                                "metric": True}
    (pose_set,) = meta["node_poses"]["sets"]
    assert pose_set["node2"]["T"] == [1.9, 1.2, -1.8] and np.shape(pose_set["node2"]["R"]) == (3, 3)
    for split, n in FRAMES.items():
        ds = SimDataset(out, split)
        assert len(ds) == n and summary["splits"][split]["n_dropped"] == 0
        assert ds.rgb.shape == (n, 3, 3, 64, 64) and ds.depth.shape == (n, 3, 64, 64)
        assert ds.radar.shape == (n, 3, 64, 64) and ds.gt.shape == (n, 2)
        car = np.array(truth[split]["car"])
        np.testing.assert_allclose(ds.gt, car[:, [0, 2]], atol=1e-6)  # (mocap x, mocap z), metres
        b = ds.batch(np.arange(n))
        for m in ("rgb", "depth", "radar"):
            assert b[m].min() >= 0.0 and b[m].max() <= 1.0
        assert np.isnan(ds.visibility).all()  # unknown for real data
    # meta["bounds"] (stage 1 adds its margin for the Gaussian head's box) holds every ground truth
    from admn_ros.core.train.stage1 import dataset_bounds

    (x0, x1), (y0, y1) = meta["bounds"]
    allgt = np.concatenate([np.load(out / s / "gt.npy") for s in FRAMES])
    assert (allgt[:, 0] >= x0).all() and (allgt[:, 0] <= x1).all()
    assert (allgt[:, 1] >= y0).all() and (allgt[:, 1] <= y1).all()
    (bx0, bx1), (by0, by1) = dataset_bounds(ds)
    assert bx0 < x0 and bx1 > x1 and by0 < y0 and by1 > y1


def test_alignment_reads_the_frame_of_each_mocap_stamp(src, converted):
    _, truth = src
    out, _ = converted
    ds = SimDataset(out, "train")
    i = np.arange(FRAMES["train"])
    np.testing.assert_array_equal(np.load(out / "train" / "stamp_ms.npy"), truth["train"]["stamps"])
    for k in range(3):  # the synthetic frame i of node k has depth 1000 + 20 i + 300 k mm and colour 10 + 7 i + 40 k
        assert (ds.depth[:, k] == (1000 + 20 * i + 300 * k)[:, None, None]).all()
        colour = ((10 + 7 * i + 40 * k) % 256)[:, None, None, None]
        assert np.abs(ds.rgb[:, k].astype(int) - colour).max() <= 3  # JPEG
    assert (ds.episode == ds.episode[0]).all()
    np.testing.assert_allclose(ds.t, 0.066 * i, atol=1e-5)
    assert set(np.unique(SimDataset(out, "val").episode)).isdisjoint(np.unique(ds.episode))


def test_radar_is_a_normalised_heatmap(converted):
    out, summary = converted
    meta = json.loads((out / "meta.json").read_text())
    r = meta["radar"]
    assert r["kind"] == "azimuth" and r["transform"] == "db" and r["hi"] > r["lo"]
    assert r["calibration"]["from"] == "split train"
    radar = np.asarray(SimDataset(out, "train").radar, dtype=np.float32)
    assert radar.min() >= 0 and radar.max() == 1.0  # the synthetic peak saturates
    assert (radar[..., :6] == 0).all()  # NaN (outside the field of view) -> 0


def test_radar_norm_orientation_and_fast_path_are_exact():
    from admn_ros.core.data.gdtm import RadarNorm
    from admn_ros.core.preprocess import to_storage

    rng = np.random.default_rng(0)
    az = np.abs(rng.normal(50.0, 20.0, size=(399, 399))).astype(np.float32)
    az[:, :30] = np.nan
    rd = rng.normal(4353.0, 700.0, size=(256, 16)).astype(np.float32)
    for kind, frame in (("azimuth", az), ("range_doppler", rd)):
        n = RadarNorm(kind, float(np.nanpercentile(RadarNorm(kind, 0, 1).values(frame), 5)),
                      float(np.nanpercentile(RadarNorm(kind, 0, 1).values(frame), 95)))
        np.testing.assert_array_equal(to_storage("radar", n.apply(frame)), to_storage("radar", n.apply(frame, 64)))
    # azimuth_static is stored far-range-first (zi[::-1, ::-1]); ours is nearest-first
    far_first = np.zeros((399, 399), np.float32)
    far_first[0] = 1000.0
    assert RadarNorm("azimuth", 0.0, 60.0).apply(far_first)[-1].min() == 1.0


def test_options_realsense_depth_range_doppler_split_mapping_and_node_spelling(tmp_path):
    root = tmp_path / "src"
    write_synthetic_gdtm(root, {"chunk_0": 4, "chunk_1": 3}, node_dir="node{k}")
    out = tmp_path / "out"
    convert_gdtm(root, out, splits={"train": "chunk_0", "test": "chunk_1"}, depth="realsense",
                 radar="range_doppler", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert sorted(meta["splits"]) == ["test", "train"] and meta["gdtm"]["sources"]["depth"]["metric"] is False
    assert meta["radar"]["kind"] == "range_doppler" and meta["radar"]["transform"] == "identity"
    ds = SimDataset(out, "train")
    assert len(ds) == 4 and ds.depth.max() <= 8000
    # a second conversion with the first one's radar range gives the same radar arrays
    out2 = tmp_path / "out2"
    convert_gdtm(root, out2, splits={"train": "chunk_0"}, depth="realsense", radar="range_doppler",
                 radar_range=(meta["radar"]["lo"], meta["radar"]["hi"]), progress=False)
    np.testing.assert_array_equal(np.load(out2 / "train" / "radar.npy"), np.load(out / "train" / "radar.npy"))


def test_offsets_gaps_and_missing_frames_are_matched_or_counted(tmp_path):
    root, truth = _small(tmp_path)
    st = truth["train"]["stamps"]
    with h5py.File(root / "train" / "node_2" / "zed.hdf5", "r+") as f:  # node 2's camera 5 ms late
        for ts in st:
            f.move(str(ts), str(ts + 5))
    with h5py.File(root / "train" / "node_3" / "zed.hdf5", "r+") as f:  # node 3 lost frame 3
        del f[str(st[3])]
    with h5py.File(root / "train" / "node_1" / "mmwave.hdf5", "r+") as f:  # radar hole: neighbour within 250 ms
        del f[str(st[1])]
    with h5py.File(root / "train" / "mocap.hdf5", "r+") as f:  # car not tracked in frame 4
        objs = [o for o in json.loads(f[f"{st[4]}/mocap"][()]) if o["type"] == "node"]
        del f[f"{st[4]}/mocap"]
        f[str(st[4])].create_dataset("mocap", data=json.dumps(objs))
    out = tmp_path / "out"
    s = convert_gdtm(root, out, progress=False)["splits"]["train"]
    assert s["mocap_frames"] == 5 and s["n_samples"] == 3 and s["n_dropped"] == 2
    assert s["dropped"] == {"missing:node3/rgb": 1, "no_car": 1}
    assert s["missing_per_stream"] == {"node3/rgb": 1, "node3/depth": 1}
    assert s["inexact_matches"] == {"node2/rgb": 4, "node2/depth": 4, "node1/radar": 1}  # frame 4: no car
    ds = SimDataset(out, "train")
    np.testing.assert_array_equal(np.load(out / "train" / "stamp_ms.npy"), [st[0], st[1], st[2]])
    np.testing.assert_allclose(ds.gt, np.array(truth["train"]["car"])[[0, 1, 2]][:, [0, 2]], atol=1e-6)
    assert (ds.depth[:, 1] == (1000 + 20 * np.arange(3) + 300)[:, None, None]).all()


# ----------------------------------------------------------------------------- the same commands work on it
def test_one_stage1_step_and_evaluation_run_on_it(converted, tmp_path):
    import torch

    from admn_ros.core.evaluate import cli as ecli
    from admn_ros.core.evaluate.table import EvalSettings
    from admn_ros.core.train.config import Stage1Config
    from admn_ros.core.train.stage1 import train_stage1
    from fixtures.train import TINY_MODEL

    torch.set_num_threads(1)
    out, _ = converted
    cfg = Stage1Config(data=str(out), out=str(tmp_path / "s1"), epochs=1, batch_size=8, train_samples=8,
                       val_samples=4, model=dict(TINY_MODEL), progress=False, threads=1)
    res = train_stage1(cfg, log=_quiet)
    assert res.model_path.is_file() and np.isfinite(res.history[-1]["loss"])
    settings = EvalSettings(regimes=("binary",), draws=("modality",), fractions=(0.25,), samples=4, batch_size=4)
    ev = ecli.evaluate(str(out), str(tmp_path / "eval"), models=None, stage1=str(res.model_path), settings=settings,
                       latency=False, plots=False, show_progress=False, log=_quiet)
    assert ev.files["markdown"].is_file()


# ----------------------------------------------------------------------------- errors
def test_wrong_paths(tmp_path, src):
    with pytest.raises(FileNotFoundError, match="GDTM source directory not found"):
        convert_gdtm(tmp_path / "nope", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"split directory not found: .*empty/train"):
        convert_gdtm(tmp_path / "empty", tmp_path / "out", progress=False)
    with pytest.raises(FileExistsError):
        out = tmp_path / "o"
        (out / "train").mkdir(parents=True)
        convert_gdtm(src[0], out, progress=False)


def test_missing_node_file_and_node_dir(tmp_path):
    root, _ = _small(tmp_path)
    (root / "val" / "node_2" / "mmwave.hdf5").unlink()
    with pytest.raises(FileNotFoundError, match=r"val/node_2/mmwave\.hdf5"):
        convert_gdtm(root, tmp_path / "out", progress=False)
    shutil.rmtree(root / "val" / "node_2")
    with pytest.raises(FileNotFoundError, match=r"node directory not found: .*val/node_2"):
        convert_gdtm(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "meta.json").exists()


def test_missing_modality_names_file_and_key(tmp_path):
    root, _ = _small(tmp_path)
    with h5py.File(root / "test" / "node_1" / "zed.hdf5", "r+") as f:
        for ts in list(f.keys()):
            del f[f"{ts}/node_1/zed_camera_depth"]
    with pytest.raises(GDTMError, match=r"test/node_1/zed\.hdf5: no dataset node_1/zed_camera_depth .*modality missing"):
        convert_gdtm(root, tmp_path / "out", progress=False)


def test_empty_split(tmp_path):
    root, truth = _small(tmp_path)
    with h5py.File(root / "val" / "mocap.hdf5", "w"):
        pass
    with pytest.raises(GDTMError, match=r"split 'val'.*no timestamp groups.*no samples"):
        convert_gdtm(root, tmp_path / "out", progress=False)
    with h5py.File(root / "val" / "mocap.hdf5", "w") as f:  # frames, but never a car
        for ts in truth["val"]["stamps"]:
            f.create_group(str(ts)).create_dataset("mocap", data=json.dumps([]))
    with pytest.raises(GDTMError, match=r"split 'val'.*no samples left.*'no_car': 3"):
        convert_gdtm(root, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "train").exists()  # nothing half-written


def test_corrupt_file_and_corrupt_keys(tmp_path):
    root, truth = _small(tmp_path)
    bad = root / "train" / "node_3" / "zed.hdf5"
    keep = bad.read_bytes()
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(GDTMError, match=r"train/node_3/zed\.hdf5: not a readable HDF5 file") as ei:
        convert_gdtm(root, tmp_path / "out", progress=False)
    assert ei.value.path == str(bad)
    bad.write_bytes(keep)

    ts = truth["train"]["stamps"][2]
    with h5py.File(root / "train" / "node_1" / "zed.hdf5", "r+") as f:
        del f[f"{ts}/node_1/zed_camera_left"]
        f[f"{ts}/node_1"].create_dataset("zed_camera_left", data=np.frombuffer(b"garbage!" * 8, dtype=np.uint8))
    key = f"/{ts}/node_1/zed_camera_left"
    with pytest.raises(GDTMError, match=rf"train/node_1/zed\.hdf5: key '{key}': cannot decode the JPEG") as ei:
        convert_gdtm(root, tmp_path / "out", progress=False)
    assert ei.value.key == key
    assert not (tmp_path / "out" / "meta.json").exists() and not (tmp_path / "out" / "train").exists()
    s = convert_gdtm(root, tmp_path / "out", on_corrupt="drop", progress=False)["splits"]["train"]
    assert s["dropped"] == {"corrupt:node1/rgb": 1} and s["n_samples"] == 4 and key in s["corrupt_examples"][0]
    ds = SimDataset(tmp_path / "out", "train")  # arrays truncated consistently
    st = truth["train"]["stamps"]
    assert len(ds) == 4 and np.load(tmp_path / "out" / "train" / "stamp_ms.npy").tolist() == [st[i] for i in (0, 1, 3, 4)]
    assert (ds.depth[:, 0] == (1000 + 20 * np.array([0, 1, 3, 4]))[:, None, None]).all()

    ts = truth["test"]["stamps"][0]
    with h5py.File(root / "test" / "mocap.hdf5", "r+") as f:
        del f[f"{ts}/mocap"]
        f[str(ts)].create_dataset("mocap", data="{not json")
    with pytest.raises(GDTMError, match=rf"test/mocap\.hdf5: key '/{ts}/mocap': invalid mocap JSON"):
        convert_gdtm(root, tmp_path / "out2", progress=False)


def test_cli(tmp_path, capsys):
    root, _ = _small(tmp_path)
    out = tmp_path / "out"
    assert main(["--src", str(root), "--out", str(out), "--quiet"]) == 0
    assert len(SimDataset(out, "test")) == 3
    assert main(["--src", str(root), "--out", str(out), "--quiet"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert main(["--src", str(root), "--out", str(out), "--overwrite", "--limit", "2", "--radar", "range_doppler"]) == 0
    captured = capsys.readouterr()
    assert "[gdtm] train: 2 of 2 mocap frames" in captured.out
    assert main(["--src", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "GDTM source directory not found" in capsys.readouterr().err


def test_example_ros1_mapping_is_valid():
    from admn_ros.bags.mapping import load_mapping

    m = load_mapping(Path(__file__).resolve().parents[2] / "config" / "bag_topics_gdtm_ros1.yaml")
    assert len(m.stream_ids) == 9 and m.gt_axes == ("x", "z")
    assert all(m.stream(f"node{k}/radar").optional for k in (1, 2, 3))
