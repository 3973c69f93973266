"""MM-Fi reader: a tiny fake copy written here in the released layout (ROOT/E01/S01/A01/{rgb,infra1,
infra2,depth,mmwave,lidar}/frameNNN.{npy,png,bin}: keypoint .npy, 16-bit depth PNGs via OpenCV,
float64 (n, 5) mmWave point clouds via numpy tofile, as the MM-Fi toolbox reads them) converts into
the activity format with the right shapes, dtypes, labels, radar bins and disjoint subject splits;
the converted copy reads back through ActivityDataset and trains/evaluates through the CLI;
the error cases (wrong path, missing modality folder, empty split, corrupt PNG / .bin / .npy, missing
frame) name the folder or file, and dropped windows are counted per reason."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from admn_ros.core.data.mmfi import (ADMN_TEST_SUBJECTS, CROSS_SUBJECT_TEST, MMFiError, convert_mmfi,  # noqa: E402
                                     main,
                                     radar_histogram, render_keypoints, split_subjects)
from fixtures import write_synthetic_mmfi  # noqa: E402

SUBJECTS = ("S01", "S07", "S08")   # the ADMN split: S01 train, S07 val, S08 test
ACTIONS = ("A01", "A02")
N_FRAMES = 8
DEPTH_HW = (48, 64)


def _depth_mm(action: int, frame: int) -> int:
    return 1000 + 100 * action + 10 * frame


def write_tree(root: Path, subjects=SUBJECTS, actions=ACTIONS, frames: int = N_FRAMES,
               rgb_jpeg: bool = False) -> Path:
    """The released layout, written with the toolbox's conventions (frame%03d, float64 .bin)."""
    rng = np.random.default_rng(0)
    for subj in subjects:
        env = f"E{(int(subj[1:]) - 1) // 10 + 1:02d}"
        for act in actions:
            a = int(act[1:])
            d = root / env / subj / act
            for sub in ("rgb", "infra1", "infra2", "depth", "mmwave", "lidar", "wifi-csi"):
                (d / sub).mkdir(parents=True)
            for i in range(1, frames + 1):
                name = f"frame{i:03d}"
                kp = np.stack([np.linspace(200, 440, 17), np.linspace(60, 420, 17)], axis=1).astype(np.float32)
                np.save(d / "rgb" / f"{name}.npy", kp)
                for infra in ("infra1", "infra2"):
                    np.save(d / infra / f"{name}.npy", kp)
                assert cv2.imwrite(str(d / "depth" / f"{name}.png"), np.full(DEPTH_HW, _depth_mm(a, i), np.uint16))
                pts = np.zeros((5, 5), np.float64)           # x, y, z, doppler, intensity
                pts[:, 0], pts[:, 1] = 0.6 * a, 0.8 * a          # range = 1.0 * a m
                pts[:, 3] = 1.5 if a % 2 == 0 else -1.5
                pts[:, 4] = rng.uniform(5.0, 10.0, 5)
                pts.tofile(d / "mmwave" / f"{name}.bin")
                rng.normal(size=(10, 3)).tofile(d / "lidar" / f"{name}.bin")
                if rgb_jpeg:
                    (d / "rgb_img").mkdir(exist_ok=True)
                    cv2.imwrite(str(d / "rgb_img" / f"{name}.jpg"), np.full((*DEPTH_HW, 3), (0, 0, 200), np.uint8))
            np.save(d / "ground_truth.npy", np.zeros((frames, 17, 3), np.float32))
    return root


def _load(out: Path, split: str) -> dict[str, np.ndarray]:
    return {k: np.load(out / split / f"{k}.npy") for k in ("rgb", "depth", "radar", "label", "subject", "t")}


def _convert(root: Path, out: Path, **kw):
    kw.setdefault("actions", list(ACTIONS))
    kw.setdefault("frames", 3)
    return convert_mmfi(root, out, progress=False, **kw)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = write_tree(tmp_path_factory.mktemp("mmfi") / "MMFi_Dataset")
    out = tmp_path_factory.mktemp("mmfi_out") / "ds"
    return root, out, _convert(root, out)


# ----------------------------------------------------------------------------- conversion
def test_shapes_dtypes_labels_and_meta(converted):
    root, out, summary = converted
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "admn_ros.activitydata" and meta["task"] == "activity" and meta["source"] == "mmfi"
    assert meta["classes"] == ["A01", "A02"] and meta["frames"] == 3
    assert meta["nodes"] == ["f0", "f1", "f2"] and meta["modalities"] == ["rgb", "depth", "radar"]
    assert meta["mmfi"]["image_source"] == "keypoints" and meta["mmfi"]["split"] == "admn"
    # 8 frames, windows of 3 with stride 3 -> starts 1, 4 -> 2 windows per sequence, 2 actions
    assert summary.windows == {"train": 4, "val": 4, "test": 4} and summary.n_skipped == 0
    for split, subj in (("train", 1), ("val", 7), ("test", 8)):
        a = _load(out, split)
        assert a["rgb"].dtype == np.uint8 and a["rgb"].shape == (4, 3, 3, 64, 64)
        assert a["depth"].dtype == np.uint16 and a["depth"].shape == (4, 3, 64, 64)
        assert a["radar"].dtype == np.float16 and a["radar"].shape == (4, 3, 64, 64)
        assert a["label"].dtype == np.int64 and a["subject"].dtype == np.int32 and a["t"].dtype == np.float32
        assert a["label"].tolist() == [0, 0, 1, 1] and set(a["subject"].tolist()) == {subj}
        np.testing.assert_allclose(a["t"], [0.0, 0.3, 0.0, 0.3], atol=1e-6)  # (start - 1) / 10 Hz
        assert meta["splits"][split]["n_samples"] == 4
        # depth: uint16 millimetres of the PNG, frame by frame (window 2 starts at frame 4)
        assert a["depth"][3, :, 10, 10].tolist() == [_depth_mm(2, i) for i in (4, 5, 6)]
        assert a["rgb"].max() > 0  # the stick figure is drawn
    # radar: range 1.0 * a m -> row floor(a / 6 * 64); doppler -1.5 (A01) / +1.5 (A02) -> col 16 / 48
    r = _load(out, "train")["radar"].astype(np.float32)
    for w, (row, col) in ((0, (10, 16)), (2, (21, 48))):
        assert np.argwhere(r[w, 0] > 0).tolist() == [[row, col]] and r[w, 0, row, col] == 1.0


def test_subject_splits_are_disjoint_and_follow_mmfi():
    for kind in ("admn", "cross_subject", "cross_environment"):
        form = split_subjects(kind)
        sets = {k: set(v) for k, v in form.items()}
        assert sets["train"].isdisjoint(sets["test"]) and sets["val"].isdisjoint(sets["test"])
        assert sets["train"].isdisjoint(sets["val"]) and len(set.union(*sets.values())) == 40
    assert sorted(split_subjects("cross_subject")["test"]) == list(CROSS_SUBJECT_TEST)
    admn = split_subjects("admn")
    assert sorted(admn["test"]) == list(ADMN_TEST_SUBJECTS) and sorted(admn["val"]) == ["S07", "S17", "S27", "S37"]
    assert sorted(admn["train"]) == [f"S{e}{i}" for e in "0123" for i in "123456"]
    assert sorted(split_subjects("cross_environment")["test"]) == [f"S{i}" for i in range(31, 41)]
    # random: per action 32 training (28 train + 4 val) and 8 test subjects, the toolbox's permutation
    form = split_subjects("random")
    for act in ("A01", "A27"):
        per = {k: {s for s, acts in v.items() if act in acts} for k, v in form.items()}
        assert [len(per[k]) for k in ("train", "val", "test")] == [28, 4, 8]
        i = int(act[1:]) - 1
        perm = np.random.RandomState(i).permutation(40)
        assert per["test"] == {f"S{j + 1:02d}" for j in perm[32:]}


def test_val_subjects_fold_case_and_refuse_duplicates(tmp_path, capsys):
    """``--val-subjects s07`` is S07 (as ``--actions a01`` and ``--environments e01`` fold case), and a
    subject named twice is an error naming the list. Break tried: _check_subjects without .upper()
    ("unknown MM-Fi subjects ['s07']") and without the duplicate check (['S07', 'S07'] taken silently)."""
    assert split_subjects("admn", ["A01"], val_subjects=["s07"])["val"] == {"S07": ["A01"]}
    assert split_subjects("random", ["A01"], val_subjects=["s02"])["val"] == {"S02": ["A01"]}
    for kind in ("admn", "random"):
        with pytest.raises(ValueError, match=r"duplicate subjects in val_subjects \['S07', 'S07'\]"):
            split_subjects(kind, ["A01"], val_subjects=["S07", "s07"])
    out = tmp_path / "out"
    assert main([str(tmp_path / "src"), "--out", str(out), "--val-subjects", "S07", "s07"]) == 2
    assert "duplicate subjects in val_subjects ['S07', 'S07']" in capsys.readouterr().err
    assert not out.exists()


def test_converted_subjects_disjoint(converted):
    _, out, summary = converted
    subs = {s: set(_load(out, s)["subject"].tolist()) for s in ("train", "val", "test")}
    assert subs["train"].isdisjoint(subs["test"]) and subs["val"].isdisjoint(subs["test"])
    assert summary.subjects == {"train": ["S01"], "val": ["S07"], "test": ["S08"]}


def test_reads_back_through_activity_dataset(converted):
    from admn_ros.core.data.activity import ActivityDataset

    _, out, _ = converted
    for split, subj in (("train", 1), ("val", 7), ("test", 8)):
        ds = ActivityDataset(out, split)
        assert len(ds) == 4 and ds.classes == ["A01", "A02"] and ds.frames == 3 and ds.subject_ids == [subj]
    assert ds.label.tolist() == [0, 0, 1, 1]


def test_image_sources_rgb_jpeg_and_rgb_root(tmp_path):
    root = write_tree(tmp_path / "src", actions=("A01",), frames=3, rgb_jpeg=True)
    s = _convert(root, tmp_path / "rgb", actions=["A01"])        # auto: rgb_img/ exists -> images
    assert s.image_source == "rgb"
    px = _load(tmp_path / "rgb", "train")["rgb"][0, 0, :, 5, 5]
    assert abs(int(px[0]) - 200) <= 3 and px[1] <= 3 and px[2] <= 3  # BGR (0, 0, 200) -> red
    # the separately released anonymised RGB tree: <rgb_root>/all_images/MMFi_Defaced_RGB/E01/S01/A01/rgb/*.png
    rgb_root = tmp_path / "rgbdl"
    for subj in SUBJECTS:   # as all_images.zip extracts (nesl/ADMN MMFI_Noise/generate_MMFI_pickles.py)
        d = rgb_root / "all_images" / "MMFi_Defaced_RGB" / "E01" / subj / "A01" / "rgb"
        d.mkdir(parents=True)
        for i in range(1, 4):
            cv2.imwrite(str(d / f"frame{i:03d}.png"), np.full((*DEPTH_HW, 3), (200, 0, 0), np.uint8))
    s = _convert(root, tmp_path / "rr", actions=["A01"], rgb_root=rgb_root)
    assert s.image_source == "rgb" and _load(tmp_path / "rr", "test")["rgb"][0, 0, 2, 5, 5] == 200


def test_partial_rgb_root_names_the_layout_in_use(tmp_path):
    """An anonymised-RGB download (all_images/MMFi_Defaced_RGB/E/S/A/rgb) without one of the sequences:
    the error names that sequence's folder in the download's layout, not a layout the download does not
    use. Break tried: the old per-sequence search falling back to <rgb_root>/E01/S08/A01/rgb."""
    root = write_tree(tmp_path / "src", actions=("A01",), frames=3)
    base = tmp_path / "rgbdl" / "all_images" / "MMFi_Defaced_RGB"
    for subj in ("S01", "S07"):   # S08 (test) missing from the download
        d = base / "E01" / subj / "A01" / "rgb"
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "frame001.png"), np.zeros((*DEPTH_HW, 3), np.uint8))
    with pytest.raises(MMFiError, match="modality folder missing for E01/S08/A01") as e:
        _convert(root, tmp_path / "out", actions=["A01"], rgb_root=tmp_path / "rgbdl")
    assert e.value.path == str(base / "E01" / "S08" / "A01" / "rgb")


def test_synthetic_writer_converts(tmp_path):
    info = write_synthetic_mmfi(tmp_path / "src", subjects=SUBJECTS, actions=("A03", "A12"), frames=6)
    assert len(info["sequences"]) == 6
    s = convert_mmfi(tmp_path / "src", tmp_path / "out", actions=["A03", "A12"], frames=2, stride=1, progress=False)
    assert s.windows == {"train": 10, "val": 10, "test": 10}
    # the ADMN code's windows: frames s, s+2, ..., s+2(F-1); 6 frames -> F=3 step 2 spans 5 -> starts 1, 2
    s = convert_mmfi(tmp_path / "src", tmp_path / "o2", actions=["A03", "A12"], frames=3, frame_step=2, stride=1,
                     progress=False)
    assert s.windows == {"train": 4, "val": 4, "test": 4}
    d = np.load(tmp_path / "o2" / "train" / "depth.npy")[:, :, 0, 0]
    assert d[1].tolist() == [1000 + 300 + 10 * i for i in (2, 4, 6)]


def test_helpers():
    h, out = radar_histogram(np.array([[3.0, 0, 0, 0.0, 2.0], [3.0, 0, 0, 0.0, 2.0], [9.0, 0, 0, 0, 1.0],
                                       [1.0, 0, 0, -2.9, 1.0]]))
    assert out == 1 and h[32, 32] == 1.0 and h[10, 1] == 0.25 and h.sum() == 1.25
    assert radar_histogram(np.zeros((0, 5)))[0].max() == 0.0
    img, outside = render_keypoints(np.array([[320.0, 240.0]] * 16 + [[-5.0, 10.0]]))
    assert img.shape == (64, 64, 3) and img[32, 32].max() > 0 and outside == 1


# ----------------------------------------------------------------------------- errors and skips
def test_wrong_root_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="MM-Fi root not found"):
        _convert(tmp_path / "nope", tmp_path / "out")
    root = write_tree(tmp_path / "data" / "MMFi_Dataset", subjects=("S01",), actions=("A01",), frames=3)
    with pytest.raises(MMFiError, match=r"no environment folders.*did you mean .*MMFi_Dataset"):
        _convert(tmp_path / "data", tmp_path / "out")
    with pytest.raises(MMFiError, match="no environment folders"):
        _convert(root / "E01", tmp_path / "out")   # one level too deep
    assert not (tmp_path / "out" / "meta.json").exists()


def test_tree_without_sequences_names_its_environments(tmp_path):
    """An environment given twice (in any case) is listed once. Breaks tried: listing the environments
    of the sequences found (none), which printed 'under environments []' for a tree that has E01 and
    E04; listing ``--environments`` as given ('E04', 'E04')."""
    for part in ("E01/S01", "E04"):
        (tmp_path / "src" / part).mkdir(parents=True)
    with pytest.raises(MMFiError, match=r"no sequence folders .* under environments \['E01', 'E04'\]"):
        _convert(tmp_path / "src", tmp_path / "out")
    with pytest.raises(MMFiError, match=r"under environments \['E04'\]"):
        _convert(tmp_path / "src", tmp_path / "out", environments=["e04", "E04"])
    assert not (tmp_path / "out").exists()


def test_missing_modality_folder_names_it(tmp_path):
    root = write_tree(tmp_path / "src")
    shutil.rmtree(root / "E01" / "S07" / "A02" / "mmwave")
    with pytest.raises(MMFiError, match=r"E01/S07/A02/mmwave") as e:
        _convert(root, tmp_path / "out")
    assert e.value.path.endswith("E01/S07/A02/mmwave")
    with pytest.raises(MMFiError, match=r"E01/S01/A01/rgb_img"):
        _convert(root, tmp_path / "out", image_source="rgb")
    with pytest.raises(MMFiError, match=r"E01/S01/A01/rgb.*keypoints"):   # the release's .npy, not images
        _convert(root, tmp_path / "out", image_source="rgb", rgb_root=root)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_empty_split_is_an_error(tmp_path):
    root = write_tree(tmp_path / "src", subjects=("S01", "S07"))   # no ADMN test subject
    with pytest.raises(MMFiError, match=r"split 'test' has no sequences.*S08, S09, S10"):
        _convert(root, tmp_path / "out")
    with pytest.raises(MMFiError, match=r"split 'test' has no sequences.*S05"):
        _convert(root, tmp_path / "out", split="cross_subject", val_subjects=["S07"])
    with pytest.raises(MMFiError, match=r"split 'test'.*no sequences.*E04"):
        _convert(root, tmp_path / "out", split="cross_environment")
    root2 = write_tree(tmp_path / "src2", frames=2)                   # every sequence shorter than a window
    with pytest.raises(MMFiError, match=r"split 'train' has no windows.*short_sequence"):
        _convert(root2, tmp_path / "out2")
    assert not (tmp_path / "out2" / "meta.json").exists()


def test_corrupt_and_missing_frames_are_counted_or_raise(tmp_path):
    root = write_tree(tmp_path / "src")
    seq = root / "E01" / "S01" / "A01"
    (seq / "depth" / "frame002.png").write_bytes(b"not a png")           # window 1 (frames 1-3)
    (seq / "mmwave" / "frame005.bin").write_bytes(b"\0" * 44)            # window 2 (4-6): 44 % 40 != 0
    seq2 = root / "E01" / "S01" / "A02"
    (seq2 / "rgb" / "frame001.npy").write_bytes(b"garbage")              # A02 window 1
    (seq2 / "mmwave" / "frame006.bin").unlink()                          # A02 window 2
    s = _convert(root, tmp_path / "out", frames=2)                      # windows 1-2, 3-4, 5-6, 7-8
    assert s.windows == {"train": 4, "val": 8, "test": 8}
    assert s.skipped["train"] == {"corrupt:depth": 1, "corrupt:radar": 1, "corrupt:rgb": 1, "missing:radar": 1}
    assert s.skipped["val"] == {} and s.n_skipped == 4
    text = "\n".join(s.examples)
    assert "frame002.png" in text and "OpenCV cannot decode" in text
    assert "frame005.bin" in text and "not a multiple of 40" in text
    assert "frame001.npy" in text and "frame006.bin: frame 6 missing" in text
    assert "skipped 4 windows" in str(s)
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["conversion"]["skipped"]["train"]["missing:radar"] == 1
    with pytest.raises(MMFiError, match=r"depth/frame002\.png: OpenCV cannot decode"):
        _convert(root, tmp_path / "strict", strict=True)
    (seq / "depth" / "frame002.png").unlink()
    cv2.imwrite(str(seq / "depth" / "frame002.png"), np.full(DEPTH_HW, 1, np.uint16))
    with pytest.raises(MMFiError, match=r"mmwave/frame005\.bin: size 44 bytes is not a multiple of 40"):
        _convert(root, tmp_path / "strict", strict=True)


def test_unreadable_frame_files_are_counted_in_every_slot(tmp_path):
    """A frame file that cannot be read (here a folder in its place; a dangling link or a file without
    read permission alike) drops only its windows, whatever the slot, and names the file.
    Break tried: read_mmwave_bin without its OSError handler (the conversion died on the first .bin)."""
    root = write_tree(tmp_path / "src")
    seq = root / "E01" / "S01" / "A01"
    for path in (seq / "depth" / "frame001.png", seq / "rgb" / "frame003.npy", seq / "mmwave" / "frame005.bin"):
        path.unlink()
        path.mkdir()
    s = _convert(root, tmp_path / "out", frames=2)                      # windows 1-2, 3-4, 5-6, 7-8
    assert s.skipped["train"] == {"corrupt:depth": 1, "corrupt:rgb": 1, "corrupt:radar": 1}
    assert s.windows["train"] == 5 and "mmwave/frame005.bin: cannot read" in "\n".join(s.examples)
    with pytest.raises(MMFiError, match=r"depth/frame001\.png"):
        _convert(root, tmp_path / "strict", frames=2, strict=True)


def test_unreadable_images_leave_stderr_to_the_converter(tmp_path, capfd):
    """An image OpenCV cannot open (a dangling link) or decode (a PNG signature over garbage) is counted
    and named in the summary; OpenCV's own ``[ WARN ] imread_`` / ``[ERROR]`` lines stay off stderr, and
    its log level is the caller's again afterwards. Break tried: convert_mmfi without _opencv_silent
    (both lines on stderr)."""
    root = write_tree(tmp_path / "src", rgb_jpeg=True)
    seq = root / "E01" / "S01" / "A01"
    (seq / "rgb_img" / "frame002.jpg").unlink()
    (seq / "rgb_img" / "frame002.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (seq / "depth" / "frame005.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    level = cv2.utils.logging.getLogLevel()
    s = _convert(root, tmp_path / "out", frames=2)
    assert s.skipped["train"] == {"corrupt:depth": 1, "corrupt:rgb": 1}
    assert "frame002.jpg: OpenCV cannot decode" in "\n".join(s.examples)
    err = capfd.readouterr().err
    assert "imread_" not in err and "ERROR" not in err, err
    assert cv2.utils.logging.getLogLevel() == level


@pytest.mark.parametrize("canvas", [(0.0, 480.0), (float("nan"), 480.0), (640.0, float("inf"))])
def test_keypoint_canvas_must_be_finite_and_positive(tmp_path, canvas):
    """Break tried: the old check `min(canvas) <= 0` (NaN passed it and OpenCV raised mid-conversion;
    an infinite canvas drew every keypoint in one corner)."""
    root = write_tree(tmp_path / "src", actions=("A01",), frames=3)
    with pytest.raises(ValueError, match="keypoint_canvas must be"):
        _convert(root, tmp_path / "out", actions=["A01"], keypoint_canvas=canvas)
    assert not (tmp_path / "out").exists()


def test_corrupt_everywhere_leaves_no_dataset(tmp_path):
    root = write_tree(tmp_path / "src", actions=("A01",), frames=3)
    (root / "E01" / "S08" / "A01" / "depth" / "frame003.png").write_bytes(b"")
    with pytest.raises(MMFiError, match=r"split 'test' has no windows.*corrupt:depth"):
        _convert(root, tmp_path / "out", actions=["A01"])
    assert not (tmp_path / "out" / "meta.json").exists() and not (tmp_path / "out" / "train").exists()


def test_existing_output_and_cli(tmp_path, capsys):
    root = write_tree(tmp_path / "src", actions=("A01",), frames=3)
    out = tmp_path / "out"
    args = [str(root), "--out", str(out), "--actions", "A01", "--frames", "3", "--quiet"]
    assert main(args) == 0 and (out / "meta.json").is_file()
    assert main(args) == 2 and "already holds a dataset" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "o2")]) == 2
    assert "MM-Fi root not found" in capsys.readouterr().err
    from admn_ros.cli import COMMANDS
    assert COMMANDS["convert-mmfi"][:2] == ("admn_ros.core.data.mmfi", "main")


def test_model_of_other_classes_is_refused(converted, tmp_path, capsys):
    """An activity model of 10 classes (the simulated set) on a 2-class MM-Fi copy: an error naming both
    counts instead of an accuracy over unrelated labels.
    Break tried: check_dataset without the task's model_overrides loop (the table was written)."""
    from admn_ros.core.evaluate.cli import main as evaluate_main
    from fixtures import write_random_activity_models

    _, out, _ = converted
    write_random_activity_models(tmp_path / "m", frames=3)
    assert evaluate_main(["--data", str(out), "--models", str(tmp_path / "m"), "--out", str(tmp_path / "rep"),
                          "--no-latency", "--no-plots", "--no-progress", "--regimes", "binary"]) == 2
    assert "dataset n_classes 2 != model config n_classes 10" in capsys.readouterr().err
    assert not (tmp_path / "rep" / "table1.md").exists()


# ----------------------------------------------------------------------------- end to end
def test_converted_mmfi_trains_and_evaluates_end_to_end(converted, tmp_path):
    """The same training and evaluation commands take a converted MM-Fi copy: one stage-1
    step, one controller step, then the accuracy table (the task comes from meta.json)."""
    from admn_ros.core.evaluate.cli import main as evaluate_main
    from admn_ros.core.train.cli import main as train_main

    _, out, _ = converted
    s1, c1 = tmp_path / "s1", tmp_path / "c1"
    common = ["--data", str(out), "--epochs", "1", "--batch-size", "4", "--train-samples", "4",
              "--val-samples", "2", "--no-progress", "--threads", "1"]
    assert train_main(["stage1", *common, "--out", str(s1), "--noise-start-epoch", "0"]) == 0
    meta = json.loads((s1 / "summary.json").read_text())
    assert meta["model_config"]["task"] == "activity" and meta["model_config"]["n_classes"] == len(ACTIONS)
    assert meta["model_config"]["frames"] == 3 and meta["model_config"]["nodes"] == ["node1"]
    assert train_main(["stage2", *common, "--stage1", str(s1 / "model.safetensors"), "--out", str(c1),
                       "--variant", "budget", "--budget", "9", "--warmup-epochs", "0"]) == 0
    rep = tmp_path / "rep"
    assert evaluate_main(["--data", str(out), "--stage1", str(s1 / "model.safetensors"), "--models", "",
                          "--controller", str(c1 / "controller.safetensors"), "--out", str(rep),
                          "--no-latency", "--no-plots", "--no-progress", "--regimes", "binary",
                          "--fractions", "0.25"]) == 0
    md = (rep / "table1.md").read_text()
    assert "activity recognition" in md and "| binary | ADMN |" in md
    assert "accuracy_pct" in (rep / "table1.csv").read_text().splitlines()[0]
