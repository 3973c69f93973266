"""Dataset generator and reader on a tiny generated set: split hygiene, meta, errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from admn_ros.core.data import (ARRAYS, FORMAT_VERSION, SPLITS, DatasetError, SimDataset, generate_dataset,
                                plan_splits, read_meta)
from admn_ros.core.preprocess import to_storage
from admn_ros.core.sim import GDTMSimulator, load_sim_config

N, FPE = 60, 12  # 5 episodes: 3 train, 1 val, 1 test


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("simdata") / "ds"
    summary = generate_dataset(out, n_samples=N, seed=0, frames_per_episode=FPE, workers=1, progress=False)
    assert summary["n_samples"] == N and summary["total_bytes"] > 0
    return out


def test_split_hygiene(tiny: Path) -> None:
    meta = read_meta(tiny)
    eps = {s: set(meta["splits"][s]["episodes"]) for s in SPLITS}
    assert all(eps[s] for s in SPLITS)
    assert not (eps["train"] & eps["val"]) and not (eps["train"] & eps["test"]) and not (eps["val"] & eps["test"])
    assert sum(meta["splits"][s]["n_samples"] for s in SPLITS) == N
    for s in SPLITS:
        ds = SimDataset(tiny, s)
        assert len(ds) == meta["splits"][s]["n_samples"] == sum(meta["splits"][s]["episode_frames"])
        assert set(np.unique(ds.episode)) == eps[s]
        # t restarts per episode and advances at the configured rate
        for e in eps[s]:
            t = np.asarray(ds.t[ds.episode == e])
            np.testing.assert_allclose(t, np.arange(len(t)) / meta["rate_hz"], atol=1e-5)


def test_meta_matches_arrays(tiny: Path) -> None:
    meta = read_meta(tiny)
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["stream_ids"] == load_sim_config().streams.ids
    assert len(meta["sim_config"]["nodes"]) == 3 and "position" in meta["sim_config"]["nodes"][0]
    assert set(meta["arrays"]) == {f"{k}.npy" for k in ARRAYS}
    S = len(meta["nodes"])
    for s in SPLITS:
        n = meta["splits"][s]["n_samples"]
        for fname, info in meta["arrays"].items():
            a = np.load(tiny / s / fname, mmap_mode="r")
            assert str(a.dtype) == info["dtype"], fname
            assert list(a.shape) == [n if d == "N" else S if d == "S" else d for d in info["shape"]], fname
            assert info["description"]


def test_stored_samples_equal_simulator_path(tiny: Path) -> None:
    ds = SimDataset(tiny, "val")
    ep = int(ds.episode[0])
    sim = GDTMSimulator(load_sim_config(), seed=0, episode=ep)
    sim.step()
    f = sim.step()  # second frame of the episode
    i = int(np.flatnonzero(np.asarray(ds.episode) == ep)[1])
    for k, node in enumerate(ds.nodes):
        np.testing.assert_array_equal(ds.rgb[i, k], to_storage("rgb", f.streams[f"{node}/rgb"].data))
        np.testing.assert_array_equal(ds.depth[i, k], to_storage("depth", f.streams[f"{node}/depth"].data))
        np.testing.assert_array_equal(ds.radar[i, k], to_storage("radar", f.streams[f"{node}/radar"].data))
    np.testing.assert_array_equal(ds.gt[i], f.gt_xy)


def test_gt_inside_track(tiny: Path) -> None:
    cfg = load_sim_config()
    x0, x1, y0, y1 = cfg.track.bounds
    for s in SPLITS:
        gt = np.asarray(SimDataset(tiny, s).gt)
        assert (gt[:, 0] >= x0).all() and (gt[:, 0] <= x1).all()
        assert (gt[:, 1] >= y0).all() and (gt[:, 1] <= y1).all()


def test_batch(tiny: Path) -> None:
    ds = SimDataset(tiny, "train")
    b = ds.batch([5, 0, 7])
    assert b["rgb"].shape == (3, 3, 3, 64, 64)
    assert b["depth"].shape == (3, 3, 1, 64, 64)
    assert b["radar"].shape == (3, 3, 1, 64, 64)
    assert b["gt"].shape == (3, 2)
    for k in ("rgb", "depth", "radar"):
        assert b[k].dtype == np.float32 and b[k].min() >= 0.0 and b[k].max() <= 1.0
    np.testing.assert_array_equal(b["gt"][1], ds.gt[0])  # caller's order is kept
    np.testing.assert_array_equal(b["rgb"][0], ds.batch([5])["rgb"][0])
    one = ds[3]
    assert one["rgb"].shape == (3, 3, 64, 64) and one["gt"].shape == (2,)
    with pytest.raises(IndexError):
        ds.batch([len(ds)])


def test_workers_give_identical_arrays(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds2"
    generate_dataset(out, n_samples=N, seed=0, frames_per_episode=FPE, workers=2, progress=False)
    for s in SPLITS:
        for stem in ARRAYS:
            np.testing.assert_array_equal(np.load(out / s / f"{stem}.npy"), np.load(tiny / s / f"{stem}.npy"))


def test_refuses_to_overwrite(tiny: Path) -> None:
    with pytest.raises(FileExistsError, match=str(tiny)):
        generate_dataset(tiny, n_samples=N, frames_per_episode=FPE, workers=1, progress=False)


def test_plan_splits() -> None:
    plan = plan_splits(20000, 200, 0.1, 0.1, seed=0)
    assert [len(plan[s]) for s in SPLITS] == [80, 10, 10]
    assert sum(n for s in SPLITS for _, n in plan[s]) == 20000
    plan = plan_splits(25, 10, 0.1, 0.1, seed=0)  # 3 episodes, the last one short
    assert sorted(n for s in SPLITS for _, n in plan[s]) == [5, 10, 10]
    with pytest.raises(ValueError, match="too few"):
        plan_splits(20, 10, 0.1, 0.1, seed=0)
    with pytest.raises(ValueError, match="val_frac"):
        plan_splits(100, 10, 1.5, 0.1, seed=0)


def test_reader_errors_name_the_path(tiny: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing_here"
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        SimDataset(missing, "train")
    # bad format version
    bad = tmp_path / "badver"
    shutil.copytree(tiny, bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["format_version"] = 999
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"badver.*format_version"):
        SimDataset(bad, "train")
    # unknown split
    with pytest.raises(DatasetError, match="unknown split"):
        SimDataset(tiny, "dev")
    # a missing array file
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "train" / "gt.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"broken.*gt\.npy"):
        SimDataset(broken, "train")


def test_split_with_no_samples(tmp_path: Path) -> None:
    out = tmp_path / "trainonly"
    generate_dataset(out, n_samples=8, frames_per_episode=4, val_frac=0.0, test_frac=0.0,
                     workers=1, progress=False)
    assert len(SimDataset(out, "train")) == 8
    with pytest.raises(DatasetError, match=r"'val'.*trainonly.*no samples"):
        SimDataset(out, "val")
