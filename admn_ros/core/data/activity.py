"""Activity-recognition datasets (format ``admn_ros.activitydata`` 1, docs/DATASET.md): reader,
writer and the simulated generator. A sample is a window of ``F`` frames of one node; in the
model's stream layout the frames play the role of nodes (``"f0" ... "f{F-1}"``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from contextlib import suppress
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from admn_ros.core.data.simdata import (SPLITS, DatasetError, MemmapBatches, array_shape, create_arrays,
                                        load_meta_json, meta_head, split_permutation)
from admn_ros.core.data.tools import WorkerPool, clear_dataset, cli_exit_code, fmt_bytes, truncate_npy
from admn_ros.core.preprocess import MODEL_INPUT, to_storage
from admn_ros.core.sim.activity import (ACTIVITIES, CAMERA_VFOV_DEG, DOPPLER_RES_MPS, RANGE_RES_M, SENSOR_HEIGHT_M,
                                        SENSOR_NODE, ActivityRenderer, activity_index, draw_subject, render_window)
from admn_ros.core.sim.config import check_index, check_rate
from admn_ros.core.streams import MODALITY_NAMES, StreamSet

ACTIVITY_FORMAT: str = "admn_ros.activitydata"
ACTIVITY_FORMAT_VERSION: int = 1
#: A window starts at a uniformly drawn time in [0, MAX_START_S) of its performance, seconds.
MAX_START_S: float = 30.0
M = MODEL_INPUT

#: Per-split arrays: stem -> (dtype, shape with "N" / "F" placeholders, description).
ACTIVITY_ARRAYS: dict[str, tuple[str, tuple[Any, ...], str]] = {
    "rgb": ("uint8", ("N", "F", 3, M, M),
            "RGB (rgb8) per frame, nearest pixel-centre subsampled to 64x64 (preprocess.to_storage), "
            "channels first; model input = value / 255"),
    "depth": ("uint16", ("N", "F", M, M),
              "depth in millimetres per frame (0 = invalid), 64x64 nearest; "
              "model input = min(mm / (depth_max_m * 1000), 1)"),
    "radar": ("float16", ("N", "F", M, M),
              "radar heatmap in [0, 1] per frame, 64x64 (simulated and MM-Fi: range-Doppler, rows = range "
              "0..6 m with row 0 nearest, columns = radial velocity -3..+3 m/s)"),
    "label": ("int64", ("N",), "activity class, index into meta['classes']"),
    "subject": ("int32", ("N",), "subject id (splits are disjoint by subject)"),
    "t": ("float32", ("N",), "start time of the window in its recording / performance, seconds"),
}


def frame_names(frames: int) -> tuple[str, ...]:
    """The pseudo-node names of a window's frames: ``("f0", ..., "f{F-1}")``."""
    return tuple(f"f{i}" for i in range(check_index("frames", frames, lo=1)))


class ActivityDataset(MemmapBatches):
    """Memory-mapped reader of one split of an activity dataset (the arrays as attributes)."""

    TARGET = ("label", np.int64)

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        self.meta = load_meta_json(root, ACTIVITY_FORMAT, ACTIVITY_FORMAT_VERSION,
                                   "regenerate or reconvert the dataset")
        mp_ = self.root / "meta.json"
        classes = self.meta.get("classes")
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise DatasetError(f"{mp_}: 'classes' must be a non-empty list of names, got {classes!r}")
        frames = check_index(f"{mp_}: 'frames'", self.meta.get("frames"), DatasetError, lo=1)
        self.nodes: list[str] = list(frame_names(frames))
        if self.meta.get("nodes") != self.nodes:
            raise DatasetError(f"{mp_}: 'nodes' {self.meta.get('nodes')!r} do not match frames = {frames} "
                               f"(expected {self.nodes})")
        info, d = self._open_split(split)
        self.classes: list[str] = classes
        self.frames: int = frames
        self._map_arrays(d, ACTIVITY_ARRAYS, self.frames)
        self.labels: np.ndarray = self.label
        self.subjects: np.ndarray = self.subject
        lo, hi = int(self.label.min()), int(self.label.max())
        if lo < 0 or hi >= len(self.classes):
            raise DatasetError(f"{d / 'label.npy'}: labels in [{lo}, {hi}] but meta.json has "
                               f"{len(self.classes)} classes")
        ids = info.get("subjects")
        self.subject_ids: list[int] = sorted(int(s) for s in (np.unique(self.subject) if ids is None else ids))

    def __repr__(self) -> str:
        return (f"ActivityDataset({str(self.root)!r}, {self.split!r}, n={self._n}, frames={self.frames}, "
                f"classes={len(self.classes)})")


def _checked(stem: str, arr: Any, n: int, frames: int, what: str) -> np.ndarray:
    """``arr`` if it holds ``n`` windows of ``frames`` storage frames of ``stem`` (ValueError otherwise)."""
    a = np.asarray(arr)
    dtype = np.dtype(ACTIVITY_ARRAYS[stem][0])
    frame_shape = array_shape(stem, n, frames, ACTIVITY_ARRAYS)[2:]
    if a.dtype != dtype or a.shape[2:] != frame_shape:
        raise ValueError(f"{what}: {stem} must be {dtype} [N, F, {', '.join(map(str, frame_shape))}] "
                         f"storage windows (preprocess.to_storage), got {a.dtype} {a.shape}")
    if a.shape[:2] != (n, frames):
        raise ValueError(f"{what}: {stem} holds {a.shape[0]} windows of {a.shape[1]} frames, "
                         f"the labels {n} and the dataset {frames}")
    return np.ascontiguousarray(a)


class ActivityWriter:
    """Create an activity dataset (docs/DATASET.md) from windows added per split into files preallocated
    for at most ``sizes[split]`` windows; an exception in a ``with`` block aborts (removes all)."""

    def __init__(self, root: str | Path, classes: Sequence[str], frames: int, rate_hz: float, source: str,
                 sizes: Mapping[str, int], extra_meta: Mapping[str, Any] | None = None, overwrite: bool = False, *,
                 seed: int | None = None) -> None:
        self.root = Path(root)
        self.classes = [str(c) for c in classes]
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be non-empty and unique, got {list(classes)!r}")
        self.frames = len(frame_names(frames))
        self.rate_hz = check_rate(rate_hz)
        self.source = source
        self.seed = seed
        self.extra_meta: dict[str, Any] = dict(extra_meta or {})
        self._created_root = not self.root.exists()
        clear_dataset(self.root, overwrite)
        self._closed = False
        self._n = {s: 0 for s in SPLITS}
        self._subjects: dict[str, set[int]] = {s: set() for s in SPLITS}
        self._counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
        self._sizes = {s: int(sizes.get(s, 0)) for s in SPLITS}
        self._mm = {s: create_arrays(self.root / s, n, self.frames, arrays=ACTIVITY_ARRAYS)
                    for s, n in self._sizes.items()}

    def add(self, split: str, rgb: Any, depth: Any, radar: Any, label: Any, subject: Any, t: Any) -> int:
        """Append windows ``[N, F, ...]`` (``preprocess.to_storage`` frames) with ``N`` labels,
        subjects and times to ``split``; returns ``N``. ValueError for bad shapes, labels, subjects
        or times, or more windows than ``sizes``."""
        if self._closed:
            raise ValueError(f"{self.root}: writer is closed")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {list(SPLITS)}")
        lab = np.asarray(label)
        n = len(lab)
        what = f"{self.root} split {split!r}"
        if not np.issubdtype(lab.dtype, np.integer) or (n and (lab.min() < 0 or lab.max() >= len(self.classes))):
            raise ValueError(f"{what}: labels must be integers in [0, {len(self.classes)}), got {lab.tolist()[:8]}")
        sub, tt = np.asarray(subject), np.asarray(t, np.float64)
        if sub.shape != (n,) or tt.shape != (n,):
            raise ValueError(f"{what}: label, subject and t must have the same length ({n}), "
                             f"got {sub.shape} and {tt.shape}")
        if not np.issubdtype(sub.dtype, np.integer) or (n and (sub.min() < 0 or sub.max() > np.iinfo(np.int32).max)):
            raise ValueError(f"{what}: subject ids must be non-negative int32 integers, got {sub.tolist()[:8]}")
        if not np.isfinite(tt).all():
            raise ValueError(f"{what}: window times must be finite")
        arrays = {stem: _checked(stem, a, n, self.frames, what)
                  for stem, a in (("rgb", rgb), ("depth", depth), ("radar", radar))}
        arrays.update(label=lab.astype(np.int64), subject=sub.astype(np.int32), t=tt.astype(np.float32))
        i0 = self._n[split]
        if i0 + n > self._sizes[split]:
            raise ValueError(f"{what}: {i0 + n} windows exceed the preallocated size {self._sizes[split]}")
        for stem, a in arrays.items():
            self._mm[split][stem][i0:i0 + n] = a
        self._n[split] = i0 + n
        self._subjects[split].update(int(x) for x in np.unique(arrays["subject"]))
        self._counts[split].update(int(x) for x in arrays["label"])
        return n

    def meta(self) -> dict[str, Any]:
        return {
            **meta_head(StreamSet(frame_names(self.frames), MODALITY_NAMES),
                        (ACTIVITY_FORMAT, ACTIVITY_FORMAT_VERSION)),
            "task": "activity", "source": self.source, "classes": list(self.classes), "n_classes": len(self.classes),
            "frames": self.frames, "rate_hz": self.rate_hz, "sensor_node": SENSOR_NODE, "seed": self.seed,
            "splits": {s: {"n_samples": self._n[s], "subjects": sorted(self._subjects[s]),
                           "class_counts": [int(self._counts[s].get(k, 0)) for k in range(len(self.classes))]}
                       for s in SPLITS},
            "arrays": {stem: {"dtype": dt, "shape": list(shape), "doc": doc}
                       for stem, (dt, shape, doc) in ACTIVITY_ARRAYS.items()},
            **self.extra_meta,
        }

    def close(self) -> dict[str, Any]:
        """Trim every split's arrays to the windows added, then write ``meta.json``; returns the meta."""
        if self._closed:
            raise ValueError(f"{self.root}: writer already closed")
        for s, arrays in self._mm.items():
            for stem, a in arrays.items():
                a.flush()
                if self._n[s] < self._sizes[s]:
                    truncate_npy(self.root / s / f"{stem}.npy", self._n[s])
        self._mm.clear()
        meta = self.meta()
        tmp = self.root / ".meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.root / "meta.json")
        self._closed = True
        return meta

    def abort(self) -> None:
        """Remove everything written; the writer is closed."""
        self._mm.clear()
        clear_dataset(self.root, overwrite=True)
        (self.root / ".meta.json.tmp").unlink(missing_ok=True)
        if self._created_root:
            with suppress(OSError):
                self.root.rmdir()
        self._closed = True

    def __enter__(self) -> "ActivityWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def plan_subject_splits(n_subjects: int, val_subjects: int, test_subjects: int, seed: int) -> dict[str, list[int]]:
    """Subject ids ``0 .. n_subjects-1`` assigned to splits by a seeded permutation (sorted lists)."""
    for name, v in (("n_subjects", n_subjects), ("val_subjects", val_subjects), ("test_subjects", test_subjects)):
        check_index(name, v)
    if n_subjects - val_subjects - test_subjects < 1:
        raise ValueError(f"{n_subjects} subjects leave none for train after {val_subjects} val and "
                         f"{test_subjects} test subjects")
    return split_permutation(int(n_subjects), val_subjects, test_subjects, [int(seed), 0xAC71])


def window_rng(seed: int, subject_id: int, activity: int, window: int) -> np.random.Generator:
    """The generator of one window: its start time, then its sensor noise."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(subject_id), int(activity), int(window),
                                                         0x3D]))


@lru_cache(maxsize=4)
def _renderer(seed: int, subject_id: int, width: int, height: int) -> ActivityRenderer:
    return ActivityRenderer(draw_subject(seed, subject_id), width, height)


def _render_windows(task: tuple[int, int], seed: int, windows: int, frames: int, rate_hz: float, width: int,
                    height: int) -> tuple[tuple[int, int], dict[str, np.ndarray], float]:
    """Render the windows of one ``task = (subject id, activity index)`` into storage arrays."""
    t0 = time.perf_counter()
    subject_id, activity = task
    r = _renderer(seed, subject_id, width, height)
    out = {stem: np.empty(array_shape(stem, windows, frames, ACTIVITY_ARRAYS), ACTIVITY_ARRAYS[stem][0])
           for stem in (*MODALITY_NAMES, "t")}
    for w in range(windows):
        rng = window_rng(seed, subject_id, activity, w)
        start = float(rng.uniform(0.0, MAX_START_S))
        win = render_window(r, ACTIVITIES[activity], start, frames, rate_hz, rng)
        for m in MODALITY_NAMES:
            out[m][w] = [to_storage(m, frame) for frame in win[m]]
        out["t"][w] = start
    return task, out, time.perf_counter() - t0


def generate_activity_dataset(out: str | Path, n_subjects: int = 40, val_subjects: int = 5, test_subjects: int = 5,
                              windows_per_activity: int = 20, frames: int = 5, rate_hz: float = 10.0, seed: int = 0,
                              workers: int = 2, progress: bool = True, overwrite: bool = False, *,
                              width: int = 160, height: int = 120) -> Path:
    """Render a simulated MM-Fi-style activity dataset into ``out`` (docs/DATASET.md): the arrays
    depend only on the arguments, not on ``workers``."""
    for name, v, lo in (("windows_per_activity", windows_per_activity, 1), ("workers", workers, 0), ("seed", seed, 0)):
        check_index(name, v, lo=lo)
    plan = plan_subject_splits(n_subjects, val_subjects, test_subjects, seed)
    n_act = len(ACTIVITIES)
    sizes = {s: len(plan[s]) * n_act * windows_per_activity for s in SPLITS}
    total = sum(sizes.values())
    out = Path(out)
    extra = {
        "description": "Simulated MM-Fi-style activity windows (admn_ros.core.sim.activity): one subject per "
                       "recording in front of node1 (rgb, depth, range-Doppler radar), clean frames "
                       "preprocessed with admn_ros.core.preprocess.to_storage. Splits are by subject.",
        "generator": {"n_subjects": n_subjects, "val_subjects": val_subjects, "test_subjects": test_subjects,
                      "windows_per_activity": windows_per_activity, "frames": frames, "rate_hz": rate_hz,
                      "seed": seed, "width": width, "height": height, "max_start_s": MAX_START_S},
        "sensor": {"height_m": SENSOR_HEIGHT_M, "camera": {"width": width, "height": height,
                                                           "vfov_deg": CAMERA_VFOV_DEG},
                   "radar_axes": {"rows": f"slant range [i, i+1) * {RANGE_RES_M} m, row 0 nearest (0..6 m)",
                                  "cols": f"radial velocity -3 + [j, j+1) * {DOPPLER_RES_MPS} m/s, "
                                          "positive = moving away; zero Doppler between columns 31 and 32"}},
        "subjects": {str(sid): draw_subject(seed, sid).to_dict() for sid in range(n_subjects)},
    }
    tasks = [(sid, activity_index(a)) for s in SPLITS for sid in plan[s] for a in ACTIVITIES]
    render = partial(_render_windows, seed=int(seed), windows=int(windows_per_activity), frames=int(frames),
                     rate_hz=float(rate_hz), width=int(width), height=int(height))
    split_of = {sid: s for s in SPLITS for sid in plan[s]}
    n = windows_per_activity
    with ActivityWriter(out, list(ACTIVITIES), frames, rate_hz, "sim", sizes, extra, overwrite, seed=seed) as writer:
        with WorkerPool(render, tasks, workers, progress=progress, total=total, unit="window",
                        desc=f"activity -> {out}") as pool:
            for (sid, act), arr, sec in pool:   # in task order: deterministic layout
                writer.add(split_of[sid], **arr, label=np.full(n, act, np.int64), subject=np.full(n, sid, np.int32))
                pool.advance(n, sec)
        summary = pool.summary(out, total)
        elapsed, nbytes = summary["elapsed_s"], summary["bytes"]
        summary["bytes_per_window"] = round(summary["total_bytes"] / max(total, 1), 1)
        writer.extra_meta["generation"] = summary
        writer.close()
    if progress:
        counts = ", ".join(f"{s}: {sizes[s]} windows of {len(plan[s])} subjects" for s in SPLITS)
        per = ", ".join(f"{s} {fmt_bytes(nbytes[s])}" for s in SPLITS)
        print(f"[activity] {total} windows of {frames} frames at {rate_hz:g} Hz, {n_act} activities ({counts})\n"
              f"[activity] {elapsed:.1f} s with {workers} worker(s) = {summary['samples_per_s']:.1f} windows/s; "
              f"on disk {fmt_bytes(summary['total_bytes'])} ({per}; "
              f"{fmt_bytes(summary['bytes_per_window'])} per window) in {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="admn-ros dataset --task activity",
                                 description="Render the simulated MM-Fi-style activity dataset (docs/DATASET.md).")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--subjects", type=int, default=40, help="simulated subjects (ids 0..N-1; default 40)")
    ap.add_argument("--val-subjects", type=int, default=5, help="of them, subjects for val (default 5)")
    ap.add_argument("--test-subjects", type=int, default=5, help="of them, subjects for test (default 5)")
    ap.add_argument("--windows-per-activity", type=int, default=20, help="windows per (subject, activity) (default 20)")
    ap.add_argument("--frames", type=int, default=5, help="frames per window (default 5)")
    ap.add_argument("--rate-hz", type=float, default=10.0, help="frame rate (default 10)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the subjects, windows and split (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes (default 2; 0 or 1: this process)")
    ap.add_argument("--width", type=int, default=160, help="camera width in pixels before subsampling to 64x64 "
                    "(default 160)")
    ap.add_argument("--height", type=int, default=120, help="camera height in pixels (default 120)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    a = ap.parse_args(argv)
    return cli_exit_code(lambda: generate_activity_dataset(
        a.out, a.subjects, a.val_subjects, a.test_subjects, a.windows_per_activity, a.frames, a.rate_hz, a.seed,
        a.workers, not a.quiet, a.overwrite, width=a.width, height=a.height))
