"""``admn-ros convert-gdtm``: the released, preprocessed GDTM dataset (nesl/GDTM, HDF5) into our
dataset format. Every node's streams are matched to the mocap stamps, stored like
:func:`admn_ros.core.preprocess.to_storage`, every dropped frame counted by reason (docs/GDTM.md).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from admn_ros.core.data.simdata import SPLITS, DatasetError, arrays_meta, create_arrays, meta_head
from admn_ros.core.data.tools import (clear_dataset, cli_exit_code, progress_bar, splits_removed_on_error,
                                      truncate_npy)
from admn_ros.core.preprocess import MODEL_INPUT, subsample, to_storage
from admn_ros.core.streams import DEFAULT_NODES as NODES, DEPTH_MAX_M, MODALITY_NAMES as MODALITIES, StreamSet

if TYPE_CHECKING:  # pragma: no cover
    import h5py

#: Our modality -> source option -> (HDF5 file in the node directory, dataset key).
SOURCES: dict[str, dict[str, tuple[str, str]]] = {
    "rgb": {"zed": ("zed.hdf5", "zed_camera_left"), "realsense": ("realsense.hdf5", "realsense_camera_img")},
    "depth": {"zed": ("zed.hdf5", "zed_camera_depth"), "realsense": ("realsense.hdf5", "realsense_camera_depth")},
    "radar": {"azimuth": ("mmwave.hdf5", "azimuth_static"), "range_doppler": ("mmwave.hdf5", "range_doppler")},
}
MOCAP_FILE: str = "mocap.hdf5"
MOCAP_KEY: str = "mocap"
#: Frame period of the authors' alignment (``pd.date_range(..., freq='66ms')``), ms.
FRAME_MS: int = 66
#: Radar transform per source: ``db`` = 20 log10(magnitude) (azimuth_static is |FFT|),
#: ``identity`` (range_doppler is already logarithmic: TI's log-magnitude output).
RADAR_TRANSFORMS: dict[str, str] = {"azimuth": "db", "range_doppler": "identity"}
#: Percentiles of the calibration values mapped to 0 and 1.
RADAR_PERCENTILES: tuple[float, float] = (1.0, 99.9)
#: Kept training samples (evenly spaced) whose radar frames give the percentiles.
RADAR_CALIBRATION_FRAMES: int = 200
_AXES = {"x": 0, "y": 1, "z": 2}
_DB_FLOOR = 1e-6


class GDTMError(DatasetError):
    """A GDTM source that cannot be converted; names the file and HDF5 key (:attr:`path`, :attr:`key`)."""


def _err(path: str | Path, key: str | None, msg: str) -> GDTMError:
    return GDTMError(f"{path}" + (f": key {key!r}" if key else "") + f": {msg}", path, key)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("reading GDTM needs h5py: pip install 'h5py==3.16.0'") from exc
    return h5py


def _open_h5(path: Path) -> "h5py.File":
    try:
        return _h5py().File(path, "r")
    except OSError as exc:
        raise _err(path, None, f"not a readable HDF5 file ({exc})") from None


@dataclass(frozen=True)
class RadarNorm:
    """A radar frame -> ``clip((transform(frame) - lo) / (hi - lo), 0, 1)``, rows nearest-first,
    non-finite values (outside the azimuth field of view) 0."""

    kind: str
    lo: float
    hi: float

    @property
    def transform(self) -> str:
        return RADAR_TRANSFORMS[self.kind]

    def values(self, frame: np.ndarray, size: int | None = None) -> np.ndarray:
        """Transformed float64 values (rows nearest-first; ``size`` subsamples first), NaN where not finite."""
        a = np.asarray(frame)
        a = a[::-1] if self.kind == "azimuth" else a  # stored zi[::-1, ::-1]: row 0 = far end
        a = np.asarray(a if size is None else subsample(a, size), dtype=np.float64)
        bad = ~np.isfinite(a)
        if self.transform == "db":
            a = 20.0 * np.log10(np.maximum(np.abs(np.where(bad, 1.0, a)), _DB_FLOOR))
        return np.where(bad, np.nan, a)

    def apply(self, frame: np.ndarray, size: int | None = None) -> np.ndarray:
        """Float32 heatmap in [0, 1]; ``size`` subsamples first (the same as ``to_storage`` after, but faster)."""
        x = (self.values(frame, size) - self.lo) / (self.hi - self.lo)
        return np.clip(np.where(np.isfinite(x), x, 0.0), 0.0, 1.0).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source_key": SOURCES["radar"][self.kind][1], "transform": self.transform,
                "lo": self.lo, "hi": self.hi}


@dataclass(frozen=True)
class _Stream:
    node: str
    modality: str
    path: Path
    group: str  # node group inside the file, e.g. "node_1"
    key: str    # dataset name, e.g. "zed_camera_left"

    @property
    def sid(self) -> str:
        return f"{self.node}/{self.modality}"

    def h5key(self, stamp: int) -> str:
        return f"/{stamp}/{self.group}/{self.key}"


@dataclass
class _Plan:
    """The alignment of one split, before any sensor data is decoded."""
    split: str
    src_dir: Path
    mocap_path: Path
    n_mocap: int
    stamps: np.ndarray                     # int64 [n] kept mocap stamps (ms)
    gt: np.ndarray                         # float32 [n, 2]
    pose_ids: np.ndarray                   # int32 [n] index into the dataset-wide pose sets (-1: none yet)
    streams: list[_Stream]
    match: dict[str, np.ndarray]           # sid -> int64 [n] matched source stamps
    dropped: Counter = field(default_factory=Counter)
    missing_per_stream: Counter = field(default_factory=Counter)
    inexact: Counter = field(default_factory=Counter)


def _node_spellings(node: str) -> list[str]:
    """``node_<k>`` (the authors' scripts) and ``node<k>`` (the GDTM-tracking README) of ``node<k>``."""
    return [node.replace("node", "node_"), node]


def _resolve_splits(src: Path, splits: Sequence[str] | Mapping[str, str]) -> dict[str, Path]:
    items = list(splits.items()) if isinstance(splits, Mapping) else [(s, s) for s in splits]
    if not items:
        raise ValueError("no splits to convert")
    out: dict[str, Path] = {}
    for name, sub in items:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; our splits are {list(SPLITS)}")
        if name in out:
            raise ValueError(f"split {name!r} given twice")
        d = src if str(sub) in ("", ".") else src / str(sub)
        if not d.is_dir():
            have = sorted(p.name for p in src.iterdir()) if src.is_dir() else []
            hint = (" (it holds mocap.hdf5 itself: a single chunk; map it with --splits train=.)"
                    if (src / MOCAP_FILE).is_file() else "")
            raise FileNotFoundError(f"GDTM split directory not found: {d}; expected "
                                    f"<src>/<split>/{MOCAP_FILE} and <src>/<split>/node_<k>/*.hdf5; "
                                    f"{src} contains {have}{hint}")
        out[name] = d
    return out


def _node_file(split_dir: Path, node: str, fname: str) -> Path:
    """``<split>/node_<k>/<fname>`` (or ``node<k>``); FileNotFoundError naming what exists."""
    for d in _node_spellings(node):
        if (split_dir / d).is_dir():
            p = split_dir / d / fname
            if not p.is_file():
                have = sorted(x.name for x in (split_dir / d).iterdir())
                raise FileNotFoundError(f"GDTM file not found: {p} (needed for {node}; "
                                        f"{split_dir / d} contains {have})")
            return p
    have = sorted(x.name for x in split_dir.iterdir())
    raise FileNotFoundError(f"GDTM node directory not found: {split_dir}/{_node_spellings(node)[0]} "
                            f"(or {_node_spellings(node)[1]}) for {node}; {split_dir} contains {have}")


def _parse_stamp(path: Path, name: str) -> int:
    try:
        return int(name)
    except ValueError:
        raise _err(path, f"/{name}", "top-level group is not a millisecond timestamp; "
                                     "not a GDTM preprocessed file?") from None


def _index_node_file(path: Path, group: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """One pass over a node file: per dataset key, the sorted stamps whose ``group`` holds it."""
    h5py = _h5py()
    found: dict[str, list[int]] = {k: [] for k in keys}
    n_groups = 0
    name = ""
    with _open_h5(path) as f:
        try:
            for name in f.keys():
                stamp = _parse_stamp(path, name)
                g = f[name]
                if not isinstance(g, h5py.Group):
                    raise _err(path, f"/{name}", "expected a timestamp group, found a dataset")
                n_groups += 1
                sub = g.get(group)
                for k in keys if sub is not None else ():
                    if k in sub:
                        found[k].append(stamp)
        except GDTMError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise _err(path, f"/{name}", f"cannot read the file's structure ({exc})") from None
    if n_groups == 0:
        raise _err(path, None, "has no timestamp groups (empty file)")
    for k in keys:
        if not found[k]:
            raise _err(path, None, f"no dataset {group}/{k} in any of its {n_groups} timestamp groups "
                                   "(modality missing, or a file of another node)")
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in found.items()}


def _nearest(stamps: np.ndarray, query: np.ndarray, tol_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Nearest ``stamps`` entry for every ``query`` value: (matched stamps, within-tolerance mask)."""
    i = np.searchsorted(stamps, query)
    lo = np.clip(i - 1, 0, len(stamps) - 1)
    hi = np.clip(i, 0, len(stamps) - 1)
    pick = np.where(np.abs(stamps[hi] - query) < np.abs(stamps[lo] - query), hi, lo)
    m = stamps[pick]
    return m, np.abs(m - query) <= tol_ms


def _read_scalar(f: "h5py.File", path: Path, key: str) -> Any:
    try:
        return f[key][()]
    except KeyError:
        raise _err(path, key, "dataset missing") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise _err(path, key, f"cannot read ({exc})") from None


def _parse_mocap(raw: Any, path: Path, key: str) -> list[dict[str, Any]]:
    if isinstance(raw, (bytes, np.bytes_)):
        raw = bytes(raw).decode("utf-8", errors="strict")
    if not isinstance(raw, str):
        raise _err(path, key, f"expected a JSON string, got {type(raw).__name__}")
    try:
        objs = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _err(path, key, f"invalid mocap JSON ({exc})") from None
    if not isinstance(objs, list) or not all(isinstance(o, dict) for o in objs):
        raise _err(path, key, "mocap JSON must be a list of objects")
    return objs


def _vec(o: Mapping[str, Any], name: str, n: int, path: Path, key: str) -> list[float]:
    v = o.get(name)
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise _err(path, key, f"mocap object {o.get('id')!r}: {name!r} must be a list of {n} numbers, got {v!r}")
    try:
        return [float(x) for x in v]
    except (TypeError, ValueError):
        raise _err(path, key, f"mocap object {o.get('id')!r}: {name!r} is not numeric: {v!r}") from None


def _pick_car(objs: list[dict[str, Any]], car_id: int | None, axes: tuple[int, int], path: Path,
              key: str) -> tuple[str, tuple[float, float] | None]:
    """(drop reason or "", car (a, b) position)."""
    cars = [o for o in objs if str(o.get("type")) != "node"]
    if car_id is not None:
        cars = [o for o in cars if o.get("id") == car_id]
    if not cars:
        return "no_car", None
    if len(cars) > 1:
        return "multiple_cars", None
    p = _vec(cars[0], "position", 3, path, key)
    if not all(math.isfinite(x) for x in p):
        return "car_position_nan", None
    return "", (p[axes[0]], p[axes[1]])


def _node_poses(objs: list[dict[str, Any]], path: Path, key: str) -> dict[str, dict[str, list[float]]]:
    """Node poses in a mocap frame: ``node<id+1>`` -> {"T": [x, y, z], "R": 9 values (row-major)}."""
    out: dict[str, dict[str, list[float]]] = {}
    for o in objs:
        if str(o.get("type")) != "node":
            continue
        nid = o.get("id")
        if not isinstance(nid, int):
            raise _err(path, key, f"node object without an integer id: {o!r}")
        out[f"node{nid + 1}"] = {"T": _vec(o, "position", 3, path, key), "R": _vec(o, "rotation", 9, path, key)}
    return out


def _pose_key(poses: Mapping[str, Mapping[str, list[float]]]) -> str:
    return json.dumps({n: {k: [round(x, 4) for x in v] for k, v in p.items()} for n, p in sorted(poses.items())},
                      sort_keys=True)


def _decode_jpeg(raw: Any, path: Path, key: str, gray: bool = False) -> np.ndarray:
    import cv2

    buf = np.asarray(raw)
    if buf.dtype != np.uint8:
        raise _err(path, key, f"expected JPEG bytes (uint8), got {buf.dtype} {buf.shape}")
    buf = buf.reshape(-1)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise _err(path, key, f"cannot decode the JPEG image ({buf.size} bytes)")
    return img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _depth_mm(raw: Any, path: Path, key: str) -> np.ndarray:
    """ZED depth -> uint16 mm (0 = invalid); float input is taken as millimetres."""
    a = _map_2d(raw, path, key, "depth map in millimetres")
    if a.dtype == np.uint16:
        return a
    ok = np.isfinite(a) & (a > 0)
    return np.clip(np.rint(np.where(ok, a, 0.0)), 0, 65535).astype(np.uint16)


def _map_2d(raw: Any, path: Path, key: str, what: str = "radar heatmap") -> np.ndarray:
    """``raw`` as a non-empty 2-D numeric array (GDTMError naming ``what`` otherwise)."""
    a = np.asarray(raw)
    if a.ndim != 2 or a.size == 0 or a.dtype.kind not in "fiu":
        raise _err(path, key, f"expected a 2-D numeric {what}, got {a.dtype} {a.shape}")
    return a


def _convert(st: _Stream, raw: Any, key: str, depth_src: str, radar: RadarNorm | None) -> np.ndarray:
    if st.modality == "rgb":
        return to_storage("rgb", _decode_jpeg(raw, st.path, key))
    if st.modality == "depth":
        if depth_src == "realsense":
            g = _decode_jpeg(raw, st.path, key, gray=True).astype(np.float64)
            mm = np.rint(g * (DEPTH_MAX_M * 1000.0 / 255.0)).astype(np.uint16)
            return to_storage("depth", mm)
        return to_storage("depth", _depth_mm(raw, st.path, key))
    assert radar is not None
    return to_storage("radar", radar.apply(_map_2d(raw, st.path, key), MODEL_INPUT))


def _plan_split(split: str, split_dir: Path, sources: Mapping[str, tuple[str, str]], tol_ms: float,
                radar_tol_ms: float, car_id: int | None, axes: tuple[int, int], limit: int, on_corrupt: str,
                pose_sets: dict[str, dict[str, Any]]) -> _Plan:
    """Index the split's files and align every stream to the mocap timestamps (new node poses: into ``pose_sets``)."""
    mocap_path = split_dir / MOCAP_FILE
    if not mocap_path.is_file():
        have = sorted(p.name for p in split_dir.iterdir())
        raise FileNotFoundError(f"GDTM file not found: {mocap_path} ({split_dir} contains {have})")
    streams = [_Stream(node, m, _node_file(split_dir, node, sources[m][0]), _node_spellings(node)[0], sources[m][1])
               for node in NODES for m in MODALITIES]
    index: dict[Path, dict[str, np.ndarray]] = {}  # file -> dataset key -> sorted stamps, one pass per file
    for p in dict.fromkeys(s.path for s in streams):
        in_p = [s for s in streams if s.path == p]
        index[p] = _index_node_file(p, in_p[0].group, list(dict.fromkeys(s.key for s in in_p)))

    dropped: Counter = Counter()
    stamps: list[int] = []
    gts: list[tuple[float, float]] = []
    pose_ids: list[int] = []
    with _open_h5(mocap_path) as f:
        try:
            names = list(f.keys())
        except (OSError, RuntimeError) as exc:
            raise _err(mocap_path, None, f"cannot list groups ({exc})") from None
        order = sorted((_parse_stamp(mocap_path, n), n) for n in names)[:limit if limit > 0 else None]
        n_mocap = len(order)
        if n_mocap == 0:
            raise GDTMError(f"split {split!r}: {mocap_path} has no timestamp groups: the split has no samples",
                            mocap_path)
        last_pose = -1
        for stamp, name in order:
            key = f"/{name}/{MOCAP_KEY}"
            try:  # a top-level dataset instead of a group reads as a missing key
                objs = _parse_mocap(_read_scalar(f, mocap_path, key), mocap_path, key)
                reason, pos = _pick_car(objs, car_id, axes, mocap_path, key)
                poses = _node_poses(objs, mocap_path, key)
            except GDTMError:
                if on_corrupt == "raise":
                    raise
                dropped["corrupt:mocap"] += 1
                continue
            if reason:
                dropped[reason] += 1
                continue
            if poses:
                pk = _pose_key({n: poses[n] for n in NODES if n in poses} or poses)
                if pk not in pose_sets:
                    pose_sets[pk] = {n: {"T": poses[n]["T"], "R": np.reshape(poses[n]["R"], (3, 3)).tolist()}
                                     for n in sorted(poses)}
                last_pose = list(pose_sets).index(pk)
            stamps.append(stamp)
            gts.append(pos)  # type: ignore[arg-type]
            pose_ids.append(last_pose)

    st_arr = np.array(stamps, dtype=np.int64)
    keep = np.ones(len(st_arr), dtype=bool)
    match: dict[str, np.ndarray] = {}
    missing: Counter = Counter()
    inexact: Counter = Counter()
    for s in streams:
        tol = radar_tol_ms if s.modality == "radar" else tol_ms
        m, ok = _nearest(index[s.path][s.key], st_arr, tol)
        match[s.sid] = m
        missing[s.sid] = int((~ok).sum())
        inexact[s.sid] = int((ok & (m != st_arr)).sum())
        dropped[f"missing:{s.sid}"] += int((~ok & keep).sum())  # a sample counts for its first missing stream
        keep &= ok
    return _Plan(split=split, src_dir=split_dir, mocap_path=mocap_path, n_mocap=n_mocap, stamps=st_arr[keep],
                 gt=np.array(gts, dtype=np.float32).reshape(-1, 2)[keep],
                 pose_ids=np.array(pose_ids, dtype=np.int32)[keep], streams=streams,
                 match={k: v[keep] for k, v in match.items()}, dropped=dropped,
                 missing_per_stream=missing, inexact=inexact)


def _empty_split_error(plan: _Plan, extra: Counter | None = None) -> GDTMError:
    d = dict(plan.dropped + (extra or Counter()))
    return GDTMError(f"split {plan.split!r} ({plan.src_dir}): no samples left: {plan.n_mocap} mocap frames in "
                     f"{plan.mocap_path}, all dropped ({d})", plan.mocap_path)


def _calibrate_radar(plan: _Plan, kind: str, on_corrupt: str) -> tuple[RadarNorm, int]:
    """lo / hi percentiles of the transformed radar values of the split's kept samples."""
    radar_streams = [s for s in plan.streams if s.modality == "radar"]
    n = len(plan.stamps)
    picks = np.unique(np.linspace(0, n - 1, num=min(n, RADAR_CALIBRATION_FRAMES)).round().astype(int))
    probe = RadarNorm(kind, 0.0, 1.0)
    vals: list[np.ndarray] = []
    with ExitStack() as stack:
        files = {s.path: stack.enter_context(_open_h5(s.path)) for s in radar_streams}
        for i in picks:
            for s in radar_streams:
                key = s.h5key(int(plan.match[s.sid][i]))
                try:
                    v = probe.values(_map_2d(_read_scalar(files[s.path], s.path, key), s.path, key))
                except GDTMError:
                    if on_corrupt == "raise":
                        raise
                    continue
                v = v[np.isfinite(v)]
                if v.size > 20000:
                    v = v[:: int(math.ceil(v.size / 20000))]
                vals.append(v)
    allv = np.concatenate(vals) if vals else np.zeros(0)
    if allv.size == 0:
        raise GDTMError(f"split {plan.split!r}: no finite radar values in {len(vals)} calibration frames "
                        f"({SOURCES['radar'][kind][1]}); pass radar_range=(lo, hi)", plan.src_dir)
    lo, hi = (float(x) for x in np.percentile(allv, RADAR_PERCENTILES))
    if not hi - lo > 1e-9:
        hi = lo + 1.0
    return RadarNorm(kind, lo, hi), len(vals)


def _episodes(stamps: np.ndarray, pose_ids: np.ndarray, gap_ms: float, first_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Episode ids (new at a gap > ``gap_ms`` or a node-pose change) and seconds since the episode start."""
    new = np.ones(len(stamps), dtype=bool)
    new[1:] = (np.diff(stamps) > gap_ms) | (pose_ids[1:] != pose_ids[:-1])
    ep = (first_id + np.cumsum(new) - 1).astype(np.int32)
    t = ((stamps - stamps[np.flatnonzero(new)][ep - first_id]) / 1000.0).astype(np.float32)
    return ep, t


def _write_split(plan: _Plan, out_dir: Path, depth_src: str, radar: RadarNorm,
                 on_corrupt: str, progress: bool) -> tuple[int, Counter, list[str], np.ndarray]:
    """Decode and store the split's samples; returns (n written, corrupt drops, examples, kept row mask)."""
    n = len(plan.stamps)
    big = create_arrays(out_dir, n, len(NODES), MODALITIES)
    corrupt: Counter = Counter()
    examples: list[str] = []
    kept = np.zeros(n, dtype=bool)
    w = 0
    with ExitStack() as stack:
        files = {p: stack.enter_context(_open_h5(p)) for p in {s.path for s in plan.streams}}
        for i in progress_bar(progress, n, "sample", f"gdtm {plan.split}", range(n)):
            row: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
            for s in plan.streams:  # node-major, as the nodes of the output
                key = s.h5key(int(plan.match[s.sid][i]))
                try:
                    row[s.modality].append(_convert(s, _read_scalar(files[s.path], s.path, key), key, depth_src, radar))
                except ValueError as exc:  # GDTMError, or to_storage's shape / dtype checks
                    err = exc if isinstance(exc, GDTMError) else _err(s.path, key, str(exc))
                    if on_corrupt == "raise":
                        raise err from None
                    corrupt[f"corrupt:{s.sid}"] += 1
                    if len(examples) < 10:
                        examples.append(str(err))
                    break
            else:  # every stream decoded
                for m in MODALITIES:
                    big[m][w] = np.stack(row[m])
                kept[i] = True
                w += 1
    for a in big.values():
        a.flush()
    del big
    if w < n:
        for stem in MODALITIES:
            truncate_npy(out_dir / f"{stem}.npy", w)
    return w, corrupt, examples, kept


def convert_gdtm(src_root: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 splits: Sequence[str] | Mapping[str, str] = SPLITS,
                 radar: str = "azimuth", rgb: str = "zed", depth: str = "zed",
                 radar_range: tuple[float, float] | None = None,
                 tolerance_ms: float = FRAME_MS / 2, radar_tolerance_ms: float = 250.0,
                 car_id: int | None = None, gt_axes: tuple[str, str] = ("x", "z"),
                 episode_gap_ms: float = 1000.0, limit: int = 0, on_corrupt: str = "raise",
                 overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Convert a preprocessed GDTM copy into ``out_dir``; returns the summary (also
    ``meta.json["conversion"]``). The options are the CLI's (docs/GDTM.md); ``splits`` may map our
    split names to GDTM directories relative to ``src_root`` (``"."`` = itself). Raises
    FileNotFoundError, GDTMError, FileExistsError or ValueError, naming what is wrong."""
    t0 = time.perf_counter()
    src, out = Path(src_root), Path(out_dir)
    for name, v in (("radar", radar), ("rgb", rgb), ("depth", depth)):
        if v not in SOURCES[name]:
            raise ValueError(f"{name} must be one of {sorted(SOURCES[name])}, got {v!r}")
    if on_corrupt not in ("raise", "drop"):
        raise ValueError(f"on_corrupt must be 'raise' or 'drop', got {on_corrupt!r}")
    if len(gt_axes) != 2 or any(a not in _AXES for a in gt_axes) or gt_axes[0] == gt_axes[1]:
        raise ValueError(f"gt_axes must be two different axes of x, y, z, got {gt_axes!r}")
    if tolerance_ms < 0 or radar_tolerance_ms < 0:
        raise ValueError("tolerances must be >= 0")
    if radar_range is not None and not (len(radar_range) == 2 and float(radar_range[1]) > float(radar_range[0])):
        raise ValueError(f"radar_range must be (lo, hi) with hi > lo, got {radar_range!r}")
    if not src.is_dir():
        raise FileNotFoundError(f"GDTM source directory not found: {src}")
    split_dirs = _resolve_splits(src, splits)
    if out.resolve() in {src.resolve(), *(d.resolve() for d in split_dirs.values())}:
        raise ValueError(f"output {out} must not be a GDTM input directory")
    clear_dataset(out, overwrite, remove=False)
    sources = {"rgb": SOURCES["rgb"][rgb], "depth": SOURCES["depth"][depth], "radar": SOURCES["radar"][radar]}
    axes = (_AXES[gt_axes[0]], _AXES[gt_axes[1]])

    # align every split first: layout problems fail before any decoding
    pose_sets: dict[str, dict[str, Any]] = {}
    plans: dict[str, _Plan] = {}
    for name, d in split_dirs.items():
        plan = _plan_split(name, d, sources, tolerance_ms, radar_tolerance_ms, car_id, axes, limit,
                           on_corrupt, pose_sets)
        if len(plan.stamps) == 0:
            raise _empty_split_error(plan)
        plans[name] = plan

    if radar_range is not None:
        norm = RadarNorm(radar, float(radar_range[0]), float(radar_range[1]))
        calib = {"from": "radar_range argument"}
    else:
        cal_split = "train" if "train" in plans else next(iter(plans))
        norm, used = _calibrate_radar(plans[cal_split], radar, on_corrupt)
        calib = {"from": f"split {cal_split}", "frames": used, "percentiles": list(RADAR_PERCENTILES)}

    clear_dataset(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    split_info: dict[str, Any] = {}
    summary_splits: dict[str, Any] = {}
    all_gt: list[np.ndarray] = []
    next_episode = 0
    with splits_removed_on_error(out, plans):  # a failed conversion leaves no half-written split behind
        for name, plan in plans.items():
            ts = time.perf_counter()
            w, corrupt, examples, kept = _write_split(plan, out / name, depth, norm, on_corrupt, progress)
            if w == 0:
                raise _empty_split_error(plan, corrupt)
            stamps = plan.stamps[kept]
            gt = plan.gt[kept]
            ep, t = _episodes(stamps, plan.pose_ids[kept], episode_gap_ms, next_episode)
            ep_ids, ep_frames = np.unique(ep, return_counts=True)
            next_episode = int(ep.max()) + 1
            for stem, a in {"gt": gt.astype(np.float32), "episode": ep, "t": t, "stamp_ms": stamps.astype(np.int64),
                            "visibility": np.full((w, len(NODES)), np.nan, dtype=np.float16)}.items():
                np.save(out / name / f"{stem}.npy", a)
            all_gt.append(gt)
            dropped = dict(plan.dropped + corrupt)
            poses_used = sorted({int(p) for p in plan.pose_ids[kept] if p >= 0})
            split_info[name] = {"n_samples": w, "episodes": ep_ids.tolist(), "episode_frames": ep_frames.tolist(),
                                "source_dir": str(plan.src_dir), "node_pose_sets": poses_used,
                                "stamp_ms_range": [int(stamps[0]), int(stamps[-1])]}
            summary_splits[name] = {
                "source_dir": str(plan.src_dir), "mocap_frames": plan.n_mocap, "n_samples": w,
                "dropped": dict(sorted(dropped.items())), "n_dropped": int(sum(dropped.values())),
                "missing_per_stream": {k: v for k, v in plan.missing_per_stream.items() if v},
                "inexact_matches": {k: v for k, v in plan.inexact.items() if v},
                "corrupt_examples": examples, "episodes": len(ep_ids),
                "seconds": round(time.perf_counter() - ts, 3),
            }
            assert w + summary_splits[name]["n_dropped"] == plan.n_mocap

    gt_all = np.concatenate(all_gt)
    box = [[float(gt_all[:, k].min()), float(gt_all[:, k].max())] for k in (0, 1)]
    sizes = {s: sum(p.stat().st_size for p in (out / s).glob("*.npy")) for s in plans}
    elapsed = time.perf_counter() - t0
    n_total = sum(v["n_samples"] for v in summary_splits.values())
    summary = {"source": "gdtm", "src_root": str(src), "out": str(out), "elapsed_s": round(elapsed, 3),
               "n_samples": n_total, "splits": summary_splits, "radar": {**norm.to_dict(), "calibration": calib},
               "bytes": sizes, "total_bytes": sum(sizes.values())}
    arrays = arrays_meta(
        rgb=f"GDTM {sources['rgb'][1]} JPEG decoded to rgb8, nearest pixel-centre subsampled to 64x64 (16:9 "
            "squeezed), channels first; model input = value / 255",
        depth="GDTM zed_camera_depth, uint16 millimetres (0 = invalid), 64x64 nearest" if depth == "zed" else
              "GDTM realsense_camera_depth (colourised JPEG) as grayscale g, stored as round(g / 255 * depth_max_m * "
              "1000) so that model input = g / 255: NOT metric",
        radar=f"GDTM {sources['radar'][1]} normalised to [0, 1] (see meta radar), 64x64 nearest; " +
              ("Cartesian bird's-eye grid, row 0 nearest (flipped from the stored far-first rows), columns as stored"
               if radar == "azimuth" else "rows = range bins (row 0 nearest), columns = doppler bins (fft-shifted)"),
        gt=f"car position (mocap {gt_axes[0]}, mocap {gt_axes[1]}) in the OptiTrack frame, metres",
        episode="contiguous recording segment id (new at a gap > episode_gap_ms or a node-pose change); unique "
                "across splits",
        t="seconds since the start of the sample's episode (segment)",
        visibility="unknown for real data: NaN")
    arrays["stamp_ms.npy"] = {"dtype": "int64", "shape": ["N"],
                              "description": "GDTM frame timestamp (mocap group name), ms since the epoch"}
    meta = {
        **meta_head(StreamSet(NODES, MODALITIES)),
        "source": "gdtm",
        "description": "GDTM (nesl/GDTM) preprocessed HDF5 converted by admn_ros.core.data.gdtm: streams aligned "
                       "to the mocap timestamps, images/depth subsampled with preprocess.to_storage, radar "
                       "normalised to [0, 1]. Splits are the GDTM split directories.",
        "rate_hz": round(1000.0 / FRAME_MS, 3),
        "gdtm": {
            "src_root": str(src),
            "split_dirs": {k: str(v) for k, v in split_dirs.items()},
            "sources": {"rgb": {"option": rgb, "file": sources["rgb"][0], "key": sources["rgb"][1]},
                        "depth": {"option": depth, "file": sources["depth"][0], "key": sources["depth"][1],
                                  "metric": depth == "zed"},
                        "radar": {"option": radar, "file": sources["radar"][0], "key": sources["radar"][1]}},
            "mocap": {"file": MOCAP_FILE, "key": f"/<ms>/{MOCAP_KEY}", "frame": "OptiTrack, metres, y up",
                      "gt_axes": list(gt_axes), "car_id": car_id},
            "tolerance_ms": tolerance_ms, "radar_tolerance_ms": radar_tolerance_ms,
            "episode_gap_ms": episode_gap_ms, "limit": limit, "on_corrupt": on_corrupt,
        },
        "mocap_axes": list(gt_axes),
        "radar": {**norm.to_dict(), "calibration": calib},
        "node_poses": {"convention": "OptiTrack frame, metres: local = R (p - T); from the mocap JSON node objects",
                       "sets": list(pose_sets.values())},
        "bounds": box,  # ground-truth extent; stage 1 adds its margin for the Gaussian head's box
        "splits": split_info,
        "arrays": arrays,
        "conversion": summary,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    if progress:
        print(f"[gdtm] {n_total} samples from {src} -> {out} in {elapsed:.1f} s")
        for name, s in summary_splits.items():
            print(f"[gdtm] {name}: {s['n_samples']} of {s['mocap_frames']} mocap frames, {s['episodes']} episode(s); "
                f"dropped {s['n_dropped']}" + (f" {s['dropped']}" if s["dropped"] else ""))
        print(f"[gdtm] radar {radar}: [{norm.lo:.4g}, {norm.hi:.4g}] ({norm.transform}) -> [0, 1]")
    return summary


def main(argv: list[str] | None = None) -> int:
    """``admn-ros convert-gdtm``: 0 on success, 2 with a one-line error otherwise."""
    p = argparse.ArgumentParser(
        prog="admn-ros convert-gdtm",
        description="Convert a preprocessed GDTM copy (HDF5: <src>/<split>/mocap.hdf5, "
                    "<src>/<split>/node_<k>/{zed,realsense,mmwave}.hdf5) into our dataset format "
                    "(docs/GDTM.md), usable with `admn-ros train/evaluate --data OUT`.")
    p.add_argument("--src", required=True, help="GDTM root holding train/ val/ test/")
    p.add_argument("--out", required=True, help="output dataset directory (e.g. data/gdtm_real)")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), metavar="SPLIT[=DIR]",
                   help="our splits to convert, optionally from another GDTM directory "
                        "(e.g. train=chunk_0 val=chunk_1 test=chunk_2; '.' = --src itself; default: train val test)")
    p.add_argument("--radar", choices=sorted(SOURCES["radar"]), default="azimuth",
                   help="radar source: azimuth (the azimuth_static heatmap, default) or range_doppler")
    p.add_argument("--rgb", choices=sorted(SOURCES["rgb"]), default="zed", help="camera (default zed)")
    p.add_argument("--depth", choices=sorted(SOURCES["depth"]), default="zed",
                   help="depth: zed (metric mm, default) or realsense (colourised JPEG, not metric)")
    p.add_argument("--radar-range", nargs=2, type=float, metavar=("LO", "HI"), default=None,
                   help="transformed radar values mapped to 0 and 1 (default: train percentiles)")
    p.add_argument("--tolerance-ms", type=float, default=FRAME_MS / 2,
                   help="rgb/depth alignment tolerance (default 33 ms)")
    p.add_argument("--radar-tolerance-ms", type=float, default=250.0, help="radar alignment tolerance (default 250 ms)")
    p.add_argument("--car-id", type=int, default=None,
                   help="mocap id of the car (3 red, 4 green; default: the only car)")
    p.add_argument("--gt-axes", nargs=2, default=["x", "z"], metavar=("A", "B"),
                   help="mocap axes used as ground truth (default x z)")
    p.add_argument("--episode-gap-ms", type=float, default=1000.0,
                   help="gap that starts a new episode (default 1000 ms)")
    p.add_argument("--limit", type=int, default=0, help="first N mocap frames per split only (0 = all)")
    p.add_argument("--on-corrupt", choices=("raise", "drop"), default="raise",
                   help="undecodable frame: stop naming file and key (default) or drop and count it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    a = p.parse_args(argv)
    splits = {name: sub or name for name, _, sub in (it.partition("=") for it in a.splits)}
    return cli_exit_code(lambda: convert_gdtm(
        a.src, a.out, splits=splits, radar=a.radar, rgb=a.rgb, depth=a.depth,
        radar_range=tuple(a.radar_range) if a.radar_range else None, tolerance_ms=a.tolerance_ms,
        radar_tolerance_ms=a.radar_tolerance_ms, car_id=a.car_id, gt_axes=tuple(a.gt_axes),
        episode_gap_ms=a.episode_gap_ms, limit=a.limit, on_corrupt=a.on_corrupt, overwrite=a.overwrite,
        progress=not a.quiet))
