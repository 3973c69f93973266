"""``admn-ros dataset --from-bag``: a tracking dataset from your own recordings (which frames are kept and how
splits are cut: docs/OWN_ROBOT.md)."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from admn_ros.core.data.generate import plan_splits
from admn_ros.core.data.simdata import ARRAYS, SPLITS, array_shape, arrays_meta, create_arrays, meta_head
from admn_ros.core.preprocess import to_storage
from admn_ros.core.streams import MODALITY_NAMES, StreamSet, split_stream_id

#: Why a frame was not kept, in the order they are checked.
REASONS = ("bad message", "missing stream", "no ground truth", "split gap")


class _Reading:
    """The kept frames of all bags, appended to raw files in ``work`` (one per stored array)."""

    def __init__(self, work: Path, nodes: Sequence[str]) -> None:
        self.nodes, self.work = nodes, work
        self.files = {m: open(work / f"{m}.bin", "ab") for m in MODALITY_NAMES}  # noqa: SIM115 - closed in arrays()
        self.kept: list[tuple[int, int, np.ndarray]] = []  # (bag, stamp_ns, gt_xy) of each stored frame
        self.present: set[str] = set()

    def add(self, b: int, frame: Any) -> tuple[str, list[str]] | None:
        """Store ``frame`` of bag ``b``, or return why it cannot be (``("bad message", ["node1/rgb"])``)."""
        out = {m: np.zeros(array_shape(m, 1, len(self.nodes))[1:], ARRAYS[m][0]) for m in MODALITY_NAMES}
        for sid, data in frame.streams.items():
            if data is None:
                continue
            node, mod = sid.split("/")
            try:
                out[mod][self.nodes.index(node)] = to_storage(mod, data)
            except ValueError:
                return "bad message", [sid]
        for m, a in out.items():
            self.files[m].write(a.tobytes())
        self.present.update(s for s, d in frame.streams.items() if d is not None)
        self.kept.append((b, frame.stamp_ns, frame.gt_xy))
        return None

    def arrays(self) -> dict[str, np.ndarray]:
        for f in self.files.values():
            f.close()
        n = len(self.kept)  # > 0: a build without kept frames stops before
        return {m: np.memmap(self.work / f"{m}.bin", ARRAYS[m][0], "r", shape=array_shape(m, n, len(self.nodes)))
                for m in MODALITY_NAMES}


def _skip_reason(frame: Any, required: Sequence[str]) -> tuple[str, list[str]] | None:
    """Why ``frame`` is not kept (a reason of :data:`REASONS` and the streams it names), or None."""
    if frame.bad:
        return "bad message", sorted(frame.bad)
    if missing := [s for s in required if frame.streams.get(s) is None]:
        return "missing stream", missing
    return None if frame.gt_xy is not None else ("no ground truth", [])


def assign_splits(bag: np.ndarray, stamp_ns: np.ndarray, segment_s: float, gap_s: float, val_frac: float,
                  test_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Segment id and split of every sample (``bag``, ``stamp_ns`` in time order per bag);
    split ``""`` = dropped for the gap. Returns ``(segment, split, segment_split)``."""
    seg_ns, gap_ns = int(round(segment_s * 1e9)), int(round(gap_s * 1e9))
    local = np.zeros(len(bag), np.int64)
    for b in np.unique(bag):
        i = bag == b
        local[i] = (stamp_ns[i] - stamp_ns[i].min()) // seg_ns
    _, segment = np.unique(np.stack([bag, local], 1), axis=0, return_inverse=True)
    segment = segment.reshape(-1)
    n_seg = int(segment.max()) + 1 if len(segment) else 0
    try:
        plan = plan_splits(max(n_seg, 1), 1, val_frac, test_frac, seed)
    except ValueError:
        raise ValueError(f"{n_seg} segment(s) of {segment_s:g} s: too few for train + val + test with "
                         f"--val-frac {val_frac:g} --test-frac {test_frac:g}; lower --segment") from None
    seg_split = [""] * n_seg
    for s in SPLITS:
        for e, _ in plan[s]:
            seg_split[e] = s
    split = np.array([seg_split[k] for k in segment], dtype=object)
    last: dict[int, tuple[int, str]] = {}
    for i in range(len(bag)):
        prev = last.get(int(bag[i]))
        if prev is not None and prev[1] != split[i] and stamp_ns[i] - prev[0] < gap_ns:
            split[i] = ""
        else:
            last[int(bag[i])] = (int(stamp_ns[i]), split[i])
    return segment, split, seg_split


def build_dataset(bags: Sequence[str | Path], mapping: Any, out: str | Path, *, segment_s: float = 10.0,
                  gap_s: float = 1.0, val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0,
                  overwrite: bool = False, progress: bool = True,
                  log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Build a tracking dataset in ``out`` from ``bags``; returns the report (also
    ``meta.json["from_bag"]``). An error leaves ``out`` as it was."""
    from admn_ros.bags.mapping import load_mapping
    from admn_ros.bags.reader import BagFrames

    say = log or (lambda _m: None)
    if not bags:
        raise ValueError("no bags given (--from-bag BAG [BAG ...])")
    resolved = [Path(b).resolve() for b in bags]
    if twice := [b for b, r in zip(bags, resolved) if resolved.count(r) > 1]:
        raise ValueError(f"bag {twice[0]} is given twice; its frames would be in more than one split")
    if not 0 <= gap_s < segment_s:
        raise ValueError(f"--gap must be >= 0 and shorter than --segment ({segment_s:g} s), got {gap_s:g}")
    m = load_mapping(mapping)
    if not m.ground_truth:
        raise ValueError(f"{m.source}: ground_truth: the mapping names no ground-truth topic; a dataset "
                         f"needs positions (PointStamped, PoseStamped, Odometry, tf ...)")
    pairs = [split_stream_id(s) for s in m.stream_ids]
    grid = StreamSet(tuple(dict.fromkeys(n for n, _ in pairs)),                            # mapping order
                     tuple(x for x in MODALITY_NAMES if any(mod == x for _, mod in pairs)))  # rgb, depth, radar order
    required = [s.stream_id for s in m.streams if not s.optional]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
        if not (out / "meta.json").is_file():  # --overwrite replaces a dataset, never other files
            raise FileExistsError(f"{out} is not empty and holds no dataset (no meta.json); choose another --out")
    work = out.with_name(f".{out.name}.partial")  # the new dataset, moved to out once complete
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        (work / ".frames").mkdir()
        rd = _Reading(work / ".frames", grid.nodes)
        report: list[dict[str, Any]] = []
        for b, path in enumerate(bags):
            skipped: Counter = Counter()
            detail: Counter = Counter()
            n = 0
            with BagFrames(path, m, progress=progress) as bf:
                if bf.ground_truth_kind != "position":
                    raise ValueError(f"bag {path}: no position ground truth on {m.ground_truth!r} (mapping "
                                     f"{m.source}); the bag has: " + ", ".join(c.topic for c in bf.contents))
                for f in bf:
                    n += 1
                    if why := _skip_reason(f, required) or rd.add(b, f):
                        reason, streams = why
                        skipped[reason] += 1
                        detail.update(f"{reason}: {s}" for s in streams)
            report.append({"bag": str(path), "frames": n, "kept": n - sum(skipped.values()),
                           "skipped": {r: skipped[r] for r in REASONS if skipped[r]}, "skipped_streams": dict(detail)})
            say(f"[dataset] {path}: {n} frames, {report[-1]['kept']} with their streams and ground truth"
                + _skips(report[-1]))
        if not rd.kept:
            raise ValueError(f"no frame of {len(bags)} bag(s) has every required stream and ground truth: "
                             + "; ".join(r["bag"] + _skips(r) for r in report))
        arr = rd.arrays()
        kept_bag, kept_stamp, kept_gt = zip(*rd.kept)
        bag, stamp = np.asarray(kept_bag, np.int64), np.asarray(kept_stamp, np.int64)
        gt = np.asarray(kept_gt, np.float32).reshape(-1, 2)
        order = np.lexsort((stamp, bag))
        segment, split, seg_split = assign_splits(bag[order], stamp[order], segment_s, gap_s, val_frac,
                                                  test_frac, seed)
        info: dict[str, Any] = {}
        for s in SPLITS:
            info[s] = _write_split(work / s, arr, order[split == s], gt, stamp, segment[split == s], len(grid.nodes))
            if info[s]["n_samples"] == 0 and (s == "train" or {"val": val_frac, "test": test_frac}[s] > 0):
                raise ValueError(f"split {s} has no frames after cutting {len(seg_split)} segment(s) with a "
                                 f"{gap_s:g} s gap; record longer or lower --segment / --gap")
        for b, r in enumerate(report):
            in_bag = bag[order] == b
            r["splits"] = {s: int((split[in_bag] == s).sum()) for s in SPLITS}
            if gap := int((split[in_bag] == "").sum()):
                r["skipped"]["split gap"] = gap
                r["kept"] -= gap
        del arr
        shutil.rmtree(work / ".frames")
        kept = gt[order[split != ""]]
        dt = np.diff(stamp[order])[np.diff(bag[order]) == 0]
        summary = {"bags": report, "segment_s": segment_s, "gap_s": gap_s, "val_frac": val_frac,
                   "test_frac": test_frac, "seed": seed, "n_segments": len(seg_split),
                   "segment_splits": seg_split, "elapsed_s": round(time.perf_counter() - t0, 3)}
        arrays = arrays_meta(gt=f"ground truth ({', '.join(m.gt_axes)}) of {m.ground_truth}, metres",
                             episode="time segment of a bag (see from_bag.segment_splits)",
                             t="seconds since the first sample of the segment",
                             visibility="unknown for recordings: NaN")
        arrays["stamp_ns.npy"] = {"dtype": "int64", "shape": ["N"], "description": "frame stamp in the bag, ns"}
        meta = {**meta_head(grid), "source": "rosbag",
                "description": "Synchronised frames of rosbags (admn-ros dataset --from-bag), preprocessed with "
                               "preprocess.to_storage; splits are disjoint time segments of the bags.",
                "rate_hz": round(1e9 / float(np.median(dt)), 3) if dt.size else None,
                "seed": seed, "mapping": {"source": m.source, **m.to_dict()},
                "absent_streams": [s for s in grid.ids if s not in rd.present],
                "bounds": [[float(kept[:, i].min()), float(kept[:, i].max())] for i in (0, 1)],
                "splits": info, "arrays": arrays, "from_bag": summary}
        (work / "meta.json").write_text(json.dumps(meta, indent=2))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    say(summary_text(meta))
    return summary


def _write_split(d: Path, arr: dict[str, np.ndarray], idx: np.ndarray, gt: np.ndarray, stamp: np.ndarray,
                 seg: np.ndarray, n_nodes: int) -> dict[str, Any]:
    """Write the split of the samples ``idx`` (segments ``seg``) into ``d``; returns its ``meta.json`` entry."""
    n = len(idx)
    first = {int(k): int(stamp[idx][seg == k].min()) for k in np.unique(seg)}
    t = np.array([(stamp[i] - first[int(k)]) * 1e-9 for i, k in zip(idx, seg)]).reshape(n)
    dst = create_arrays(d, n, n_nodes)
    for k, v in {"gt": gt[idx], "episode": seg, "t": t, "visibility": np.nan}.items():
        dst[k][...] = v
    for k in MODALITY_NAMES:
        for i in range(0, n, 512):
            dst[k][i:i + 512] = arr[k][idx[i:i + 512]]
    for a in dst.values():
        a.flush()
    np.save(d / "stamp_ns.npy", stamp[idx])
    return {"n_samples": n, "episodes": sorted(first), "episode_frames": [int((seg == k).sum()) for k in sorted(first)]}


def _skips(r: dict[str, Any]) -> str:
    if not r["skipped"]:
        return ", skipped none"
    parts = []
    for reason, n in r["skipped"].items():
        streams = [f"{k.split(': ')[1]} {v}" for k, v in r["skipped_streams"].items() if k.startswith(reason + ":")]
        parts.append(f"{reason} {n}" + (f" ({', '.join(streams)})" if streams else ""))
    return ", skipped " + "; ".join(parts)


def summary_text(meta: dict[str, Any]) -> str:
    """The readable end-of-run summary: per bag kept / per split / skipped by reason, then totals."""
    fb = meta["from_bag"]
    rows = [f"[dataset] {len(fb['bags'])} bag(s) -> {fb['n_segments']} segment(s) of {fb['segment_s']:g} s "
            f"(gap {fb['gap_s']:g} s) in {fb['elapsed_s']:.1f} s"]
    w = max(len(Path(r["bag"]).name) for r in fb["bags"])
    for r in fb["bags"]:
        sp = " / ".join(str(r["splits"][s]) for s in SPLITS)
        rows.append(f"  {Path(r['bag']).name:<{w}}  frames {r['frames']:>6}  kept {r['kept']:>6} "
                    f"(train/val/test {sp})" + _skips(r))
    tot = {s: meta["splits"][s]["n_samples"] for s in SPLITS}
    rows.append(f"  total: {sum(tot.values())} samples (" + ", ".join(f"{s} {n}" for s, n in tot.items())
                + f"), nodes {meta['nodes']}, modalities {meta['modalities']}")
    if meta["absent_streams"]:
        rows.append(f"  never in the bags, stored as zeros: {', '.join(meta['absent_streams'])}")
    return "\n".join(rows)


def dataset_main(argv: Sequence[str]) -> int:
    """``admn-ros dataset``: ``--from-bag`` builds from bags, anything else goes to the simulated
    generators (:func:`admn_ros.core.data.__main__.dataset_main`)."""
    if not any(a.startswith("--from-bag") for a in argv):
        if "-h" in argv or "--help" in argv:
            print("admn-ros dataset --from-bag BAG [BAG ...] --mapping FILE --out DIR: build a dataset from your "
                  "recordings\n(admn-ros dataset --from-bag --help for its options)\n")
        from admn_ros.core.data.__main__ import dataset_main as generate_main

        return generate_main(argv)
    p = argparse.ArgumentParser(prog="admn-ros dataset --from-bag",
                                description="Build a tracking dataset (docs/DATASET.md) from recorded bags and a "
                                            "topic mapping; splits are disjoint time segments (docs/OWN_ROBOT.md).")
    p.add_argument("--from-bag", nargs="*", default=[], metavar="BAG",
                   help="rosbag2 directories, .db3 / .mcap files or ROS 1 .bag files")
    p.add_argument("--mapping", default="default",
                   help="topic mapping: a YAML file or a shipped name (default, realsense_zed); the same as "
                        "replay's (default: default)")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--segment", type=float, default=10.0, help="seconds per contiguous segment (default 10)")
    p.add_argument("--gap", type=float, default=1.0, help="seconds dropped between segments of different splits "
                   "(default 1)")
    p.add_argument("--val-frac", type=float, default=0.1, help="share of segments for val (default 0.1)")
    p.add_argument("--test-frac", type=float, default=0.1, help="share of segments for test (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the segment -> split assignment (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    a = p.parse_args(argv)
    try:
        build_dataset(a.from_bag, a.mapping, a.out, segment_s=a.segment, gap_s=a.gap, val_frac=a.val_frac,
                      test_frac=a.test_frac, seed=a.seed, overwrite=a.overwrite, progress=not a.quiet,
                      log=None if a.quiet else print)
    except (ValueError, RuntimeError, OSError) as e:  # a MappingError is a ValueError, a BagError a RuntimeError
        print(f"admn-ros dataset: error: {e}", file=sys.stderr)
        return 2
    return 0
