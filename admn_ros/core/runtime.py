"""The runtime every consumer of trained models calls (rclpy-free; importing it does not import torch):
docs/ARCHITECTURE.md, "Runtime and replay"."""
from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from admn_ros.core.streams import (POLICIES, StreamSet, budget_range, naive_allocation, split_stream_id,
                                  validate_budget)
from admn_ros.core.tasks import DEFAULT_TASK, get_task
from admn_ros.core.tasks.base import KeysAsAttributes

UNIVERSAL, NAIVE, NONE = "admn_universal", "naive", "none"   # Allocation.controller besides admn_L<budget>


@dataclass
class Allocation:
    """One window's layer allocation: ``mask`` bool ``(n_streams, DEPTH)`` in stream order (missing
    streams all False), ``present`` bool ``(n_streams,)``, ``est_noise`` float32 sigma per stream
    (NaN = unknown), ``controller`` who decided (``admn_universal``, ``admn_L<budget>``, ``naive``,
    ``none``), ``ms`` decision time, ``budget`` the ``L`` asked for."""

    mask: np.ndarray
    present: np.ndarray
    est_noise: np.ndarray
    controller: str
    ms: float
    budget: int


@dataclass
class Result(KeysAsAttributes):
    """What the whole graph computes for one window: the :class:`Allocation`, the task's
    ``estimate`` (its keys are also attributes: ``res.mean``, ``res.class_name``), ``present``
    bool ``[F, n]`` tokens with data and blocks, ``computed`` backbone passes run (the rest came
    from the cache), ``ms``, the newest frame's ``stamp_ns`` and ``embeddings`` (``sid -> (D,)``),
    ``extra`` CSV columns by name (e.g. ``gflops``)."""

    allocation: Allocation
    estimate: dict[str, Any]
    present: np.ndarray | None = None
    computed: int = 0
    ms: float = 0.0
    stamp_ns: int = 0
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    _KEYS_OF = "estimate"


@dataclass
class WindowFrame:
    """One frame of a window: model inputs per stream and the embedding cache."""

    stamp_ns: int
    inputs: dict[str, np.ndarray]
    cache: dict[str, tuple[bytes, np.ndarray]] = field(default_factory=dict)   # sid -> (allocation row, embedding)


class FrameWindow:
    """The newest ``frames`` frames of the streams ``stream_ids`` (a sliding window, oldest first)."""

    def __init__(self, frames: int, stream_ids: Sequence[str]) -> None:
        if int(frames) < 1:
            raise ValueError(f"a window needs at least 1 frame, got {frames}")
        self.frames = int(frames)
        self.stream_ids = list(stream_ids)
        self._buf: deque[WindowFrame] = deque(maxlen=self.frames)

    def push(self, stamp_ns: int, inputs: Mapping[str, np.ndarray | None]) -> WindowFrame:
        """Append a frame (``sid -> model input``; ``None`` or absent = no data); ``ValueError`` for an
        unknown stream or a stamp older than the newest frame."""
        unknown = sorted(set(inputs) - set(self.stream_ids))
        if unknown:
            raise ValueError(f"unknown stream(s) {unknown}; window streams: {self.stream_ids}")
        if self._buf and int(stamp_ns) < self._buf[-1].stamp_ns:
            raise ValueError(f"frame stamp {stamp_ns} is older than the newest frame in the window "
                             f"({self._buf[-1].stamp_ns})")
        f = WindowFrame(int(stamp_ns), {k: v for k, v in inputs.items() if v is not None})
        self._buf.append(f)
        return f

    def clear(self) -> None:
        self._buf.clear()

    def forget(self, sids: Iterable[str]) -> None:
        """Drop the inputs (and cached embeddings) of ``sids`` from every frame: they are then
        absent from the whole window (a frozen or stalled stream's recent content is not trusted)."""
        for sid in sids:
            for f in self._buf:
                f.inputs.pop(sid, None)
                f.cache.pop(sid, None)

    @property
    def full(self) -> bool:
        return len(self._buf) == self.frames

    def __len__(self) -> int:
        return len(self._buf)

    @property
    def items(self) -> list[WindowFrame]:
        return list(self._buf)

    def newest_inputs(self) -> dict[str, np.ndarray]:
        """Per stream its newest input in the window (what the controller judges)."""
        return {sid: x for f in self._buf for sid, x in f.inputs.items()}


@dataclass
class _ControllerEntry:
    path: Path
    budget: int | None       # None: the universal controller
    controller: Any          # AllocationController
    engine: Any = None       # InferenceEngine (built lazily)

    @property
    def name(self) -> str:
        return UNIVERSAL if self.budget is None else f"admn_L{self.budget}"


class Runtime:
    """Model + controllers of one model directory and the pipeline parts; build with :meth:`load`.
    ``skipped``: ``[(path, why)]`` files present but not used; ``engine_backend``: the backend in
    use after :meth:`warmup` (``auto`` resolved)."""

    def __init__(self, model_path: Path, model: Any, controllers: dict[int | None, _ControllerEntry],
                 skipped: list[tuple[Path, str]], meta: Mapping[str, Any], backend: str, device: str,
                 threads: int) -> None:
        self.model_path = model_path
        self.model = model.eval()
        self.cfg = model.cfg
        self.task = get_task(self.cfg.task)
        self.labels: list[str] = self.task.labels(self.cfg, meta)
        self.streams: StreamSet = self.cfg.streams
        self.stream_ids: list[str] = self.streams.ids
        self.depth, self.embed_dim = int(self.cfg.vit_depth), int(self.cfg.vit_dim)
        self._ctrl, self.skipped = controllers, skipped   # budget (None: universal) -> controller
        self.backend, self.device, self.threads = backend, device, threads
        self._engine: Any = None

    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "auto", device: str = "cpu", *,
             task: str | None = None, threads: int = 1, streams: StreamSet | Sequence[str] | None = None
             ) -> "Runtime":
        """Load the stage-1 model of ``task`` (``None``: the directory's one task) in ``model_dir`` and its
        controllers. ``backend``: of backbones and fusion (``auto`` times torch and onnx at warm-up;
        controllers run on torch: compiling a ~2 ms controller would re-export every backbone);
        ``streams``: the stream set (or node names) the caller expects. Of several stage-1 models
        the one most controllers were trained on is used (a tie is an error); a controller of
        another stage-1 model of the directory is skipped, one of a model not in it is an error. Raises
        :class:`~admn_ros.core.checkpoint.CheckpointError` naming the file and the problem."""
        import torch

        from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, read_metadata, stored_config
        from admn_ros.core.controller import AllocationController, ControllerConfig
        from admn_ros.core.engine import BACKENDS
        from admn_ros.core.model import ADMNConfig, ADMNModel
        from admn_ros.core.preprocess import MODEL_INPUT

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        torch.set_num_threads(max(1, int(threads)))
        d = Path(model_dir).expanduser()
        if not d.is_dir():
            raise CheckpointError(f"{d}: model directory not found (train models with `admn-ros train` "
                                  "or set the model_dir parameter)")
        files = sorted(d.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{d}: no *.safetensors checkpoints in the model directory")
        metas: dict[Path, dict[str, Any]] = {f: read_metadata(f) for f in files}  # corrupt file -> raises
        tasks = {f: (m.get("model_config") or {}).get("task", DEFAULT_TASK) for f, m in metas.items()
                 if m.get("kind") == "stage1"}
        if task is None and len(set(tasks.values())) > 1:
            raise CheckpointError(f"{d}: stage1 models of several tasks {sorted(set(tasks.values()))}; choose one "
                                  "with task")
        want = get_task(task if task is not None else next(iter(tasks.values()), None)).name
        mains = [f for f, t in tasks.items() if t == want]
        ctrls = [f for f, m in metas.items() if m.get("kind") == "controller"]
        skipped: list[tuple[Path, str]] = [
            (f, f"stage1 model for task {tasks[f]!r}, not {want}" if f in tasks
             else f"checkpoint kind {m.get('kind')!r} is not used by the runtime")
            for f, m in metas.items() if f not in mains and f not in ctrls]
        if not mains:
            kinds = sorted({str(m.get('kind')) for m in metas.values()})
            raise CheckpointError(f"{d}: no stage1 {want} model (e.g. {get_task(want).model_file}) among "
                                  f"{len(files)} checkpoint(s) (kinds found: {kinds})")
        votes = Counter(metas[c].get("stage1_weights_id") for c in ctrls)   # stage-1 weights id -> controllers
        score = {f: votes[metas[f].get("weights_id")] for f in mains}
        main, *rest = sorted(mains, key=lambda f: -score[f])
        if rest and score[rest[0]] == score[main]:
            raise CheckpointError(f"{d}: several stage1 {want} models {[f.name for f in mains]} and the "
                                  "controllers do not single one out; keep one of them in the directory")
        mmeta = metas[main]
        mcfg = stored_config(main, mmeta, "model_config", ADMNConfig)
        if mcfg.img_size != MODEL_INPUT:
            raise CheckpointError(f"{main}: model_config.img_size {mcfg.img_size} != {MODEL_INPUT} "
                                  "(the preprocessing output size)")
        if streams is not None:
            want = streams if isinstance(streams, StreamSet) else StreamSet(tuple(streams), mcfg.modalities)
            if tuple(want.ids) != tuple(mcfg.streams.ids):
                raise CheckpointError(f"{main}: stream set mismatch: model streams {mcfg.streams.ids} != "
                                      f"configured streams {want.ids}")
        model = ADMNModel(mcfg)
        load_checkpoint(main, kind="stage1", with_optimizer=False).load_into(model)
        wid = mmeta.get("weights_id")
        others = {m.get("weights_id"): f.name for f, m in metas.items() if m.get("kind") == "stage1" and f != main}
        used: dict[int | None, _ControllerEntry] = {}   # one universal, one per budget: the first file name wins
        for f in ctrls:
            m = metas[f]
            parent = m.get("stage1_weights_id")
            if parent and wid and parent != wid:
                if parent not in others:   # its own stage-1 network is not here: the pair is broken
                    raise CheckpointError(
                        f"{f}: controller trained for a different stage-1 network (stage1_weights_id {parent}), "
                        f"not for {main.name} (weights_id {wid}); train it again on this model "
                        f"(`admn-ros train stage2 --stage1 {main}`) or remove it from {d}")
                skipped.append((f, f"controller of {others[parent]} (stage1 weights {parent}), model {main.name} "
                                   f"is {wid}"))
                continue
            ccfg = stored_config(f, m, "controller_config", ControllerConfig)
            got = (tuple(ccfg.nodes), tuple(ccfg.modalities), ccfg.depth, ccfg.img_size, ccfg.first_block)
            exp = (tuple(mcfg.nodes), tuple(mcfg.modalities), mcfg.vit_depth, mcfg.img_size, mcfg.first_block)
            if got != exp:
                names = ("nodes", "modalities", "depth", "img_size", "first_block")
                diff = "; ".join(f"{n} {g!r} != model {e!r}" for n, g, e in zip(names, got, exp) if g != e)
                raise CheckpointError(f"{f}: stream set mismatch with {main.name}: {diff}")
            if ccfg.autoencoder or m.get("variant") == "ae":
                # ADMN_AE is the evaluation baseline without noise labels; the runtime uses
                # the supervised controllers (select on the variant, not the file name).
                skipped.append((f, "autoencoder (ADMN_AE) baseline controller is not used at runtime"))
                continue
            ctrl = AllocationController(ccfg)
            load_checkpoint(f, kind="controller", with_optimizer=False).load_into(ctrl)
            key = None if ccfg.universal else int(ccfg.budget)
            if key in used:
                what = "universal controller" if key is None else f"controller for budget {key}"
                skipped.append((f, f"another {what} ({used[key].path.name}) is used"))
            else:
                used[key] = _ControllerEntry(f, key, ctrl.eval())
        return cls(main, model, used, skipped, mmeta, backend, device, threads)

    @property
    def controllers(self) -> dict[str, Path]:
        return {c.name: c.path for c in self._ctrl.values()}

    @property
    def budget_controllers(self) -> dict[int | None, Any]:
        """Budget (``None``: the universal one) -> its AllocationController."""
        return {k: c.controller for k, c in self._ctrl.items()}

    @property
    def frames(self) -> int:
        """Window length ``F`` (1 for tracking)."""
        return int(self.cfg.frames)

    def describe(self) -> str:
        """One line for logs: model, controllers, backend, window."""
        ctrl = ", ".join(sorted(self.controllers)) or "none (naive allocation)"
        return (f"{self.task.name} model {self.model_path.name} ({len(self.stream_ids)} streams, D={self.embed_dim}); "
                f"controllers: {ctrl}; backend {self.engine_backend}; window {self.frames} frame(s)"
                + (f", {len(self.labels)} classes" if self.labels else ""))

    @property
    def engine_backend(self) -> str:
        return self._engine.backend if self._engine is not None else self.backend

    def index(self, sid: str) -> int:
        return self.streams.index(sid)

    def budget_range(self) -> tuple[int, int]:
        """``(lo, hi)`` valid budgets of these streams (:func:`~admn_ros.core.streams.budget_range`)."""
        return budget_range(len(self.stream_ids), self.depth, self.cfg.first_block)

    def _new_engine(self, controller: Any = None) -> Any:
        """The engine of ``controller`` (on torch), or without one the backbones' and fusion's."""
        from admn_ros.core.engine import InferenceEngine

        return InferenceEngine(self.model, controller, backend="torch" if controller is not None else self.backend,
                               threads=self.threads, device=self.device)

    def _main_engine(self) -> Any:
        self._engine = self._engine or self._new_engine()
        return self._engine

    def _ctrl_engine(self, entry: _ControllerEntry) -> Any:
        entry.engine = entry.engine or self._new_engine(entry.controller)
        return entry.engine

    def warmup(self, parts: Iterable[str] = ("allocate", "embed", "fuse")) -> None:
        """Build the engines ``parts`` need now (``auto`` times the backends here), so the
        first frame does not pay for it."""
        parts = set(parts)
        unknown = parts - {"allocate", "embed", "fuse"}
        if unknown:
            raise ValueError(f"unknown runtime parts {sorted(unknown)}; known: allocate, embed, fuse")
        # one dummy frame so lazy allocations (thread pools, ORT arenas) happen now
        x = {s: np.zeros((self.cfg.channels(split_stream_id(s)[1]), self.cfg.img_size, self.cfg.img_size),
                         np.float32) for s in self.stream_ids}
        lo, hi = self.budget_range()
        if "allocate" in parts:
            for c in self._ctrl.values():
                self._ctrl_engine(c)
                self.allocate(x, c.budget if c.budget is not None else max(lo, hi // 4))
        if "embed" in parts:
            self.embed(self.stream_ids, x, np.ones((len(self.stream_ids), self.depth), bool))
        if "fuse" in parts:
            self._fuse(np.zeros((self.frames, len(self.stream_ids), self.embed_dim), np.float32),
                       np.ones((self.frames, len(self.stream_ids)), bool))

    def preprocess(self, sid: str, array: np.ndarray) -> np.ndarray:
        """Raw sensor array -> float32 ``(C, 64, 64)`` in [0, 1] for stream ``sid`` (depth NaN/inf become 0).
        Raises ``ValueError`` naming the stream and the problem (radar NaN/inf: a
        :class:`~admn_ros.core.image_convert.ConversionError` with reason ``non_finite``)."""
        from admn_ros.core.preprocess import to_model_input

        _, mod = split_stream_id(sid)
        self.index(sid)
        a = np.asarray(array)
        if mod == "radar" and a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
            from admn_ros.core.image_convert import ConversionError

            n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ConversionError("non_finite", f"{sid}: radar heatmap contains {n_bad} NaN/inf value(s)")
        try:
            return to_model_input(mod, a)
        except ValueError as exc:
            raise ValueError(f"{sid}: {exc}") from None

    def _batch(self, inputs: Mapping[str, np.ndarray | None]) -> tuple[dict[str, Any], np.ndarray]:
        import torch

        cfg = self.cfg
        s, size = len(cfg.nodes), cfg.img_size
        present = np.zeros(len(self.stream_ids), bool)
        xs = {m: np.zeros((1, s, cfg.channels(m), size, size), np.float32) for m in cfg.modalities}
        for sid, x in inputs.items():
            i = self.index(sid)
            if x is None:
                continue
            node_i, mod_i = divmod(i, len(cfg.modalities))
            xs[cfg.modalities[mod_i]][0, node_i] = self._input(sid, x)
            present[i] = True
        return {m: torch.from_numpy(v) for m, v in xs.items()}, present

    def _input(self, sid: str, x: Any) -> np.ndarray:
        """Stream ``sid``'s model input as float32; ``ValueError`` naming the stream unless it is ``(C, H, W)``."""
        want = (self.cfg.channels(split_stream_id(sid)[1]), self.cfg.img_size, self.cfg.img_size)
        if tuple(np.shape(x)) != want:
            raise ValueError(f"{sid}: model input must have shape {want}, got {tuple(np.shape(x))}")
        return np.asarray(x, np.float32)

    def allocate(self, inputs: Mapping[str, np.ndarray | None], budget: int, policy: str = "admn") -> Allocation:
        """Per-stream layer allocation for one frame (``sid -> (C, 64, 64)``, ``None``/absent = missing)
        within ``budget`` active blocks (forced first blocks included). ``policy``: ``"admn"`` (the
        controllers), or the paper's baselines ``"naive"`` (even split over all streams, every-other
        blocks) and ``"upper_bound"`` (every block, ``budget`` ignored). Missing streams get 0
        blocks. ``ValueError`` for a budget outside :meth:`budget_range`, an unknown stream or
        policy, a wrong shape."""
        import torch

        if policy not in POLICIES:
            raise ValueError(f"unknown allocation policy {policy!r}; known: {list(POLICIES)}")
        budget, n = int(budget), len(self.stream_ids)
        if policy == "admn":
            validate_budget(budget, n, self.depth, self.cfg.first_block)
        t0 = time.perf_counter()
        batch, present = self._batch(inputs)
        noise = np.full(n, np.nan, np.float32)
        entry = self._ctrl.get(None) or self._ctrl.get(budget)
        if policy == "upper_bound":
            mask, budget, name = np.ones((n, self.depth), bool), n * self.depth, policy
        elif policy == "naive":
            mask, name = naive_allocation(n, budget, self.depth), policy
        elif not present.any():
            mask, name = np.zeros((n, self.depth), bool), NONE
        elif entry is not None:
            out = self._ctrl_engine(entry).allocate(batch, torch.from_numpy(present)[None], budget)
            mask = out["mask"][0].cpu().numpy().astype(bool)
            noise = out["sigma"][0].cpu().numpy().astype(np.float32)
            name = entry.name
        else:
            idx = np.flatnonzero(present)
            mask = np.zeros((n, self.depth), bool)
            mask[idx] = naive_allocation(len(idx), min(budget, len(idx) * self.depth), self.depth)
            name = NAIVE
        mask &= present[:, None]
        noise[~present] = np.nan
        return Allocation(mask, present, noise, name, (time.perf_counter() - t0) * 1e3, budget)

    def embed(self, sids: Sequence[str], inputs: Mapping[str, np.ndarray | None],
              mask_rows: np.ndarray | Mapping[str, np.ndarray],
              timings_ms: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Backbone embeddings ``sid -> float32 (D,)`` of the ``sids`` with an input and an active block
        (real block skipping; the others are not computed). ``mask_rows``: bool ``(len(sids), DEPTH)``
        or ``sid -> (DEPTH,)``; ``timings_ms`` gets ``sid -> ms`` of its modality's backbone call."""
        rows = mask_rows if isinstance(mask_rows, Mapping) else dict(zip(sids, np.asarray(mask_rows), strict=True))
        todo: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        for sid in sids:
            self.index(sid)
            r = np.asarray(rows.get(sid, np.zeros(self.depth, bool)), dtype=bool).reshape(-1)
            if r.shape != (self.depth,):
                raise ValueError(f"{sid}: allocation row must have {self.depth} entries, got {r.shape[0]}")
            if inputs.get(sid) is not None and r.any():
                todo.append((sid, sid, inputs[sid], r))
        return self._backbones(todo, timings_ms)

    def _backbones(self, items: Sequence[tuple[Any, str, np.ndarray, np.ndarray]],
                   timings_ms: dict[Any, float] | None = None) -> dict[Any, np.ndarray]:
        """``[(key, sid, input (C, H, W), allocation row)]`` -> ``key -> float32 (D,)``: one batched
        backbone call per modality with real skipping (``timings_ms``: ``key -> ms`` of its call)."""
        import torch

        groups: dict[str, list[tuple[Any, str, np.ndarray, np.ndarray]]] = {}
        for it in items:
            groups.setdefault(split_stream_id(it[1])[1], []).append(it)
        out: dict[Any, np.ndarray] = {}
        for mod, group in groups.items():
            t0 = time.perf_counter()
            x = np.stack([self._input(it[1], it[2]) for it in group])
            e = self._main_engine().embed(mod, torch.from_numpy(x), np.stack([it[3] for it in group]))
            out.update(zip([it[0] for it in group], e.cpu().numpy().astype(np.float32)))
            if timings_ms is not None:
                timings_ms.update(dict.fromkeys([it[0] for it in group], (time.perf_counter() - t0) * 1e3))
        return out

    def _fuse(self, emb: np.ndarray, present: np.ndarray) -> dict[str, Any]:
        """Fusion + the task's head on ``emb [F, n, D]`` with ``present [F, n]`` -> estimate."""
        import torch

        f, n = present.shape
        out = self._main_engine().fuse(torch.from_numpy(np.ascontiguousarray(emb.reshape(1, f * n, -1))),
                                       torch.from_numpy(np.ascontiguousarray(present.reshape(1, -1))))
        return self.task.estimate({k: v[0].detach().cpu().double().numpy() for k, v in out.items()}, self.labels)

    def fuse(self, embs: Mapping[str, np.ndarray | None]) -> dict[str, Any]:
        """Fusion + head on one frame's embeddings (``sid -> (D,)``; ``None``/absent = missing;
        with ``F > 1`` the frame is the window's newest and the others are missing) -> the
        task's estimate. Raises ``ValueError`` if no stream is present or a vector has the
        wrong size / is not finite."""
        n = len(self.stream_ids)
        emb = np.zeros((self.frames, n, self.embed_dim), np.float32)
        present = np.zeros((self.frames, n), bool)
        for sid, v in embs.items():
            i = self.index(sid)
            if v is None:
                continue
            a = np.asarray(v, np.float32).reshape(-1)
            if a.shape != (self.embed_dim,):
                raise ValueError(f"{sid}: embedding must have {self.embed_dim} values, got {a.shape[0]}")
            if not np.isfinite(a).all():
                raise ValueError(f"{sid}: embedding contains NaN/inf")
            emb[-1, i] = a
            present[-1, i] = True
        if not present.any():
            raise ValueError("no stream present: nothing to fuse")
        return self._fuse(emb, present)

    def infer(self, window: FrameWindow, budget: int, policy: str = "admn") -> Result:
        """The whole graph's computation for a window: allocate on each stream's newest frame
        (``policy`` as :meth:`allocate`), embed every (frame, stream) with the window's allocation
        (cached when unchanged), fuse. ``ValueError`` for an empty window, no stream with data, a
        budget out of range, a bad input shape."""
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
        present = np.zeros((f_total, n), bool)   # (frame, stream) with data and blocks; leading frames missing
        off = f_total - len(frames)
        emb = np.zeros((f_total, n, self.embed_dim), np.float32)
        todo: list[tuple[tuple[int, int], str, np.ndarray, np.ndarray]] = []
        for k, fr in enumerate(frames):
            for i, sid in enumerate(self.stream_ids):
                x, row = fr.inputs.get(sid), alloc.mask[i]
                if x is None or not row.any():
                    continue
                present[off + k, i] = True
                if sid in fr.cache and fr.cache[sid][0] == row.tobytes():
                    emb[off + k, i] = fr.cache[sid][1]       # computed with this allocation row before
                else:
                    todo.append(((off + k, i), sid, x, row))
        for (fi, i), v in self._backbones(todo).items():
            emb[fi, i] = v
            frames[fi - off].cache[self.stream_ids[i]] = (alloc.mask[i].tobytes(), v)
        if not present.any():
            raise ValueError("no (frame, stream) with data and blocks in the window")
        est = self._fuse(emb, present)
        embs = {sid: emb[-1, i].copy() for i, sid in enumerate(self.stream_ids) if present[-1, i]}
        return Result(alloc, est, present, len(todo), (time.perf_counter() - t0) * 1e3, frames[-1].stamp_ns, embs)
