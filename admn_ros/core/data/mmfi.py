"""``admn-ros convert-mmfi``: an MM-Fi copy (40 subjects, 27 actions, 4 environments) into our
activity dataset, in windows of ``frames`` frames per sequence folder ``<root>/E../S../A..``.
Slots, axes, splits, what was confirmed and what is assumed: docs/MMFI.md.
"""
from __future__ import annotations

import argparse
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from admn_ros.core.data.activity import ActivityWriter
from admn_ros.core.data.simdata import SPLITS, DatasetError
from admn_ros.core.data.tools import cli_exit_code, progress_bar
from admn_ros.core.preprocess import MODEL_INPUT, to_storage
from admn_ros.core.sim.activity import RADAR_DOPPLER_MAX_MPS, RADAR_RANGE_MAX_M
from admn_ros.core.sim.config import check_index, check_rate
from admn_ros.core.streams import MODALITY_NAMES

#: The 27 actions (toolbox README "Activities Included").
MMFI_ACTIONS: dict[str, str] = {
    "A01": "Stretching and relaxing", "A02": "Chest expansion (horizontal)", "A03": "Chest expansion (vertical)",
    "A04": "Twist (left)", "A05": "Twist (right)", "A06": "Mark time", "A07": "Limb extension (left)",
    "A08": "Limb extension (right)", "A09": "Lunge (toward left-front)", "A10": "Lunge (toward right-front)",
    "A11": "Limb extension (both)", "A12": "Squat", "A13": "Raising hand (left)", "A14": "Raising hand (right)",
    "A15": "Lunge (toward left side)", "A16": "Lunge (toward right side)", "A17": "Waving hand (left)",
    "A18": "Waving hand (right)", "A19": "Picking up things", "A20": "Throwing (toward left side)",
    "A21": "Throwing (toward right side)", "A22": "Kicking (toward left side)", "A23": "Kicking (toward right side)",
    "A24": "Body extension (left)", "A25": "Body extension (right)", "A26": "Jumping up", "A27": "Bowing"
}
ALL_ACTIONS: tuple[str, ...] = tuple(MMFI_ACTIONS)
#: The toolbox's action protocols (``decode_config``): daily, rehabilitation, all.
PROTOCOLS: dict[str, tuple[str, ...]] = {
    "protocol1": ("A02", "A03", "A04", "A05", "A13", "A14", "A17", "A18", "A19", "A20", "A21", "A22", "A23", "A27"),
    "protocol2": ("A01", "A06", "A07", "A08", "A09", "A10", "A11", "A12", "A15", "A16", "A24", "A25", "A26"),
    "protocol3": ALL_ACTIONS,
}
ENVIRONMENTS: tuple[str, ...] = ("E01", "E02", "E03", "E04")
ALL_SUBJECTS: tuple[str, ...] = tuple(f"S{i:02d}" for i in range(1, 41))
#: Subjects per environment (toolbox ``get_scene``): S01-S10 in E01, ..., S31-S40 in E04.
SUBJECT_ENV: dict[str, str] = {s: ENVIRONMENTS[(int(s[1:]) - 1) // 10] for s in ALL_SUBJECTS}
#: Validation (= test) subjects of the toolbox's ``cross_subject_split`` (config.yaml).
CROSS_SUBJECT_TEST: tuple[str, ...] = ("S05", "S10", "S15", "S20", "S25", "S30", "S35", "S40")
#: ``random_split`` of config.yaml: seed 0, the first 80 % of each action's permutation train.
RANDOM_SPLIT_TRAIN: int = 32
#: The ADMN authors' MM-Fi test subjects (nesl/ADMN ``MMFI_Noise/PickleDataset.py``; val: DEFAULT_VAL_SUBJECTS).
ADMN_TEST_SUBJECTS: tuple[str, ...] = ("S08", "S09", "S10", "S18", "S19", "S20", "S28", "S29", "S30", "S38", "S39",
                                       "S40")
SPLIT_KINDS: tuple[str, ...] = ("admn", "cross_subject", "random", "cross_environment")
#: Test subjects of the subject-disjoint splits (``cross_environment``: all of E04).
TEST_SUBJECTS: dict[str, tuple[str, ...]] = {
    "admn": ADMN_TEST_SUBJECTS, "cross_subject": CROSS_SUBJECT_TEST,
    "cross_environment": tuple(s for s in ALL_SUBJECTS if SUBJECT_ENV[s] == "E04"),
}
#: Training subjects held out as ``val`` (``admn``: the authors' own; the others: ours, one per environment).
DEFAULT_VAL_SUBJECTS: dict[str, tuple[str, ...]] = {
    "admn": ("S07", "S17", "S27", "S37"),
    "cross_subject": ("S04", "S14", "S24", "S34"),
    "cross_environment": ("S10", "S20", "S30"),
}
#: ``random``: per action, the last this many subjects of the toolbox's training permutation are ``val``.
RANDOM_VAL_PER_ACTION: int = 4
#: Frame rate used for ``t`` and ``rate_hz`` (an assumption: not stated in the toolbox; override with rate_hz).
DEFAULT_RATE_HZ: float = 10.0
#: mmWave .bin: the toolbox reads ``np.frombuffer(raw, dtype=np.float64).reshape(-1, 5)``.
MMWAVE_FEATURES: int = 5
IMAGE_SOURCES: tuple[str, ...] = ("auto", "rgb", "keypoints")
#: Folder (inside a sequence folder) holding the anonymised RGB images, as HoloLLM (NTUMARS) arranges them.
RGB_IMAGE_DIR: str = "rgb_img"
#: Default canvas of the 2-D keypoints (pixels; an assumption, see docs/MMFI.md).
DEFAULT_KEYPOINT_CANVAS: tuple[int, int] = (640, 480)
#: COCO-17 limbs (keypoint order nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_LIMBS: tuple[tuple[int, int, str], ...] = (
    (5, 7, "L"), (7, 9, "L"), (11, 13, "L"), (13, 15, "L"),
    (6, 8, "R"), (8, 10, "R"), (12, 14, "R"), (14, 16, "R"),
    (5, 6, "C"), (11, 12, "C"), (5, 11, "C"), (6, 12, "C"),
    (0, 1, "C"), (0, 2, "C"), (1, 3, "C"), (2, 4, "C"),
)
_LIMB_RGB = {"L": (255, 80, 40), "R": (40, 120, 255), "C": (60, 230, 60)}
_FRAME_RE = re.compile(r"^frame(\d+)\.([A-Za-z0-9]+)$")
_IMAGE_EXTS = ("png", "jpg", "jpeg", "bmp")


class MMFiError(DatasetError):
    """An MM-Fi copy that cannot be converted; the message names the folder or file (also :attr:`path`)."""


def _err(path: str | Path, msg: str) -> MMFiError:
    return MMFiError(f"{path}: {msg}", path)


def split_subjects(split: str = "admn", actions: Sequence[str] | str | None = "protocol3", *,
                   val_subjects: Sequence[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """``{split: {subject: [actions]}}`` (empty splits omitted): ``test`` is the toolbox's validation
    set of that split (``admn``: the paper's test subjects), ``val`` comes out of its training set
    (``val_subjects``, default :data:`DEFAULT_VAL_SUBJECTS`; ``()`` = none). docs/MMFI.md, 3.3."""
    acts, proto = _resolve_actions(actions)
    if split not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {list(SPLIT_KINDS)}, got {split!r}")
    test: dict[str, set[str]] = {}  # action -> its test subjects
    val: dict[str, set[str]] = {}   # action -> its val subjects (a test subject stays in test)
    if split == "random":
        order = PROTOCOLS[proto] if proto else ALL_ACTIONS
        vals = None if val_subjects is None else set(_check_subjects(val_subjects))
        for act in acts:
            perm = [ALL_SUBJECTS[j] for j in np.random.RandomState(order.index(act)).permutation(len(ALL_SUBJECTS))]
            train = perm[:RANDOM_SPLIT_TRAIN]
            test[act] = set(perm[RANDOM_SPLIT_TRAIN:])
            val[act] = set(train[-RANDOM_VAL_PER_ACTION:]) if vals is None else vals
    else:
        tests = set(TEST_SUBJECTS[split])
        vals = set(_check_subjects(DEFAULT_VAL_SUBJECTS[split] if val_subjects is None else val_subjects))
        if vals & tests:
            raise ValueError(f"val_subjects {sorted(vals & tests)} are test subjects of the {split} split")
        test, val = dict.fromkeys(acts, tests), dict.fromkeys(acts, vals)
    form: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
    for act in acts:
        for subj in ALL_SUBJECTS:
            name = "test" if subj in test[act] else "val" if subj in val[act] else "train"
            form[name].setdefault(subj, []).append(act)
    return {k: dict(sorted(v.items())) for k, v in form.items() if v}


def _check_subjects(subjects: Iterable[str]) -> list[str]:
    out = [str(s).upper() for s in subjects]
    bad = [s for s in out if s not in SUBJECT_ENV]
    if bad:
        raise ValueError(f"unknown MM-Fi subjects {bad}; subjects are S01..S40")
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate subjects in val_subjects {out}")
    return out


def _resolve_actions(actions: Sequence[str] | str | None) -> tuple[list[str], str | None]:
    """Action codes in class order and the protocol name if ``actions`` named one."""
    actions = ["protocol3"] if actions is None else [actions] if isinstance(actions, str) else list(actions)
    if len(actions) == 1 and actions[0] in PROTOCOLS:
        return list(PROTOCOLS[actions[0]]), actions[0]
    acts = [str(a).upper() for a in actions]
    bad = [a for a in acts if a not in MMFI_ACTIONS]
    if bad or not acts:
        raise ValueError(f"unknown MM-Fi actions {bad or acts}; use A01..A27 or protocol1/2/3")
    if len(set(acts)) != len(acts):
        raise ValueError(f"duplicate actions in {acts}")
    return acts, next((name for name, proto in PROTOCOLS.items() if list(proto) == acts), None)


def read_depth_png(path: str | Path) -> np.ndarray:
    """A 16-bit depth PNG as uint16 millimetres ``(H, W)`` (0 = no depth)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise _err(path, "OpenCV cannot decode this depth PNG (corrupt or not an image)")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise _err(path, f"expected a 16-bit single-channel depth PNG (millimetres), got {img.dtype} {img.shape}")
    return img


def read_mmwave_bin(path: str | Path) -> np.ndarray:
    """A radar frame as float64 ``(n_points, 5)``; an empty file is a frame with no points."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise _err(p, f"cannot read ({exc.strerror})") from None
    rec = MMWAVE_FEATURES * 8
    if len(raw) % rec:
        raise _err(p, f"size {len(raw)} bytes is not a multiple of {rec} ({MMWAVE_FEATURES} float64 values per "
                      "point); corrupt")
    pts = np.frombuffer(raw, dtype="<f8").reshape(-1, MMWAVE_FEATURES).astype(np.float64)
    if not np.isfinite(pts).all():
        raise _err(p, f"{int((~np.isfinite(pts)).any(axis=1).sum())} of {len(pts)} points have non-finite values")
    return pts


def read_keypoints(path: str | Path) -> np.ndarray:
    """2-D keypoints ``(K, 2)`` float64 from a ``frameNNN.npy`` (extra columns, e.g. scores, are ignored)."""
    p = Path(path)
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for broken files
        raise _err(p, f"not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if a.ndim != 2 or a.shape[1] < 2 or a.shape[0] == 0 or not np.issubdtype(a.dtype, np.number):
        raise _err(p, f"expected keypoints of shape (K, 2) or (K, 3), got {a.dtype} {a.shape}")
    return a[:, :2].astype(np.float64)


def read_image(path: str | Path) -> np.ndarray:
    """An image as rgb8 ``(H, W, 3)`` (grey repeated to 3 channels)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise _err(path, "OpenCV cannot decode this image (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def render_keypoints(kp: np.ndarray, canvas: tuple[float, float] = DEFAULT_KEYPOINT_CANVAS,
                     size: int = MODEL_INPUT) -> tuple[np.ndarray, int]:
    """2-D keypoints (pixels of a ``canvas = (W, H)`` image) as a stick figure on a black
    ``size x size`` rgb8 image (limbs only for COCO-17), and how many fell outside the canvas."""
    import cv2

    img = np.zeros((size, size, 3), np.uint8)
    kp = np.asarray(kp, np.float64)
    ok = np.isfinite(kp).all(axis=1)
    w, h = float(canvas[0]), float(canvas[1])
    outside = int((ok & ((kp[:, 0] < 0) | (kp[:, 0] >= w) | (kp[:, 1] < 0) | (kp[:, 1] >= h))).sum())
    shift = 4
    scale = np.array([size / w, size / h]) * (1 << shift)
    pix = np.where(ok[:, None], kp, 0.0) * scale
    pix = np.clip(np.rint(pix), -(1 << 20), 1 << 20).astype(np.int64)
    if len(kp) == 17:
        for a, b, side in COCO_LIMBS:
            if ok[a] and ok[b]:
                cv2.line(img, (int(pix[a, 0]), int(pix[a, 1])), (int(pix[b, 0]), int(pix[b, 1])),
                         _LIMB_RGB[side], 1, cv2.LINE_AA, shift)
    for i in np.flatnonzero(ok):
        cv2.circle(img, (int(pix[i, 0]), int(pix[i, 1])), 1 << shift, (255, 255, 255), -1, cv2.LINE_AA, shift)
    return img, outside


def radar_histogram(points: np.ndarray, size: int = MODEL_INPUT) -> tuple[np.ndarray, int]:
    """A point cloud ``(n, 5)`` = (x, y, z, doppler, intensity) -> a range-Doppler histogram (row 0
    nearest, column 0 = -RADAR_DOPPLER_MAX_MPS; weight ``max(intensity, 0)``, or counts if all are
    <= 0) divided by its maximum, and the number of points outside it."""
    h = np.zeros((size, size), np.float64)
    pts = np.asarray(points, np.float64).reshape(-1, MMWAVE_FEATURES)
    r = np.sqrt((pts[:, :3] ** 2).sum(axis=1))
    v = pts[:, 3]
    row = np.floor(r / RADAR_RANGE_MAX_M * size).astype(np.int64)
    col = np.floor((v + RADAR_DOPPLER_MAX_MPS) / (2.0 * RADAR_DOPPLER_MAX_MPS) * size).astype(np.int64)
    inside = (row >= 0) & (row < size) & (col >= 0) & (col < size)
    n_out = int((~inside).sum())
    if not inside.any():
        return h.astype(np.float32), n_out
    wts = np.maximum(pts[inside, 4], 0.0)
    if not wts.sum() > 0:
        wts = np.ones(int(inside.sum()))
    np.add.at(h, (row[inside], col[inside]), wts)
    h /= h.max()
    return h.astype(np.float32), n_out


@dataclass(frozen=True)
class SequenceDir:
    """One sequence folder ``<root>/<env>/<subject>/<action>``."""

    env: str
    subject: str
    action: str
    path: Path

    @property
    def name(self) -> str:
        return f"{self.env}/{self.subject}/{self.action}"


def _sorted_dirs(d: Path, prefix: str) -> list[str]:
    """The ``<prefix>NN`` folders in ``d`` (E01, S07, A12, ...), sorted."""
    try:
        return sorted(e.name for e in os.scandir(d) if e.is_dir() and re.fullmatch(prefix + r"\d{2}", e.name))
    except OSError as exc:
        raise _err(d, f"cannot list this folder ({exc})") from None


def scan_mmfi(root: str | Path, environments: Sequence[str] | None = None) -> list[SequenceDir]:
    """All ``<env>/<subject>/<action>`` folders under ``root`` (sorted)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"MM-Fi root not found: {root} (point it at the folder holding E01 ... E04)")
    if not root.is_dir():
        raise NotADirectoryError(f"MM-Fi root is not a directory: {root}")
    envs = _sorted_dirs(root, "E")
    if not envs:
        found = sorted(e.name for e in os.scandir(root))[:12]
        hint = next((f"; did you mean {root / n}?" for n in found
                     if (root / n).is_dir() and _sorted_dirs(root / n, "E")), "")
        raise _err(root, f"not an MM-Fi root: no environment folders E01..E04 here (found {found}){hint}")
    if environments is not None:
        want = [str(e).upper() for e in environments]
        missing = [e for e in want if e not in envs]
        if missing:
            raise _err(root, f"environment folder(s) {missing} not found (present: {envs})")
        envs = [e for e in envs if e in want]
    return [SequenceDir(env, subj, act, root / env / subj / act) for env in envs
            for subj in _sorted_dirs(root / env, "S") for act in _sorted_dirs(root / env / subj, "A")]


def _frame_files(d: Path, exts: Sequence[str]) -> dict[int, Path]:
    """``{frame number: path}`` of ``frameNNN.<ext>`` files in ``d``."""
    found: dict[int, Path] = {}
    for name in sorted(os.listdir(d)):
        m = _FRAME_RE.match(name)
        if m and m.group(2).lower() in exts:
            found.setdefault(int(m.group(1)), d / name)
    return dict(sorted(found.items()))


def _slot_folders(seq: SequenceDir, image_source: str, rgb_root: Path | None) -> dict[str, Path]:
    """The folders our ``rgb``, ``depth`` and ``radar`` slots read in ``seq``."""
    if image_source == "keypoints":
        rgb = seq.path / "rgb"
    elif rgb_root is None:
        rgb = seq.path / RGB_IMAGE_DIR
    else:  # the extracted anonymised-RGB download: [all_images/][MMFi_Defaced_RGB/]E/S/A/rgb
        bases = (rgb_root, rgb_root / "MMFi_Defaced_RGB", rgb_root / "all_images" / "MMFi_Defaced_RGB")
        base = next((b for b in bases if any((b / e).is_dir() for e in ENVIRONMENTS)), rgb_root)
        rgb = base / seq.env / seq.subject / seq.action / "rgb"
    return {"rgb": rgb, "depth": seq.path / "depth", "radar": seq.path / "mmwave"}


def _resolve_image_source(image_source: str, first: SequenceDir, rgb_root: Path | None) -> str:
    """``auto``: anonymised RGB images if there are any for the first sequence, else keypoints."""
    if image_source != "auto":
        return image_source
    d = first.path / RGB_IMAGE_DIR
    return "rgb" if rgb_root is not None or (d.is_dir() and _frame_files(d, _IMAGE_EXTS)) else "keypoints"


@dataclass
class ConvertSummary:
    """What :func:`convert_mmfi` did (also ``meta.json["conversion"]``); ``notes`` counts what
    changes no window (e.g. radar points outside the axes)."""

    root: str
    out: str
    split: str
    image_source: str
    frames: int
    stride: int
    classes: list[str]
    frame_step: int = 1
    windows: dict[str, int] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped_sequences: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def n_windows(self) -> int:
        return int(sum(self.windows.values()))

    @property
    def n_skipped(self) -> int:
        return int(sum(sum(v.values()) for v in self.skipped.values()))

    def to_dict(self) -> dict[str, Any]:
        fields = {k: v for k, v in asdict(self).items() if k != "classes"}
        return {"source": "mmfi", **fields, "n_classes": len(self.classes), "n_windows": self.n_windows,
                "n_skipped": self.n_skipped}

    def __str__(self) -> str:
        step = f", frame step {self.frame_step}" if self.frame_step != 1 else ""
        out = [f"[mmfi] {self.n_windows} windows of {self.frames} frames (stride {self.stride}{step}) from "
               f"{self.root} -> {self.out} in {self.elapsed_s:.1f} s; split {self.split}, image source "
               f"{self.image_source}, {len(self.classes)} classes"]
        for s, n in self.windows.items():
            sk = self.skipped.get(s, {})
            out.append(f"[mmfi] {s}: {n} windows from {self.sequences.get(s, 0)} sequences, "
                       f"{len(self.subjects.get(s, []))} subjects; skipped {sum(sk.values())} windows"
                       + (f" {sk}" if sk else ""))
            if self.skipped_sequences.get(s):
                out.append(f"[mmfi] {s}: sequences without any window {self.skipped_sequences[s]}")
        notes = {k: v for k, v in self.notes.items() if v}
        if notes:
            out.append(f"[mmfi] notes {notes}")
        return "\n".join(out + [f"[mmfi]   e.g. {e}" for e in self.examples[:3]])


@contextmanager
def _opencv_silent() -> Iterator[None]:
    """OpenCV's own log lines off: the converter counts and names every frame OpenCV cannot read."""
    import cv2

    old = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(old)


def _decode(modality: str, path: Path, keypoints: bool, canvas: tuple[float, float], notes: Counter) -> np.ndarray:
    """Storage array of one frame file; MMFiError if it is corrupt."""
    if modality == "depth":
        return to_storage("depth", read_depth_png(path))
    if modality == "radar":
        h, n_out = radar_histogram(read_mmwave_bin(path))
        notes["radar_points_outside_axes"] += n_out
        if not h.any():
            notes["radar_empty_frames"] += 1
        return to_storage("radar", h)
    if keypoints:
        img, n_out = render_keypoints(read_keypoints(path), canvas)
        notes["keypoints_outside_canvas"] += n_out
        return to_storage("rgb", img)
    return to_storage("rgb", read_image(path))


def convert_mmfi(root: str | os.PathLike[str], out: str | os.PathLike[str], *, frames: int = 5,
                 stride: int | None = None, frame_step: int = 1, split: str = "admn",
                 environments: Sequence[str] | None = None, actions: Sequence[str] | str | None = None,
                 image_source: str = "auto", rgb_root: str | os.PathLike[str] | None = None,
                 keypoint_canvas: tuple[float, float] = DEFAULT_KEYPOINT_CANVAS,
                 val_subjects: Sequence[str] | None = None, rate_hz: float = DEFAULT_RATE_HZ, strict: bool = False,
                 overwrite: bool = False, progress: bool = True) -> ConvertSummary:
    """Convert an MM-Fi copy into an activity dataset in ``out``; the options are the CLI's
    (docs/MMFI.md). Raises FileNotFoundError, NotADirectoryError, MMFiError (naming the folder or
    file), FileExistsError or ValueError."""
    t0 = time.perf_counter()
    root_p, out_p = Path(root), Path(out)
    stride = frames * frame_step if stride is None else int(stride)
    for name, v in (("frames", frames), ("frame_step", frame_step), ("stride", stride)):
        check_index(name, v, lo=1)
    if image_source not in IMAGE_SOURCES:
        raise ValueError(f"image_source must be one of {list(IMAGE_SOURCES)}, got {image_source!r}")
    check_rate(rate_hz)
    if len(keypoint_canvas) != 2 or not all(0 < v < np.inf for v in keypoint_canvas):
        raise ValueError(f"keypoint_canvas must be (W, H), finite and > 0, got {keypoint_canvas!r}")
    classes, proto = _resolve_actions(actions)
    form = split_subjects(split, actions, val_subjects=val_subjects)
    rgb_root_p = None if rgb_root is None else Path(rgb_root)
    if rgb_root_p is not None and not rgb_root_p.is_dir():
        raise FileNotFoundError(f"anonymised RGB root not found: {rgb_root_p}")
    if root_p.exists() and out_p.resolve() in (root_p.resolve(), *(root_p.resolve() / e for e in ENVIRONMENTS)):
        raise ValueError(f"output {out_p} must not be the MM-Fi root or one of its environment folders")

    # which sequences exist and go where; every needed folder is checked before any decoding
    want = None if environments is None else list(dict.fromkeys(str(e).upper() for e in environments))
    seqs = scan_mmfi(root_p, want)
    envs_used = _sorted_dirs(root_p, "E") if want is None else want
    if not seqs:
        raise _err(root_p, f"no sequence folders <env>/S../A.. under environments {envs_used}")
    by_key = {(s.subject, s.action): s for s in seqs}
    plan: dict[str, list[SequenceDir]] = {}
    absent = 0
    empty: list[str] = []
    for name, subject_actions in form.items():   # the non-empty splits, in split order
        pairs = [(subj, a) for subj, al in subject_actions.items() for a in al]
        got = [by_key[p] for p in pairs if p in by_key]
        absent += len(pairs) - len(got)
        if not got:
            subs = sorted({p[0] for p in pairs})
            empty.append(f"split {name!r} has no sequences in this copy: it needs subjects {_short(subs)} "
                         f"(environments {sorted({SUBJECT_ENV[x] for x in subs})}) with actions "
                         f"{_short(sorted({p[1] for p in pairs}))}")
        plan[name] = sorted(got, key=lambda q: (q.env, q.subject, q.action))
    if empty:
        raise _err(root_p, f"{split} split: " + "; ".join(empty) + f"; present environments {envs_used}"
                           + " (choose another --split, --val-subjects, or convert a fuller copy)")
    chosen = [s for v in plan.values() for s in v]
    image_source = _resolve_image_source(image_source, chosen[0], rgb_root_p)
    keypoints = image_source == "keypoints"
    exts = {"rgb": ("npy",) if keypoints else _IMAGE_EXTS, "depth": ("png",), "radar": ("bin",)}
    files: dict[SequenceDir, dict[str, dict[int, Path]]] = {}
    for s in chosen:
        files[s] = {}
        for mod, d in _slot_folders(s, image_source, rgb_root_p).items():
            if not d.is_dir():
                present = sorted(e.name for e in os.scandir(s.path) if e.is_dir())
                what = f"{s.name}/{d.name}" if d.parent == s.path else str(d)
                raise _err(d, f"modality folder missing for {s.name}: {what} ({mod} slot, image source "
                              f"{image_source}); folders present: {present}")
            ff = _frame_files(d, exts[mod])
            if not ff:
                other = sorted({p.suffix for p in d.iterdir()})[:6]
                hint = ""
                if mod == "rgb" and not keypoints and ".npy" in other:
                    hint = ("; it holds .npy keypoints (the public release): use --image-source keypoints "
                            "(image_source='keypoints' in Python)")
                raise _err(d, f"no frameNNN.{'|'.join(exts[mod])} files in {s.name}/{d.name} (suffixes found: "
                              f"{other}){hint}")
            files[s][mod] = ff

    summary = ConvertSummary(str(root_p), str(out_p), split, image_source, frames, stride, classes,
                             frame_step=frame_step)
    notes = Counter(sequences_absent=absent)
    extra = {
        "mmfi": {
            "root": str(root_p), "split": split, "protocol": proto, "actions": classes,
            "class_descriptions": [MMFI_ACTIONS[a] for a in classes],
            "environments": envs_used, "image_source": image_source,
            "image_folder": "rgb" if keypoints else str(rgb_root_p) if rgb_root_p is not None else RGB_IMAGE_DIR,
            "keypoint_canvas": list(keypoint_canvas) if keypoints else None,
            "radar_axes": {"rows": f"range sqrt(x^2+y^2+z^2) in [0, {RADAR_RANGE_MAX_M}) m, row 0 nearest",
                           "cols": f"doppler (4th value) in [-{RADAR_DOPPLER_MAX_MPS}, {RADAR_DOPPLER_MAX_MPS}) m/s, "
                                   "column 0 = most negative", "norm": "per-frame maximum -> 1"},
            "stride": stride, "frame_step": frame_step,
            "split_subjects": {k: sorted(form.get(k, {})) for k in plan},
            "rate_hz_assumed": rate_hz,
        },
    }
    seq_index: dict[str, list[dict[str, Any]]] = {}
    span = (frames - 1) * frame_step + 1
    starts = {s: range(min(map(min, files[s].values())), max(map(max, files[s].values())) - span + 2, stride)
              for s in chosen}
    sizes = {name: sum(len(starts[s]) for s in seq_list) for name, seq_list in plan.items()}
    # a failed conversion leaves no half-written dataset behind (the writer aborts)
    with ActivityWriter(out_p, classes, frames, rate_hz, "mmfi", sizes, extra, overwrite) as writer, _opencv_silent():
        for name, seq_list in plan.items():
            skipped: Counter = Counter()
            skipped_seq: Counter = Counter()
            subjects: set[str] = set()
            seq_index[name] = []
            for s in progress_bar(progress, len(seq_list), "seq", f"mmfi {name}", seq_list):
                w, reasons = _convert_sequence(s, files[s], starts[s], span, frame_step, classes.index(s.action),
                                               int(s.subject[1:]), rate_hz, name, writer, keypoints, keypoint_canvas,
                                               strict, notes, summary.examples)
                skipped.update(reasons)
                if w:
                    subjects.add(s.subject)
                    seq_index[name].append({"seq": s.name, "windows": w})
                else:
                    skipped_seq["short_sequence" if reasons.get("short_sequence") else "all_windows_dropped"] += 1
            n_written = sum(e["windows"] for e in seq_index[name])
            if n_written == 0:
                raise _err(root_p, f"split {name!r} has no windows: all {len(seq_list)} sequences were dropped "
                                   f"({dict(skipped)}); e.g. {summary.examples[:2]}")
            summary.windows[name] = n_written
            summary.sequences[name] = len(seq_list)
            summary.subjects[name] = sorted(subjects)
            summary.skipped[name] = dict(sorted(skipped.items()))
            summary.skipped_sequences[name] = dict(sorted(skipped_seq.items()))
        summary.notes = {k: int(v) for k, v in sorted(notes.items())}
        summary.elapsed_s = round(time.perf_counter() - t0, 3)
        writer.extra_meta.update(conversion=summary.to_dict(), mmfi_sequences=seq_index)
        writer.close()
    if progress:
        print(summary)
    return summary


def _short(items: Sequence[str], n: int = 10) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _convert_sequence(s: SequenceDir, files: Mapping[str, Mapping[int, Path]], starts: range, span: int,
                      frame_step: int, label: int, subject: int, rate_hz: float, split: str, writer: ActivityWriter,
                      keypoints: bool, keypoint_canvas: tuple[float, float], strict: bool, notes: Counter,
                      examples: list[str]) -> tuple[int, Counter]:
    """Write the windows of one sequence; returns (windows written, skipped windows per reason)."""
    if not starts:
        if len(examples) < 10:
            examples.append(f"{s.path}: only {starts.stop - starts.start + span - 1} frames, a window spans {span}")
        return 0, Counter(short_sequence=1)
    reasons: Counter = Counter()
    cache: dict[tuple[str, int], np.ndarray] = {}
    bad: dict[int, str] = {}

    def drop_reason(n: int) -> str | None:
        """Decode frame ``n`` of every slot into ``cache``; why a window holding it is dropped, if it is."""
        for mod in MODALITY_NAMES:
            if n in bad or (mod, n) in cache:
                continue
            try:
                cache[mod, n] = _decode(mod, files[mod][n], keypoints, keypoint_canvas, notes)
                continue
            except KeyError:
                path = next(iter(files[mod].values())).parent / _frame_name(n, files[mod])
                if strict:
                    raise _err(path, f"frame {n} of {s.name} missing from {path.parent.name}/ (strict)") from None
                bad[n], msg = f"missing:{mod}", f"{path}: frame {n} missing"
            except MMFiError as exc:
                if strict:
                    raise
                bad[n], msg = f"corrupt:{mod}", str(exc)
            if len(examples) < 10:
                examples.append(msg)
        return bad.get(n)

    kept: list[range] = []
    for st in starts:
        win = range(st, st + span, frame_step)
        # a frame already known to be bad drops the window before its other frames are decoded
        reason = next((bad[n] for n in win if n in bad), None) or next(filter(None, map(drop_reason, win)), None)
        if reason is None:
            kept.append(win)
        else:
            reasons[reason] += 1
    if kept:
        windows = {mod: np.stack([np.stack([cache[mod, n] for n in win]) for win in kept])
                   for mod in MODALITY_NAMES}
        writer.add(split, **windows, label=np.full(len(kept), label, np.int64),
                   subject=np.full(len(kept), subject, np.int32),
                   t=np.asarray([(win.start - starts.start) / rate_hz for win in kept], np.float32))
    return len(kept), reasons


def _frame_name(n: int, existing: Mapping[int, Path]) -> str:
    """The name frame ``n`` would have in a folder (same digits and extension as its files)."""
    digits, ext = _FRAME_RE.match(next(iter(existing.values())).name).groups()  # type: ignore[union-attr]
    return f"frame{n:0{len(digits)}d}.{ext}"


def main(argv: list[str] | None = None) -> int:
    """``admn-ros convert-mmfi``: 0 on success, 2 with a one-line error otherwise."""
    p = argparse.ArgumentParser(
        prog="admn-ros convert-mmfi",
        description="Convert an MM-Fi copy (ROOT/E01/S01/A01/{rgb,depth,mmwave,...}/frameNNN.*) into our activity "
                    "dataset format (docs/MMFI.md).")
    p.add_argument("root", help="MM-Fi root holding E01 ... E04")
    p.add_argument("--out", required=True, help="output dataset directory (e.g. data/mmfi_xsub)")
    p.add_argument("--frames", type=int, default=5, help="frames per window (default 5)")
    p.add_argument("--stride", type=int, default=None,
                   help="frames between window starts (default = frames x frame-step: non-overlapping)")
    p.add_argument("--frame-step", type=int, default=1, help="frames between a window's frames (default 1)")
    p.add_argument("--split", choices=SPLIT_KINDS, default="admn",
                   help="admn (the ADMN paper's subjects, default), or MM-Fi's cross_subject, random, "
                        "cross_environment")
    p.add_argument("--environments", nargs="+", default=None, metavar="E0N", help="only these environments")
    p.add_argument("--actions", nargs="+", default=None, metavar="A",
                   help="action codes (class order) or one of protocol1 protocol2 protocol3 (default all 27)")
    p.add_argument("--image-source", choices=IMAGE_SOURCES, default="auto",
                   help="rgb slot: rgb (anonymised images), keypoints (rgb/*.npy drawn as a stick figure) "
                        "or auto (default)")
    p.add_argument("--rgb-root", default=None, help="extracted anonymised RGB download (E01/S01/A01/rgb/*.png)")
    p.add_argument("--keypoint-canvas", nargs=2, type=float, default=list(DEFAULT_KEYPOINT_CANVAS),
                   metavar=("W", "H"), help="image size the keypoints are given in (default 640 480)")
    p.add_argument("--val-subjects", nargs="*", default=None, metavar="S",
                   help="training subjects held out as val (default one per environment; the flag with no "
                        "subject: no val split)")
    p.add_argument("--rate-hz", type=float, default=DEFAULT_RATE_HZ, help="frame rate (default 10)")
    p.add_argument("--strict", action="store_true", help="a missing or corrupt frame is an error")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    a = p.parse_args(argv)
    return cli_exit_code(lambda: convert_mmfi(
        a.root, a.out, frames=a.frames, stride=a.stride, frame_step=a.frame_step, split=a.split,
        environments=a.environments, actions=a.actions, image_source=a.image_source, rgb_root=a.rgb_root,
        keypoint_canvas=(float(a.keypoint_canvas[0]), float(a.keypoint_canvas[1])),
        val_subjects=a.val_subjects, rate_hz=a.rate_hz, strict=a.strict, overwrite=a.overwrite, progress=not a.quiet))
