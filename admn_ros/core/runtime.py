"""The tracking runtime the ROS nodes call (rclpy-free): models from a directory, one frame
at a time, split the way the node graph is split.

::

    rt = TrackingRuntime.load("models/")                 # stage-1 model + controllers
    x = {sid: rt.preprocess(sid, array) for sid, array in raw.items()}   # (C, 64, 64) float32
    a = rt.allocate(x, budget=27)                        # controller node
    e = rt.embed(rt.stream_ids[:3], x, a.mask[:3])       # backbone node (real skipping)
    mean, cov = rt.fuse(e)                               # fusion node

Model directory: every ``*.safetensors`` file is read with
:func:`~admn_ros.core.checkpoint.read_metadata` (header only) and sorted by ``kind``:

* ``stage1``: the main network (task ``tracking``). With several, the one the most
  controllers were trained on (``stage1_weights_id`` == its ``weights_id``) wins; a tie is
  an error naming the files (pass ``model_file``).
* ``controller``: allocation controllers. ``controller_config.universal`` = budget-conditioned
  ("universal"), else a fixed-budget controller whose budget is ``meta["budget"]`` (else
  ``train_config.budget``, else ``controller_config.budget``). A controller whose
  ``stage1_weights_id`` names another model is skipped (listed in :attr:`skipped`); one
  without the id is assumed to belong to the model.
* other kinds (``controller_train``, ``stage0``, ...) are ignored (listed in :attr:`skipped`).

Every problem raises :class:`~admn_ros.core.checkpoint.CheckpointError` whose message
starts with the file (or directory) and names the mismatch: missing directory, no stage-1
tracking model, corrupt or foreign file, key/shape mismatch, or a stream set that differs
from the model's (or from the ``streams`` the caller expects).

Allocation policy (:meth:`TrackingRuntime.allocate`): the universal controller if there
is one, else the fixed-budget controller trained for exactly that budget, else the
paper's naive allocation (an even, "every-other" split over the present streams). The
:class:`Allocation` says which (``controller``: ``admn_universal``, ``admn_L27``,
``naive``, or ``none`` when no stream is present).

Threads: ``torch.set_num_threads(threads)`` (default 1) and ONNX Runtime with one thread.
Backends: ``backend`` is the :class:`~admn_ros.core.engine.InferenceEngine` backend of the
backbones and fusion (``auto`` measures torch/jit/onnx at warm-up and keeps the fastest);
controllers run on ``controller_backend`` (default ``torch``: a controller costs ~2 ms and
compiling it would re-export every backbone).

Also here, because every node needs them and they are plain bookkeeping:
:class:`RateMeter`, :class:`LatencyWindow` and :class:`StreamMonitor` (per-input rate, age,
stamp order checks and rejection counts by reason, shown on ``/diagnostics``).
"""
from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, read_metadata
from admn_ros.core.streams import POLICIES, StreamSet, naive_allocation, split_stream_id

#: Values of :attr:`Allocation.controller` besides ``admn_L<budget>``.
UNIVERSAL = "admn_universal"
NAIVE = "naive"
NONE = "none"


@dataclass
class Allocation:
    """One frame's layer allocation.

    Attributes:
        mask: bool ``(n_streams, DEPTH)`` in :attr:`TrackingRuntime.stream_ids` order; rows of
            missing streams are all False.
        present: bool ``(n_streams,)``: the stream had data this frame.
        est_noise: float32 ``(n_streams,)`` estimated noise sigma (QoI); NaN when unknown
            (naive allocation, missing stream).
        controller: who decided (``admn_universal``, ``admn_L<budget>``, ``naive``, ``none``).
        ms: decision time in milliseconds.
        budget: the budget ``L`` asked for.
    """

    mask: np.ndarray
    present: np.ndarray
    est_noise: np.ndarray
    controller: str
    ms: float
    budget: int

    @property
    def blocks(self) -> np.ndarray:
        """Active blocks per stream, int ``(n_streams,)``."""
        return self.mask.sum(axis=1)


@dataclass
class FrameResult:
    """:meth:`TrackingRuntime.infer` output: what the whole graph computes for one frame."""

    allocation: Allocation
    embeddings: dict[str, np.ndarray]
    mean: np.ndarray
    cov: np.ndarray


@dataclass
class _ControllerEntry:
    path: Path
    universal: bool
    budget: int | None
    controller: Any = None   # AllocationController (loaded lazily)
    engine: Any = None       # InferenceEngine (built lazily)

    @property
    def name(self) -> str:
        return UNIVERSAL if self.universal else f"admn_L{self.budget}"


def _as_int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


class TrackingRuntime:
    """Models of one model directory and the per-frame pipeline parts (see module docstring).

    Build with :meth:`load`. Attributes:
        model_path: the stage-1 checkpoint used.
        model: the :class:`~admn_ros.core.model.ADMNModel` (eval mode).
        streams: its :class:`~admn_ros.core.streams.StreamSet`; ``stream_ids`` its ids.
        controllers: ``name -> path`` of the usable controllers.
        skipped: ``[(path, why)]`` files present but not used.
        backend: backbone/fusion backend asked for; ``engine_backend`` the one in use
            after :meth:`warmup` (``auto`` resolved).
    """

    #: The model task this runtime serves (``stage1`` checkpoints of other tasks are skipped).
    TASK: str = "tracking"

    def __init__(self, model_path: Path, model: Any, controllers: list[_ControllerEntry],
                 skipped: list[tuple[Path, str]], backend: str = "auto", device: str = "cpu",
                 threads: int = 1, controller_backend: str = "torch") -> None:
        self.model_path = model_path
        self.model = model.eval()
        self.cfg = model.cfg
        self.streams: StreamSet = self.cfg.streams
        self.stream_ids: list[str] = self.streams.ids
        self._index = {s: i for i, s in enumerate(self.stream_ids)}
        self.depth: int = int(self.cfg.vit_depth)
        self.embed_dim: int = int(self.cfg.vit_dim)
        self._ctrl = controllers
        self.skipped = skipped
        self.backend = backend
        self.device = device
        self.threads = threads
        self.controller_backend = controller_backend
        self._engine: Any = None
        self.meta: dict[str, Any] = {}
        self.universal = next((c for c in controllers if c.universal), None)
        self.per_budget = {int(c.budget): c for c in controllers if not c.universal and c.budget is not None}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model_dir: str | Path, backend: str = "auto", device: str = "cpu", *,
             threads: int = 1, streams: StreamSet | Sequence[str] | None = None,
             model_file: str | Path | None = None, controller_backend: str = "torch") -> "TrackingRuntime":
        """Scan ``model_dir`` and load the tracking model and its controllers.

        Args:
            model_dir: directory with ``*.safetensors`` checkpoints.
            backend: backbone/fusion backend (``auto``, ``torch``, ``jit``, ``onnx``).
            device: torch device (``cpu``; ``auto`` = CUDA if present).
            threads: torch intra-op threads (1 on shared CPUs).
            streams: stream set (or sensor node names) the caller expects; a model for other
                streams is an error.
            model_file: use this stage-1 file (name inside ``model_dir`` or a path).
            controller_backend: backend of the controller engines.
        Raises:
            CheckpointError: naming the file/directory and the problem.
        """
        import torch

        from admn_ros.core.controller import AllocationController, ControllerConfig
        from admn_ros.core.engine import BACKENDS
        from admn_ros.core.model import ADMNConfig, ADMNModel
        from admn_ros.core.preprocess import MODEL_INPUT

        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        if controller_backend not in BACKENDS or controller_backend == "auto":
            raise ValueError(f"controller_backend must be torch, jit or onnx, got {controller_backend!r}")
        torch.set_num_threads(max(1, int(threads)))
        d = Path(model_dir).expanduser()
        if not d.is_dir():
            raise CheckpointError(f"{d}: model directory not found (train models with `admn-ros train` "
                                  "or set the model_dir parameter)")
        files = sorted(d.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{d}: no *.safetensors checkpoints in the model directory")
        metas: dict[Path, dict[str, Any]] = {f: read_metadata(f) for f in files}  # corrupt file -> raises
        skipped: list[tuple[Path, str]] = []
        mains: list[Path] = []
        ctrls: list[Path] = []
        for f, m in metas.items():
            kind = m.get("kind")
            if kind == "stage1":
                task = (m.get("model_config") or {}).get("task", "tracking")
                if task == cls.TASK:
                    mains.append(f)
                else:
                    skipped.append((f, f"stage1 model for task {task!r}, not {cls.TASK}"))
            elif kind == "controller":
                ctrls.append(f)
            else:
                skipped.append((f, f"checkpoint kind {kind!r} is not used by the {cls.TASK} runtime"))
        if model_file is not None:
            mp = Path(model_file)
            mp = mp if mp.is_absolute() or mp.parent != Path(".") else d / mp
            if mp not in metas:
                meta = read_metadata(mp)
                metas[mp] = meta
            if metas[mp].get("kind") != "stage1":
                raise CheckpointError(f"{mp}: checkpoint kind {metas[mp].get('kind')!r} != 'stage1' (model_file)")
            main = mp
        else:
            if not mains:
                kinds = sorted({str(m.get('kind')) for m in metas.values()})
                raise CheckpointError(f"{d}: no stage1 {cls.TASK} model among {len(files)} checkpoint(s) "
                                      f"(kinds found: {kinds})")
            votes = Counter(metas[c].get("stage1_weights_id") for c in ctrls)
            ranked = sorted(mains, key=lambda f: -votes.get(metas[f].get("weights_id"), 0))
            if len(ranked) > 1 and votes.get(metas[ranked[0]].get("weights_id"), 0) == \
                    votes.get(metas[ranked[1]].get("weights_id"), 0):
                raise CheckpointError(f"{d}: several stage1 {cls.TASK} models {[f.name for f in mains]} and the "
                                      "controllers do not single one out; choose one with model_file")
            main = ranked[0]
        mmeta = metas[main]
        try:
            mcfg = ADMNConfig.from_dict(mmeta.get("model_config") or {})
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{main}: invalid model_config: {exc}") from exc
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
        entries: list[_ControllerEntry] = []
        for f in ctrls:
            m = metas[f]
            parent = m.get("stage1_weights_id")
            if parent and wid and parent != wid:
                skipped.append((f, f"controller trained for stage1 weights {parent}, model {main.name} is {wid}"))
                continue
            try:
                ccfg = ControllerConfig.from_dict(m.get("controller_config") or {})
            except (ValueError, TypeError) as exc:
                raise CheckpointError(f"{f}: invalid controller_config: {exc}") from exc
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
            budget = None
            if not ccfg.universal:
                tc = m.get("train_config") or {}
                budget = _as_int(m.get("budget")) or _as_int(tc.get("budget")) or int(ccfg.budget)
            ctrl = AllocationController(ccfg)
            load_checkpoint(f, kind="controller", with_optimizer=False).load_into(ctrl)
            entries.append(_ControllerEntry(f, bool(ccfg.universal), budget, ctrl.eval()))
        # one universal (the newest file name wins deterministically), one per budget
        uni = [e for e in entries if e.universal]
        for e in uni[1:]:
            skipped.append((e.path, f"another universal controller ({uni[0].path.name}) is used"))
        seen: dict[int, _ControllerEntry] = {}
        for e in entries:
            if not e.universal:
                if e.budget in seen:
                    other = seen[e.budget].path.name
                    skipped.append((e.path, f"another controller for budget {e.budget} ({other}) is used"))
                else:
                    seen[int(e.budget)] = e
        used = uni[:1] + list(seen.values())
        rt = cls(main, model, used, skipped, backend, device, threads, controller_backend)
        rt.meta = mmeta
        return rt

    # ------------------------------------------------------------------ info
    @property
    def controllers(self) -> dict[str, Path]:
        return {c.name: c.path for c in self._ctrl}

    def describe(self) -> str:
        """One line for logs: model, controllers, backend."""
        ctrl = ", ".join(sorted(self.controllers)) or "none (naive allocation)"
        return (f"model {self.model_path.name} ({len(self.stream_ids)} streams, D={self.embed_dim}); "
                f"controllers: {ctrl}; backend {self.engine_backend}")

    @property
    def engine_backend(self) -> str:
        return self._engine.backend if self._engine is not None else self.backend

    def index(self, sid: str) -> int:
        try:
            return self._index[sid]
        except KeyError:
            raise KeyError(f"unknown stream {sid!r}; model streams: {self.stream_ids}") from None

    def controller_for(self, budget: int) -> str:
        """Name of what :meth:`allocate` uses for ``budget``."""
        if self.universal is not None:
            return self.universal.name
        c = self.per_budget.get(int(budget))
        return c.name if c is not None else NAIVE

    def budget_range(self) -> tuple[int, int]:
        """``(lo, hi)`` valid budgets: every stream's first block .. all blocks."""
        n = len(self.stream_ids)
        return (n if self.cfg.first_block else 1), n * self.depth

    # ------------------------------------------------------------------ engines
    def _main_engine(self) -> Any:
        if self._engine is None:
            from admn_ros.core.engine import InferenceEngine

            self._engine = InferenceEngine(self.model, None, backend=self.backend, threads=self.threads,
                                           device=self.device)
        return self._engine

    def _ctrl_engine(self, entry: _ControllerEntry) -> Any:
        if entry.engine is None:
            from admn_ros.core.engine import InferenceEngine

            entry.engine = InferenceEngine(self.model, entry.controller, backend=self.controller_backend,
                                           threads=self.threads, device=self.device)
        return entry.engine

    def warmup(self, parts: Iterable[str] = ("allocate", "embed", "fuse")) -> None:
        """Build the engines ``parts`` need now (``auto`` times the backends here), so the
        first frame does not pay for it."""
        parts = set(parts)
        unknown = parts - {"allocate", "embed", "fuse"}
        if unknown:
            raise ValueError(f"unknown runtime parts {sorted(unknown)}; known: allocate, embed, fuse")
        if parts & {"embed", "fuse"}:
            self._main_engine()
        if "allocate" in parts:
            for c in self._ctrl:
                self._ctrl_engine(c)
        # one dummy frame so lazy allocations (thread pools, ORT arenas) happen now
        x = {s: np.zeros((self.cfg.channels(split_stream_id(s)[1]), self.cfg.img_size, self.cfg.img_size),
                         np.float32) for s in self.stream_ids}
        lo, hi = self.budget_range()
        if "allocate" in parts:
            for c in self._ctrl:
                self.allocate(x, int(c.budget) if c.budget is not None else max(lo, hi // 4))
        if "embed" in parts:
            self.embed(self.stream_ids, x, np.ones((len(self.stream_ids), self.depth), bool))
        if "fuse" in parts:
            self.fuse({s: np.zeros(self.embed_dim, np.float32) for s in self.stream_ids})

    # ------------------------------------------------------------------ pipeline parts
    def preprocess(self, sid: str, array: np.ndarray) -> np.ndarray:
        """Raw sensor array -> float32 ``(C, 64, 64)`` in [0, 1] for stream ``sid``.

        :func:`admn_ros.core.preprocess.to_model_input` plus the checks a network input
        needs: radar must be finite (NaN and +-inf are errors); depth in float metres may
        carry NaN/inf (REP-118 "no return") and they become 0. Raises ``ValueError`` naming
        the stream and the problem.
        """
        from admn_ros.core.preprocess import to_model_input

        _, mod = split_stream_id(sid)
        self.index(sid)
        a = np.asarray(array)
        if mod == "radar" and a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
            n_bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ValueError(f"{sid}: radar heatmap contains {n_bad} NaN/inf value(s)")
        try:
            x = to_model_input(mod, a)
        except ValueError as exc:
            raise ValueError(f"{sid}: {exc}") from None
        if not np.isfinite(x).all():  # defensive: never feed NaN to the network
            raise ValueError(f"{sid}: preprocessed input is not finite")
        return x

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
            m = cfg.modalities[mod_i]
            want = (cfg.channels(m), size, size)
            if tuple(np.shape(x)) != want:
                raise ValueError(f"{sid}: model input must have shape {want}, got {tuple(np.shape(x))}")
            xs[m][0, node_i] = x
            present[i] = True
        return {m: torch.from_numpy(v) for m, v in xs.items()}, present

    def allocate(self, inputs: Mapping[str, np.ndarray | None], budget: int, policy: str = "admn") -> Allocation:
        """Per-stream layer allocation for one frame (see the module docstring for the policy).

        Args:
            inputs: ``stream id -> (C, 64, 64)`` model input, or ``None`` / absent = missing.
            budget: total active blocks ``L`` (first blocks of present streams included).
            policy: ``"admn"`` (the controllers, as above), or one of the paper's baselines
                for evaluation: ``"naive"`` (input-agnostic even split of ``budget`` over all
                streams, every-other blocks, as in Table 1) or ``"upper_bound"`` (every block;
                ``budget`` is ignored). Missing streams get 0 blocks in every policy.
        Raises:
            ValueError: budget outside :meth:`budget_range`, unknown stream, wrong shape,
                unknown policy.
        """
        import torch

        if policy not in POLICIES:
            raise ValueError(f"unknown allocation policy {policy!r}; known: {list(POLICIES)}")
        if policy != "admn":
            t0 = time.perf_counter()
            present = self._batch(inputs)[1]
            n = len(self.stream_ids)
            if policy == "upper_bound":
                mask, budget = np.ones((n, self.depth), bool), n * self.depth
            else:
                mask = naive_allocation(n, int(budget), self.depth)
            return Allocation(mask & present[:, None], present, np.full(n, np.nan, np.float32), policy,
                              (time.perf_counter() - t0) * 1e3, int(budget))
        lo, hi = self.budget_range()
        budget = int(budget)
        if not lo <= budget <= hi:
            raise ValueError(f"budget {budget} out of range [{lo}, {hi}] for {len(self.stream_ids)} streams "
                             f"x {self.depth} blocks")
        t0 = time.perf_counter()
        batch, present = self._batch(inputs)
        n = len(self.stream_ids)
        noise = np.full(n, np.nan, np.float32)
        if not present.any():
            mask = np.zeros((n, self.depth), bool)
            name = NONE
        else:
            entry = self.universal or self.per_budget.get(budget)
            if entry is not None:
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
        """Backbone embeddings of ``sids`` with real block skipping.

        Args:
            sids: the streams to run (e.g. one sensor node's).
            inputs: ``sid -> (C, 64, 64)`` or ``None``.
            mask_rows: bool ``(len(sids), DEPTH)`` in ``sids`` order, or ``sid -> (DEPTH,)``.
            timings_ms: if given, filled with ``sid -> ms`` of its modality's backbone call.
        Returns:
            ``sid -> float32 (D,)`` for every stream with an input and at least one active
            block; the others are not computed (the fusion treats them as missing).
        """
        import torch

        if isinstance(mask_rows, Mapping):
            rows = mask_rows
        else:
            rows = {s: np.asarray(mask_rows)[k] for k, s in enumerate(sids)}
        groups: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for sid in sids:
            self.index(sid)
            x = inputs.get(sid)
            r = np.asarray(rows.get(sid, np.zeros(self.depth, bool)), dtype=bool).reshape(-1)
            if r.shape != (self.depth,):
                raise ValueError(f"{sid}: allocation row must have {self.depth} entries, got {r.shape[0]}")
            if x is None or not r.any():
                continue
            groups.setdefault(split_stream_id(sid)[1], []).append((sid, np.asarray(x, np.float32), r))
        out: dict[str, np.ndarray] = {}
        if not groups:
            return out
        eng = self._main_engine()
        for mod, items in groups.items():
            t0 = time.perf_counter()
            x = torch.from_numpy(np.stack([it[1] for it in items]))
            act = np.stack([it[2] for it in items])
            e = eng.embed(mod, x, act).cpu().numpy().astype(np.float32)
            ms = (time.perf_counter() - t0) * 1e3
            for k, (sid, _, _) in enumerate(items):
                out[sid] = e[k]
                if timings_ms is not None:
                    timings_ms[sid] = ms
        return out

    def fuse(self, embs: Mapping[str, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
        """Fusion + Gaussian head: ``sid -> (D,)`` (``None``/absent = missing) -> ``(mean (2,), cov (2, 2))``
        in the map frame (metres, float64). Raises ``ValueError`` if no stream is present or a
        vector has the wrong size / is not finite."""
        import torch

        n = len(self.stream_ids)
        emb = np.zeros((1, n, self.embed_dim), np.float32)
        present = np.zeros((1, n), bool)
        for sid, v in embs.items():
            i = self.index(sid)
            if v is None:
                continue
            a = np.asarray(v, np.float32).reshape(-1)
            if a.shape != (self.embed_dim,):
                raise ValueError(f"{sid}: embedding must have {self.embed_dim} values, got {a.shape[0]}")
            if not np.isfinite(a).all():
                raise ValueError(f"{sid}: embedding contains NaN/inf")
            emb[0, i] = a
            present[0, i] = True
        if not present.any():
            raise ValueError("no stream present: nothing to fuse")
        out = self._main_engine().fuse(torch.from_numpy(emb), torch.from_numpy(present))
        return (out["mean"][0].cpu().numpy().astype(np.float64),
                out["cov"][0].cpu().numpy().astype(np.float64))

    def infer(self, inputs: Mapping[str, np.ndarray | None], budget: int) -> FrameResult:
        """The whole graph's computation for one frame (allocate -> embed per stream -> fuse)."""
        a = self.allocate(inputs, budget)
        e = self.embed(self.stream_ids, inputs, a.mask)
        mean, cov = self.fuse(e)
        return FrameResult(a, e, mean, cov)


# ---------------------------------------------------------------------- random models (dev)
def write_random_models(model_dir: str | Path, nodes: Sequence[str] = ("node1", "node2", "node3"), *,
                        seed: int = 0, universal: bool = True, budgets: Sequence[int] = (27,),
                        bounds: tuple[tuple[float, float], tuple[float, float]] = ((-1.7, 1.7), (-2.0, 2.0)),
                        **model_overrides: Any) -> dict[str, Path]:
    """Write an untrained stage-1 model and controllers (universal and/or per budget) with the
    same metadata layout as the trainers, for tests and benchmarks before trained models
    exist. ``bounds`` defaults to the simulated track (centred on ``map``) plus a margin.
    Returns ``name -> path``."""
    import torch

    from admn_ros.core.checkpoint import save_checkpoint
    from admn_ros.core.controller import AllocationController, ControllerConfig
    from admn_ros.core.model import ADMNConfig, ADMNModel

    d = Path(model_dir)
    torch.manual_seed(seed)
    mcfg = ADMNConfig(nodes=tuple(nodes), bounds=bounds, **model_overrides)
    model = ADMNModel(mcfg)
    out: dict[str, Path] = {}
    out["model"] = save_checkpoint(d / "tracking.safetensors", kind="stage1", state_dict=model.state_dict(),
                                   meta={"model_config": mcfg.to_dict(), "train_config": {"random_init": True},
                                         "stage": 1, "epoch": 0, "metrics": {}})
    wid = read_metadata(out["model"])["weights_id"]
    specs: list[tuple[str, bool, int | None]] = [("universal", True, None)] if universal else []
    specs += [(f"L{b}", False, int(b)) for b in budgets]
    for name, uni, b in specs:
        ccfg = ControllerConfig.for_model(mcfg, universal=uni, **({"budget": b} if b is not None else {}))
        ctrl = AllocationController(ccfg)
        out[name] = save_checkpoint(
            d / f"controller_{name}.safetensors", kind="controller", state_dict=ctrl.state_dict(),
            meta={"controller_config": ccfg.to_dict(), "model_config": mcfg.to_dict(),
                  "train_config": {"variant": "universal" if uni else "budget", "budget": b or 0,
                                   "random_init": True},
                  "stage": 2, "variant": "universal" if uni else "budget", "epoch": 0, "metrics": {},
                  "stage1_weights_id": wid, "budget": b})
    return out


# ---------------------------------------------------------------------- input bookkeeping
class RateMeter:
    """Achieved message rate over a sliding window (times in seconds of any clock)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window = float(window_s)
        self.times: deque[float] = deque()

    def tick(self, t: float) -> None:
        self.times.append(float(t))
        self._trim(float(t))

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()

    def rate(self, now: float) -> float:
        self._trim(float(now))
        if len(self.times) < 2:
            return 0.0
        span = max(now - self.times[0], self.times[-1] - self.times[0])
        return (len(self.times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last ``n`` latencies (ms) with mean / p50 / p99 / max."""

    def __init__(self, n: int = 200) -> None:
        self.values: deque[float] = deque(maxlen=int(n))
        self.count = 0

    def add(self, ms: float) -> None:
        self.values.append(float(ms))
        self.count += 1

    def summary(self) -> dict[str, float]:
        if not self.values:
            return {"n": 0, "mean": math.nan, "p50": math.nan, "p99": math.nan, "max": math.nan}
        a = np.asarray(self.values)
        return {"n": float(len(a)), "mean": float(a.mean()), "p50": float(np.percentile(a, 50)),
                "p99": float(np.percentile(a, 99)), "max": float(a.max())}


@dataclass
class _InputState:
    rate: RateMeter
    accepted: int = 0
    last_stamp_ns: int | None = None
    last_arrival: float | None = None
    rejected: Counter = field(default_factory=Counter)


class StreamMonitor:
    """Per-input health: stamp order checks, rate, age and rejection counts by reason.

    ``check_stamp`` returns a rejection reason (``zero_stamp``, ``duplicate_stamp``,
    ``out_of_order``) or None; ``accept`` records a good message; ``reject`` counts a
    bad one. Reasons are free-form short identifiers (``bad_encoding``, ``bad_size``,
    ``non_finite``, ``empty``, ...)."""

    def __init__(self, keys: Iterable[Hashable], window_s: float = 2.0) -> None:
        self.window = window_s
        self.inputs: dict[Hashable, _InputState] = {k: _InputState(RateMeter(window_s)) for k in keys}
        self.dropped: Counter = Counter()   # frame-level drops by reason

    def _get(self, key: Hashable) -> _InputState:
        st = self.inputs.get(key)
        if st is None:
            st = self.inputs[key] = _InputState(RateMeter(self.window))
        return st

    def check_stamp(self, key: Hashable, stamp_ns: int) -> str | None:
        if stamp_ns <= 0:
            return "zero_stamp"
        last = self._get(key).last_stamp_ns
        if last is not None:
            if stamp_ns == last:
                return "duplicate_stamp"
            if stamp_ns < last:
                return "out_of_order"
        return None

    def accept(self, key: Hashable, stamp_ns: int, now: float) -> None:
        st = self._get(key)
        st.accepted += 1
        st.last_stamp_ns = int(stamp_ns)
        st.last_arrival = float(now)
        st.rate.tick(now)

    def reject(self, key: Hashable, reason: str) -> None:
        self._get(key).rejected[reason] += 1

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def rate(self, key: Hashable, now: float) -> float:
        return self._get(key).rate.rate(now)

    def age(self, key: Hashable, now_ns: int) -> float:
        """Seconds between ``now_ns`` and the stamp of the last accepted message (NaN if none)."""
        last = self._get(key).last_stamp_ns
        return math.nan if last is None else (int(now_ns) - last) * 1e-9

    def rejected(self, key: Hashable | None = None) -> Counter:
        """Rejections by reason of one input, or summed over all inputs."""
        if key is not None:
            return Counter(self._get(key).rejected)
        total: Counter = Counter()
        for st in self.inputs.values():
            total.update(st.rejected)
        return total

    def total_rejected(self) -> int:
        return int(sum(self.rejected().values()))
