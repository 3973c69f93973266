"""On-disk format of the simulated tracking dataset (``<root>/meta.json``, ``<root>/<split>/<stem>.npy``
per :data:`ARRAYS`; docs/DATASET.md) and its memory-mapped reader :class:`SimDataset`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.core.preprocess import MODEL_INPUT, from_storage
from admn_ros.core.streams import DEPTH_MAX_M, MODALITY_NAMES, StreamSet

FORMAT_NAME: str = "admn_ros.simdata"
FORMAT_VERSION: int = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")
M = MODEL_INPUT

#: Per-split arrays: file stem -> (dtype, shape with "N" / "S" placeholders, description).
ARRAYS: dict[str, tuple[str, tuple[Any, ...], str]] = {
    "rgb": ("uint8", ("N", "S", 3, M, M),
            "RGB (rgb8) per node, nearest pixel-centre subsampled to 64x64, channels first; "
            "model input = value / 255"),
    "depth": ("uint16", ("N", "S", M, M),
              "z-depth in millimetres per node (REP-118, 0 = invalid), 64x64 nearest; "
              "model input = min(mm / (depth_max_m * 1000), 1)"),
    "radar": ("float16", ("N", "S", M, M),
              "range-azimuth heatmap in [0, 1] per node; rows = range bins (row 0 nearest), "
              "columns = azimuth from +fov/2 (left) to -fov/2 (right)"),
    "gt": ("float32", ("N", 2), "ground-truth car position (x, y) in the map frame, metres"),
    "episode": ("int32", ("N",), "simulator episode id of the sample (GDTMSimulator(seed, episode))"),
    "t": ("float32", ("N",), "simulation time of the sample in its episode, seconds"),
    "visibility": ("float16", ("N", "S"),
                   "fraction of the car's in-image area not hidden by obstacles, per node "
                   "(0 = out of view or fully occluded)"),
}


def array_shape(stem: str, n: int, s: int, arrays: dict[str, tuple[str, tuple[Any, ...], str]] = ARRAYS
                ) -> tuple[int, ...]:
    """Concrete shape of ``arrays[stem]`` for ``n`` samples (``"N"``) of ``s`` nodes or frames (``"S"``, ``"F"``)."""
    return tuple(n if d == "N" else s if isinstance(d, str) else int(d) for d in arrays[stem][1])


def create_arrays(d: Path, n: int, s: int, stems: Sequence[str] | None = None,
                  arrays: dict[str, tuple[str, tuple[Any, ...], str]] = ARRAYS) -> dict[str, np.ndarray]:
    """Preallocated ``<d>/<stem>.npy`` memory maps (``d`` is created) of ``stems`` of ``arrays`` (default: all)."""
    d.mkdir(parents=True, exist_ok=True)
    return {stem: np.lib.format.open_memmap(d / f"{stem}.npy", mode="w+", dtype=np.dtype(arrays[stem][0]),
                                            shape=array_shape(stem, n, s, arrays)) for stem in stems or arrays}


def arrays_meta(**descriptions: str) -> dict[str, dict[str, Any]]:
    """``meta.json["arrays"]`` of :data:`ARRAYS`; ``descriptions`` (stem=text) replace the generic ones."""
    return {f"{stem}.npy": {"dtype": dt, "shape": list(shape), "description": descriptions.get(stem, doc)}
            for stem, (dt, shape, doc) in ARRAYS.items()}


def meta_head(streams: StreamSet, fmt: tuple[str, int] = (FORMAT_NAME, FORMAT_VERSION)) -> dict[str, Any]:
    """The ``meta.json`` entries every dataset starts with: its format ``(name, version)``, its streams (of
    its nodes, or frames) and their storage scaling (:func:`load_meta_json` checks the format)."""
    return {"format": fmt[0], "format_version": fmt[1], "stream_ids": streams.ids, "nodes": list(streams.nodes),
            "modalities": list(streams.modalities), "model_input": MODEL_INPUT, "depth_max_m": DEPTH_MAX_M}


def split_permutation(n: int, n_val: int, n_test: int, seed: Sequence[int]) -> dict[str, list[int]]:
    """``0 .. n-1`` by a permutation seeded with ``seed``: the first ``n_val`` to val, the next
    ``n_test`` to test, the rest to train (each list sorted)."""
    perm = np.random.default_rng(seed).permutation(n)
    groups = {"val": perm[:n_val], "test": perm[n_val:n_val + n_test], "train": perm[n_val + n_test:]}
    return {s: sorted(int(x) for x in groups[s]) for s in SPLITS}


class DatasetError(ValueError):
    """A dataset directory (or a copy to convert) that cannot be read; the message names the path
    (also :attr:`path` and the HDF5 :attr:`key` where a converter knows them)."""

    def __init__(self, message: str, path: str | Path | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)
        self.key = key


def read_meta(root: str | Path) -> dict[str, Any]:
    return load_meta_json(root, FORMAT_NAME, FORMAT_VERSION, "regenerate the dataset")


def load_meta_json(root: str | Path, format_name: str, format_version: int, remedy: str) -> dict[str, Any]:
    """``<root>/meta.json``, checked for format and version (``remedy`` ends the message about
    another version); FileNotFoundError or DatasetError naming the file."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    mp = root / "meta.json"
    if not mp.is_file():
        raise FileNotFoundError(f"dataset meta file not found: {mp} (incomplete or not a dataset?)")
    try:
        meta = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{mp}: invalid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DatasetError(f"{mp}: format {got!r} is not {format_name!r}")
    if meta.get("format_version") != format_version:
        raise DatasetError(f"{mp}: format_version {meta.get('format_version')!r} is not supported "
                           f"(this reader reads version {format_version}); {remedy}")
    return meta


class MemmapBatches:
    """Batches of a memory-mapped split. Subclasses set ``root`` and ``meta``, then call
    :meth:`_open_split` and :meth:`_map_arrays` (the arrays, and the target named by :attr:`TARGET`)."""

    TARGET: tuple[str, Any] = ("gt", np.float32)
    root: Path
    meta: dict[str, Any]
    split: str
    _n: int

    def _open_split(self, split: str) -> tuple[dict[str, Any], Path]:
        """The split's ``meta["splits"]`` entry and directory; sets ``split`` and ``_n``."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r} for {self.root}; known: {list(SPLITS)}")
        self.split = split
        info = (self.meta.get("splits") or {}).get(split)
        if info is None:
            raise DatasetError(f"{self.root / 'meta.json'}: no entry for split {split!r}")
        n = int(info.get("n_samples", 0))
        if n <= 0:
            raise DatasetError(f"split {split!r} of {self.root} has no samples")
        d = self.root / split
        if not d.is_dir():
            raise FileNotFoundError(f"split directory not found: {d}")
        self._n = n
        return info, d

    def _map_arrays(self, d: Path, arrays: dict[str, tuple[str, tuple[Any, ...], str]], s: int) -> None:
        """Memory-map ``<d>/<stem>.npy`` as attribute ``stem``, checking dtype and shape (``s`` nodes or frames)."""
        for stem, (dtype, _shape, _doc) in arrays.items():
            p = d / f"{stem}.npy"
            if not p.is_file():
                raise FileNotFoundError(f"dataset array not found: {p}")
            try:
                arr = np.load(p, mmap_mode="r")
            except ValueError as e:
                raise DatasetError(f"{p}: not a readable .npy file: {e}") from None
            want = array_shape(stem, self._n, s, arrays)
            if arr.shape != want or arr.dtype != np.dtype(dtype):
                raise DatasetError(f"{p}: expected {dtype} {want} (from meta.json), got {arr.dtype} {arr.shape}")
            setattr(self, stem, arr)

    def _index(self, indices: Sequence[int] | np.ndarray | slice) -> np.ndarray:
        if isinstance(indices, slice):
            return np.arange(self._n)[indices]
        idx = np.atleast_1d(indices)
        if idx.dtype == bool:
            raise DatasetError("boolean masks are not supported as batch indices; use np.flatnonzero")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"index out of range for split {self.split!r} of {self.root} "
                             f"with {self._n} samples")
        return np.where(idx < 0, idx + self._n, idx)

    def batch(self, indices: Sequence[int] | np.ndarray | slice) -> dict[str, np.ndarray]:
        """Float32 model inputs in [0, 1] ``rgb [B, S, 3, 64, 64]``, ``depth`` / ``radar
        [B, S, 1, 64, 64]`` (``S`` = nodes, or frames of a window) and the target."""
        idx = self._index(indices)
        # each row read once, in sorted order (fastest on a memmap); the caller's order restored after
        rows, inv = np.unique(idx, return_inverse=True)

        def take(stem: str) -> np.ndarray:
            return np.asarray(getattr(self, stem)[rows])[inv]

        name, dtype = self.TARGET
        return {**{m: from_storage(m, take(m)) for m in MODALITY_NAMES}, name: take(name).astype(dtype)}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.batch([int(i)]).items()}


class SimDataset(MemmapBatches):
    """Memory-mapped reader of one split of a tracking dataset (the arrays as attributes)."""

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        _info, d = self._open_split(split)
        self.nodes: list[str] = list(self.meta["nodes"])
        self._map_arrays(d, ARRAYS, len(self.nodes))

    def __repr__(self) -> str:
        return f"SimDataset({str(self.root)!r}, {self.split!r}, n={self._n}, nodes={self.nodes})"

