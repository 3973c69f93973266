"""The activity runtime the ROS activity node calls (rclpy-free): a sliding window of F
frames, one layer allocation per window and stream, class probabilities.

::

    rt = ActivityRuntime.load("models/activity")         # activity model + controllers
    win = FrameWindow(rt.frames, rt.stream_ids)
    for stamp_ns, raw in frames:                          # raw: sid -> sensor array (or None)
        win.push(stamp_ns, {sid: rt.preprocess(sid, a) for sid, a in raw.items() if a is not None})
        if win.full:
            res = rt.classify(win, budget=9)               # res.class_name, res.probs, res.allocation

Window semantics (the paper's space-time ADMN with the controller of this package):

* a window holds the newest ``F`` frames; a frame may lack some streams (a dropped or late
  message): those (frame, stream) tokens are masked in the fusion, never zero-filled;
* the controller judges each stream on its newest frame in the window and decides one
  allocation per stream for the whole window (the budget ``L`` counts the blocks of the
  window's streams; the compute is ``F x`` that);
* a stream with no data in any frame of the window gets 0 blocks;
* backbone embeddings are cached per (frame, stream) together with the allocation row
  they were computed with, so when the allocation does not change between windows a new
  frame costs one backbone pass per stream instead of ``F``.

Model directory: as :class:`~admn_ros.core.runtime.TrackingRuntime` (same files, same
errors), but the ``stage1`` checkpoint must be an ``activity`` model; class names come from
its metadata (``classes``), else ``class_<k>``.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from admn_ros.core.runtime import Allocation, TrackingRuntime
from admn_ros.core.streams import split_stream_id


@dataclass
class WindowFrame:
    """One frame of a window: model inputs per stream and the embedding cache."""

    seq: int
    stamp_ns: int
    inputs: dict[str, np.ndarray]
    #: sid -> (allocation row as bytes, embedding)
    cache: dict[str, tuple[bytes, np.ndarray]] = field(default_factory=dict)


class FrameWindow:
    """The newest ``frames`` frames of a set of streams (a sliding window, oldest first).

    Args:
        frames: window length ``F``.
        stream_ids: the streams a frame may carry (others are rejected).
    """

    def __init__(self, frames: int, stream_ids: Sequence[str]) -> None:
        if int(frames) < 1:
            raise ValueError(f"a window needs at least 1 frame, got {frames}")
        self.frames = int(frames)
        self.stream_ids = list(stream_ids)
        self._known = set(self.stream_ids)
        self._buf: deque[WindowFrame] = deque(maxlen=self.frames)
        self._seq = 0

    def push(self, stamp_ns: int, inputs: Mapping[str, np.ndarray | None]) -> WindowFrame:
        """Append a frame (``sid -> model input``; ``None`` or absent = no data for that stream).

        Raises ``ValueError`` for an unknown stream or a stamp older than the newest frame.
        """
        unknown = sorted(set(inputs) - self._known)
        if unknown:
            raise ValueError(f"unknown stream(s) {unknown}; window streams: {self.stream_ids}")
        if self._buf and int(stamp_ns) < self._buf[-1].stamp_ns:
            raise ValueError(f"frame stamp {stamp_ns} is older than the newest frame in the window "
                             f"({self._buf[-1].stamp_ns})")
        f = WindowFrame(self._seq, int(stamp_ns), {k: v for k, v in inputs.items() if v is not None})
        self._seq += 1
        self._buf.append(f)
        return f

    def clear(self) -> None:
        self._buf.clear()

    @property
    def full(self) -> bool:
        return len(self._buf) == self.frames

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def items(self) -> list[WindowFrame]:
        """Frames, oldest first."""
        return list(self._buf)

    def newest_inputs(self) -> dict[str, np.ndarray]:
        """Per stream its newest input in the window (what the controller judges)."""
        out: dict[str, np.ndarray] = {}
        for f in reversed(self._buf):
            for sid, x in f.inputs.items():
                out.setdefault(sid, x)
        return out

    def present(self) -> np.ndarray:
        """bool ``[F, n]``: which (frame, stream) has data; missing leading frames are False."""
        p = np.zeros((self.frames, len(self.stream_ids)), bool)
        off = self.frames - len(self._buf)
        for k, f in enumerate(self._buf):
            for i, sid in enumerate(self.stream_ids):
                p[off + k, i] = sid in f.inputs
        return p


@dataclass
class ActivityResult:
    """One window's classification.

    Attributes:
        class_id / class_name / confidence: the top class and its probability.
        probs: float32 ``[K]`` class probabilities (softmax).
        classes: class names (index order).
        allocation: the window's :class:`~admn_ros.core.runtime.Allocation` (stream order).
        present: bool ``[F, n]`` tokens with data.
        computed: backbone passes run for this window (the rest came from the cache).
        ms: total time of :meth:`ActivityRuntime.classify`.
        stamp_ns: stamp of the newest frame.
    """

    class_id: int
    class_name: str
    confidence: float
    probs: np.ndarray
    classes: list[str]
    allocation: Allocation
    present: np.ndarray
    computed: int
    ms: float
    stamp_ns: int


class ActivityRuntime(TrackingRuntime):
    """Activity model + controllers of a model directory; see the module docstring."""

    TASK = "activity"

    @property
    def frames(self) -> int:
        return int(self.cfg.frames)

    @property
    def classes(self) -> list[str]:
        names = list(self.meta.get("classes") or [])
        if len(names) != self.cfg.n_classes:
            names = [f"class_{k}" for k in range(self.cfg.n_classes)]
        return names

    def describe(self) -> str:
        return f"{super().describe()}; window {self.frames} frames, {self.cfg.n_classes} classes"

    def warmup(self, parts: Any = ("allocate", "embed", "fuse")) -> None:
        """Build the engines now (the first window then does not pay for it)."""
        self._main_engine()
        for c in self._ctrl:
            self._ctrl_engine(c)
        win = FrameWindow(self.frames, self.stream_ids)
        for k in range(self.frames):
            win.push(k, {s: np.zeros((self.cfg.channels(split_stream_id(s)[1]), self.cfg.img_size,
                                      self.cfg.img_size), np.float32) for s in self.stream_ids})
        lo, hi = self.budget_range()
        self.classify(win, max(lo, hi // 4))

    def classify(self, window: FrameWindow, budget: int, policy: str = "admn") -> ActivityResult:
        """Allocate (controller on each stream's newest frame), embed every (frame, stream)
        with the window's allocation (cached when unchanged), fuse and classify.

        ``policy``: ``"admn"`` (the controllers), or the baselines ``"naive"`` /
        ``"upper_bound"`` of :meth:`~admn_ros.core.runtime.TrackingRuntime.allocate`.

        Raises:
            ValueError: empty window, no stream with data, budget out of range, bad input shape.
        """
        import torch

        t0 = time.perf_counter()
        frames = window.items
        if not frames:
            raise ValueError("empty window: push frames first")
        if list(window.stream_ids) != list(self.stream_ids):
            raise ValueError(f"window streams {window.stream_ids} != model streams {self.stream_ids}")
        newest = window.newest_inputs()
        if not newest:
            raise ValueError("no stream has data in the window")
        alloc = self.allocate(newest, budget, policy)
        n, f_total = len(self.stream_ids), self.frames
        present = window.present()
        off = f_total - len(frames)
        emb = np.zeros((f_total, n, self.embed_dim), np.float32)
        todo: dict[str, list[tuple[int, int, str, np.ndarray, np.ndarray]]] = {}
        for k, fr in enumerate(frames):
            for i, sid in enumerate(self.stream_ids):
                x = fr.inputs.get(sid)
                row = alloc.mask[i]
                if x is None or not row.any():
                    present[off + k, i] = False
                    continue
                key = row.tobytes()
                hit = fr.cache.get(sid)
                if hit is not None and hit[0] == key:
                    emb[off + k, i] = hit[1]
                    continue
                todo.setdefault(split_stream_id(sid)[1], []).append((off + k, i, sid, x, row))
        computed = 0
        eng = self._main_engine()
        for mod, items in todo.items():
            xs = np.stack([np.asarray(it[3], np.float32) for it in items])
            want = (self.cfg.channels(mod), self.cfg.img_size, self.cfg.img_size)
            if xs.shape[1:] != want:
                raise ValueError(f"{mod}: model input must have shape {want}, got {xs.shape[1:]}")
            e = eng.embed(mod, torch.from_numpy(xs), np.stack([it[4] for it in items])).cpu().numpy()
            computed += len(items)
            for (fi, i, sid, _, row), v in zip(items, e):
                emb[fi, i] = v
                frames[fi - off].cache[sid] = (row.tobytes(), v.astype(np.float32))
        if not present.any():
            raise ValueError("no (frame, stream) with data and blocks in the window")
        out = eng.fuse(torch.from_numpy(emb.reshape(1, f_total * n, -1)),
                       torch.from_numpy(present.reshape(1, -1)))
        logits = out["logits"][0].double()
        probs = torch.softmax(logits, -1).numpy().astype(np.float32)
        k = int(probs.argmax())
        names = self.classes
        return ActivityResult(k, names[k], float(probs[k]), probs, names, alloc, present, computed,
                              (time.perf_counter() - t0) * 1e3, frames[-1].stamp_ns)


def activity_label_fields(classes: Sequence[str], probs: Sequence[float] | np.ndarray,
                          window_frames: int = 0) -> dict[str, Any]:
    """The fields of an ``admn_ros/ActivityLabel`` for class probabilities (model index order).

    ``class_id`` / ``class_name`` / ``confidence`` are the top class; ``class_names`` and
    ``scores`` (float32) list every class in score order (highest first, ties by class
    index). One place for the ROS message (:func:`admn_ros.ros.convert.make_activity_label`)
    and the bag message (:func:`admn_ros.bags.msgs.activity_label`).

    Raises ``ValueError`` if the sizes differ, a probability is not finite or negative,
    or a count does not fit the message's uint16 fields.
    """
    names = [str(c) for c in classes]
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.shape != (len(names),) or not names:
        raise ValueError(f"{p.size} probabilities for {len(names)} classes")
    if len(names) >= 2**16:
        raise ValueError(f"{len(names)} classes do not fit ActivityLabel.class_id (uint16)")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("class probabilities must be finite and >= 0")
    if not 0 <= int(window_frames) < 2**16:
        raise ValueError(f"window_frames {window_frames} out of range for uint16")
    order = np.argsort(-p, kind="stable")
    return {"class_id": int(order[0]), "class_name": names[int(order[0])], "confidence": float(p[order[0]]),
            "class_names": [names[int(i)] for i in order], "scores": p[order].astype(np.float32),
            "window_frames": int(window_frames)}


def write_random_activity_models(model_dir: Any, frames: int = 4, classes: Sequence[str] | None = None,
                                 seed: int = 0, budgets: Sequence[int] = (9,)) -> dict[str, Any]:
    """Untrained activity model + universal/per-budget controllers with the trainers' metadata
    (tests and benchmarks before trained models exist)."""
    from pathlib import Path

    from admn_ros.core.checkpoint import read_metadata, save_checkpoint
    from admn_ros.core.runtime import write_random_models

    names = list(classes or [f"class_{k}" for k in range(10)])
    out = write_random_models(model_dir, ("node1",), seed=seed, budgets=budgets, task="activity",
                              frames=frames, n_classes=len(names))
    # re-save the stage-1 file under the activity name with the class names
    src = Path(out["model"])
    from admn_ros.core.checkpoint import load_checkpoint

    ck = load_checkpoint(src, kind="stage1", with_optimizer=False)
    meta = {k: v for k, v in ck.meta.items() if k in ("model_config", "train_config", "stage", "epoch", "metrics")}
    meta["classes"] = names
    dst = src.with_name("activity.safetensors")
    save_checkpoint(dst, kind="stage1", state_dict=ck.tensors, meta=meta)
    src.unlink()
    assert read_metadata(dst)["weights_id"] == ck.meta["weights_id"]
    out["model"] = dst
    return out
