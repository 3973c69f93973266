"""Pieces shared by the training stages and the evaluation: dataset access with named errors,
seeded randomness, noise and failure sampling, schedules and the per-sample score."""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from admn_ros.core.checkpoint import CheckpointError, check_config, load_checkpoint
from admn_ros.core.data.tools import progress_bar
from admn_ros.core.noise import draw_stream_sigmas
from admn_ros.core.sim.corruptions import APPLIES_TO, CorruptionSpec, corrupt_model_input
from admn_ros.core.streams import MODALITIES, StreamSet, validate_budget
from admn_ros.core.tasks import DEFAULT_TASK, Task, get_task
from admn_ros.core.train.config import TrainConfigError

#: A batch as the model wants it: dict modality -> float32 ``[B, S, C, H, W]`` in [0, 1].
Inputs = dict[str, torch.Tensor]
#: A run directory's checkpoint after every epoch (weights + optimizer), for ``--resume``.
LAST = "last.safetensors"


def set_threads(n: int) -> None:
    """Set torch intra-op threads (``n <= 0`` leaves the default, i.e. ``OMP_NUM_THREADS``)."""
    if n > 0:
        torch.set_num_threads(int(n))


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any printable parts (``derive_seed(seed, "stage1", epoch)``)."""
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def start_run(out: str | Path, threads: int, resume: bool, force: bool) -> Path:
    """Set torch's threads and return the run directory ``out``; refuses (:class:`TrainConfigError`)
    an ``out`` that already holds :data:`LAST` unless ``resume`` or ``force``."""
    set_threads(threads)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise TrainConfigError(f"{path}: --out is a file, not a run directory")
    if (path / LAST).exists() and not (resume or force):
        raise TrainConfigError(f"{path}: run directory already has {LAST}; pass --resume to continue it "
                               "or --force to start over")
    return path


def load_resume(resume: bool, last: Path, kind: str, model_config: Mapping[str, Any],
                train_config: Mapping[str, Any], fixed: Sequence[str], log: Callable[[str], None], tag: str,
                **meta: Mapping[str, Any]) -> Any:
    """The checkpoint to resume from (``None`` without ``resume`` or if ``last`` is absent);
    :class:`CheckpointError` unless it has the same model config, ``meta`` entries, ``fixed``
    training fields (the dataset compared as a resolved path) and an optimizer state."""
    if not resume:
        return None
    if not last.exists():
        log(f"[{tag}] --resume: no {last} yet; starting a new run")
        return None
    ck = load_checkpoint(last, kind=kind)
    check_config(last, ck.model_config, dict(model_config))
    for key, want in meta.items():
        check_config(last, ck.meta.get(key, {}), dict(want), what=key)
    stored, expected = dict(ck.train_config), dict(train_config)
    for d in (stored, expected):  # the same dataset, whether named relative or absolute
        if d.get("data"):
            d["data"] = str(Path(d["data"]).resolve())
    check_config(last, stored, expected, keys=fixed, what="train_config")
    if ck.optimizer is None:
        raise CheckpointError(f"{last}: has no optimizer state; cannot resume")
    return ck


def continue_run(ck: Any, module: torch.nn.Module, opt: torch.optim.Optimizer, total: int,
                 log: Callable[[str], None], tag: str) -> tuple[int, list[dict[str, Any]], dict[str, float]]:
    """Load the resume checkpoint ``ck`` (``None`` = a fresh run) into ``module`` and ``opt``:
    ``(epochs done, history, the last validation)``."""
    if ck is None:
        return 0, [], {}
    ck.load_into(module)
    opt.load_state_dict(ck.optimizer)
    history = list(ck.meta.get("history", []))
    log(f"[{tag}] resumed {ck.path} at epoch {ck.epoch}/{total}")
    if ck.epoch >= total:
        log(f"[{tag}] already trained {ck.epoch} epochs (>= --epochs {total}); nothing to do")
    return ck.epoch, history, dict(history[-1]["val"]) if history else {}


def seed_everything(*parts: Any) -> np.random.Generator:
    """Seed torch's global RNG (LayerDrop, dropout) from ``parts`` and return a numpy generator."""
    s = derive_seed(*parts)
    torch.manual_seed(s)
    return np.random.default_rng(s)


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator, limit: int = 0) -> list[np.ndarray]:
    """Shuffled index batches for one epoch, each sorted (faster memmap reads), the last partial
    one dropped unless it is the only one; ``limit > 0`` takes a fresh random subset of ``limit`` samples."""
    idx = rng.permutation(n)[:limit] if limit > 0 else rng.permutation(n)
    m = len(idx)
    stop = (m // batch_size) * batch_size if m >= batch_size else m
    return [np.sort(idx[i:i + batch_size]) for i in range(0, stop, batch_size)]


def open_split(root: str | os.PathLike[str], split: str) -> Any:
    """Open a split with its task's reader (``Task.dataset_reader``; the task named in ``meta.json``, else
    the default) or raise :class:`TrainConfigError` naming what is missing."""
    root = Path(root)
    if not (root / "meta.json").is_file():
        what = "no meta.json; not a dataset directory" if root.is_dir() else "dataset directory not found"
        raise TrainConfigError(f"{root}: {what} (generate one with `admn-ros dataset --out {root}`)")
    if not (root / split).is_dir():
        raise TrainConfigError(f"{root}: split {split!r} not found (expected directory {root / split})")
    try:
        task = json.loads((root / "meta.json").read_text()).get("task")
    except (OSError, ValueError) as exc:
        raise TrainConfigError(f"{root / 'meta.json'}: unreadable: {exc}") from exc
    try:
        module, reader = get_task(task).dataset_reader.split(":")
        ds = getattr(importlib.import_module(module), reader)(root, split)
    except (OSError, ValueError, KeyError) as exc:
        raise TrainConfigError(f"{root}/{split}: cannot open dataset split: {exc}") from exc
    if len(ds) == 0:
        raise TrainConfigError(f"{root}/{split}: split is empty")
    return ds


def to_torch(batch: Mapping[str, Any], modalities: Sequence[str], task: Task | None = None
             ) -> tuple[Inputs, torch.Tensor | None]:
    """A dataset batch -> (float32 input tensors per modality, :meth:`Task.target`; ``None`` without a task)."""
    inputs = {m: torch.as_tensor(np.ascontiguousarray(batch[m]), dtype=torch.float32) for m in modalities}
    return inputs, None if task is None else torch.as_tensor(task.target(batch))


def check_dataset(ds: Any, model_cfg: Any, where: str) -> None:
    """Fail early (:class:`TrainConfigError`) if the dataset (meta, one sample) does not match the model config."""
    task = get_task(getattr(model_cfg, "task", None))
    meta = getattr(ds, "meta", None)
    if isinstance(meta, Mapping):
        got_task = meta.get("task", DEFAULT_TASK)
        if got_task != task.name:
            raise TrainConfigError(f"{where}: dataset is for task {got_task!r}, the model config for {task.name!r}")
        for key, want in task.model_overrides(meta).items():
            got = getattr(model_cfg, key, want)
            if key != "nodes" and got != want:   # nodes: with the stream set below
                raise TrainConfigError(f"{where}: dataset {key} {want} != model config {key} {got}")
        for key, got, want in (("nodes", task.dataset_nodes(meta), list(model_cfg.nodes)),
                               ("modalities", meta.get("modalities"), list(model_cfg.modalities))):
            if got is not None and list(got) != want:
                raise TrainConfigError(f"{where}: dataset {key} {list(got)} != model config {key} {want} "
                                       "(stream set mismatch)")
    b = ds.batch(np.array([0]))
    s = int(getattr(model_cfg, "frames", 1)) * len(model_cfg.nodes)
    for m in model_cfg.modalities:
        if m not in b:
            raise TrainConfigError(f"{where}: dataset has no {m!r} data; model config expects modalities "
                                   f"{list(model_cfg.modalities)} (stream set mismatch)")
        want = (1, s, model_cfg.channels(m), model_cfg.img_size, model_cfg.img_size)
        if tuple(np.shape(b[m])) != want:
            raise TrainConfigError(f"{where}: dataset {m!r} batch shape {tuple(np.shape(b[m]))} != expected "
                                   f"{want} for nodes {list(model_cfg.nodes)} (stream set / image size mismatch)")
        x = np.asarray(b[m])
        if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
            raise TrainConfigError(f"{where}: dataset {m!r} values must be finite and in [0, 1] "
                                   f"(got min {x.min():.3g}, max {x.max():.3g})")
    problem = task.check_target(b, model_cfg)
    if problem:
        raise TrainConfigError(f"{where}: {problem}")


def checked_splits(cfg: Any, model_cfg: Any, train: Any, val: Any, vs: str = "") -> tuple[int, int]:
    """Check the ``train`` and ``val`` splits of ``cfg.data`` against ``model_cfg`` (:func:`check_dataset`;
    ``vs`` ends the error's location); returns the samples of each used per epoch (a limit of 0 = all)."""
    for split, ds in (("train", train), ("val", val)):
        check_dataset(ds, model_cfg, f"{cfg.data}/{split}{vs}")
    n_train, n_val = (len(ds) if k <= 0 else min(len(ds), int(k))
                      for ds, k in ((train, cfg.train_samples), (val, cfg.val_samples)))
    return n_train, n_val


def sigma_max_of(streams: StreamSet) -> np.ndarray:
    """float32 ``[n]``: each stream's modality's ``sigma_max``."""
    return np.array([MODALITIES[streams.modality_of(i)].sigma_max for i in range(len(streams))], np.float32)


@dataclass
class NoiseSampler:
    """Per-sample noise: a regime drawn from ``regimes`` (weights), sigmas per modality with
    probability ``modality_prob`` else per stream, clean with probability ``clean_prob``.
    :meth:`draw` returns float32 ``[B, n_streams]`` sigmas (the noise-head labels)."""

    streams: StreamSet
    regimes: Mapping[str, float] = field(default_factory=lambda: {"continuous": 1.0})
    modality_prob: float = 0.5
    clean_prob: float = 0.0

    def __post_init__(self) -> None:
        names = [k for k, v in self.regimes.items() if float(v) > 0]
        w = np.array([float(self.regimes[k]) for k in names], dtype=np.float64)
        self._names, self._p = names, w / w.sum()

    def draw(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros((batch, len(self.streams)), dtype=np.float32)
        for b in range(batch):
            if self.clean_prob > 0 and rng.random() < self.clean_prob:
                continue
            regime = self._names[int(rng.choice(len(self._names), p=self._p))]
            mode = "modality" if rng.random() < self.modality_prob else "stream"
            out[b] = draw_stream_sigmas(self.streams, regime, rng, mode=mode)
        return out


def noise_aware_masks(sigmas: np.ndarray, streams: StreamSet, budgets: Sequence[int], depth: int,
                      first_block: bool, rng: np.random.Generator, temperature: float = 0.2) -> np.ndarray:
    """Budgeted, QoI-aware training allocations (stage 1's ``alloc_ramp``; docs/TRAINING.md): bool
    ``[B, n, depth]``, per sample a budget from ``budgets`` given to the best (stream, block) pairs by
    ``1 - sigma / sigma_max`` plus ``temperature`` x Gumbel noise (block 0 first if ``first_block``)."""
    sig = np.asarray(sigmas, dtype=np.float32).reshape(-1, len(streams))
    n = len(streams)
    quality = 1.0 - np.clip(sig / sigma_max_of(streams), 0.0, 1.0)
    out = np.zeros((sig.shape[0], n, depth), dtype=bool)
    forced = n if first_block else 0
    for b in range(sig.shape[0]):
        budget = validate_budget(int(budgets[int(rng.integers(len(budgets)))]), n, depth, first_block)
        score = quality[b][:, None] + temperature * rng.gumbel(size=(n, depth))
        if first_block:
            out[b, :, 0] = True
            score[:, 0] = -np.inf
        pick = np.argsort(-score, axis=None, kind="stable")[:budget - forced]
        out[b].reshape(-1)[pick] = True
    return out


def apply_noise(inputs: Mapping[str, torch.Tensor], sigmas: np.ndarray | torch.Tensor, streams: StreamSet,
                generator: torch.Generator | None = None) -> Inputs:
    """``clip(x + N(0, sigma^2), 0, 1)`` per sample and stream (``sigmas [B, n]``); a window of
    frames (``[B, F*S, C, H, W]``, frame-major) gets its stream's sigma on every frame."""
    sig = torch.as_tensor(np.asarray(sigmas), dtype=torch.float32)
    b = sig.shape[0]
    s, m_count = len(streams.nodes), len(streams.modalities)
    sig = sig.reshape(b, s, m_count)
    out: Inputs = {}
    for mi, m in enumerate(streams.modalities):
        x = inputs[m]
        sm = sig[:, :, mi]
        if not bool((sm > 0).any()):
            out[m] = x
            continue
        frames = x.shape[1] // s
        if frames * s != x.shape[1]:
            raise ValueError(f"inputs[{m!r}] has {x.shape[1]} images per sample, not a multiple of {s} nodes")
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        out[m] = (x + noise * sm.repeat(1, frames).reshape(b, frames * s, 1, 1, 1)).clamp_(0.0, 1.0)
    return out


def draw_failures(kind: str, streams: StreamSet, rng: np.random.Generator, mode: str = "stream") -> np.ndarray:
    """Severity ``[n]`` of the real-world failure ``kind`` per stream, drawn like the binary
    regime (each stream, or modality, it applies to fails with probability 1/2). ``dropout``
    keeps one stream (or modality) when all would drop: the graph needs one to publish."""
    mods = np.array([streams.modality_of(i) for i in range(len(streams))])
    hit = (draw_stream_sigmas(streams, "binary", rng, mode=mode) > 0) & np.isin(mods, list(APPLIES_TO[kind]))
    if kind == "dropout" and hit.all():
        keep = int(rng.integers(len(streams)))
        hit[(mods == mods[keep]) if mode == "modality" else keep] = False
    return hit.astype(np.float32)


def apply_failures(inputs: Mapping[str, torch.Tensor], kind: str, severity: np.ndarray, streams: StreamSet,
                   rng: np.random.Generator, earlier: Mapping[str, torch.Tensor] | None = None,
                   radar: Any = None, pixel_scale: float = 1.0) -> tuple[Inputs, np.ndarray]:
    """The real-world failure ``kind`` on every stream with ``severity [B, n] > 0``: returns the
    corrupted inputs and ``present [B, n]``. Image failures go through ``corrupt_model_input``;
    a ``frozen`` stream shows ``earlier[m]``; a ``dropout`` stream is zeros and not present."""
    sev = np.asarray(severity, np.float32)
    b, s, nm = sev.shape[0], len(streams.nodes), len(streams.modalities)
    sev = sev.reshape(b, s, nm)
    present = np.ones((b, s, nm), bool)
    out: Inputs = {}
    for mi, m in enumerate(streams.modalities):
        x = inputs[m]
        if x.shape[1] != s:
            raise ValueError(f"inputs[{m!r}] has {x.shape[1]} images per sample, not one per node ({s})")
        y = x.clone()
        for bi, si in np.argwhere(sev[:, :, mi] > 0):
            if kind == "frozen":
                if earlier is None:
                    raise ValueError("frozen streams need their earlier frames (earlier=...)")
                y[bi, si] = earlier[m][bi, si]
            elif kind == "dropout":
                y[bi, si] = 0.0
                present[bi, si, mi] = False
            else:
                spec = CorruptionSpec(kind, severity=float(sev[bi, si, mi])).resolved(m)
                img = corrupt_model_input(m, y[bi, si].numpy(), spec, rng, radar, float(rng.uniform(0, np.pi)),
                                          pixel_scale)
                y[bi, si] = torch.from_numpy(img)
        out[m] = y
    return out, present.reshape(b, s * nm)


def draw_missing(batch: int, prob: float, rng: np.random.Generator, streams: StreamSet,
                 modality_prob: Mapping[str, float] | None = None) -> np.ndarray | None:
    """``present [B, n]``: each stream missing with ``prob``, every stream of modality ``m`` with
    ``modality_prob[m]``, at least one kept per sample; ``None`` if nothing can go missing."""
    n = len(streams)
    mod_p = {m: float(p) for m, p in (modality_prob or {}).items() if float(p) > 0}
    if prob <= 0 and not mod_p:
        return None
    pres = rng.random((batch, n)) >= prob
    for m, p in mod_p.items():
        if m in streams.modalities:
            rows = [i for i in range(n) if streams.modality_of(i) == m]
            pres[np.ix_(rng.random(batch) < p, rows)] = False
    empty = ~pres.any(1)
    if empty.any():
        pres[np.nonzero(empty)[0], rng.integers(0, n, int(empty.sum()))] = True
    return pres


def lr_at(step: int, total: int, base: float, min_lr: float, warmup: int = 0, schedule: str = "cosine") -> float:
    """Linear warmup over ``warmup`` steps, then cosine or linear decay from ``base`` to ``min_lr``."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
    if schedule == "cosine":
        return min_lr + (base - min_lr) * 0.5 * (1.0 + float(np.cos(np.pi * t)))
    return base + (min_lr - base) * t


def make_adamw(params: Sequence[torch.nn.Parameter] | Iterator[torch.nn.Parameter], lr: float,
               weight_decay: float) -> torch.optim.AdamW:
    """AdamW (fused kernel when torch supports it on this device); no decay on biases/norms/embeddings."""
    params = [p for p in params if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # fused unsupported on this build/device
        return torch.optim.AdamW(groups, lr=lr)


class Throughput:
    """Samples/s over the timed sections (:meth:`start` ... :meth:`stop`)."""

    samples, seconds, _t0 = 0, 0.0, 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, samples: int) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.samples += int(samples)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def run_epoch(module: torch.nn.Module, opt: torch.optim.Optimizer, ds: Any, cfg: Any, rng: np.random.Generator,
              model_cfg: Any, lr_of: Callable[[int], float],
              loss_of: Callable[[np.ndarray, Inputs, torch.Tensor], torch.Tensor], tput: Throughput, desc: str,
              where: str) -> tuple[list[float], float]:
    """One training epoch of ``module`` over :func:`epoch_batches` of ``ds``: batch ``i`` at learning rate
    ``lr_of(i)``, one step on the finite ``loss_of(indices, inputs, target)`` with gradients clipped to norm 1;
    returns the losses and the last learning rate."""
    module.train()
    batches = epoch_batches(len(ds), cfg.batch_size, rng, limit=cfg.train_samples)
    bar = progress_bar(cfg.progress, len(batches), "batch", desc, transient=True)
    losses: list[float] = []
    lr = 0.0
    for i, sel in enumerate(batches):
        lr = lr_of(i)
        for g in opt.param_groups:
            g["lr"] = lr
        inputs, target = to_torch(ds.batch(sel), model_cfg.modalities, get_task(model_cfg.task))
        tput.start()
        loss = loss_of(sel, inputs, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{where} step {i}: non-finite loss {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], 1.0)
        opt.step()
        tput.stop(len(sel))
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{lr:.1e}", sps=f"{tput.rate:.0f}")
    bar.close()
    return losses, lr


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return path


def fmt_duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@torch.no_grad()
def mean_score(model: torch.nn.Module, ds: Any, n: int, mask: Any = None, sigmas: np.ndarray | None = None,
               batch_size: int = 64, noise_seed: int = 0) -> float:
    """Mean per-sample score of ``model`` (eval mode, batch-1 semantics) in the task's metric (tracking
    error in cm, activity 100 / 0 per label) on the first ``n`` samples of ``ds``, with ``sigmas [n, streams]``
    of Gaussian noise (seeded by ``noise_seed``; ``None`` = clean) and ``mask``: ``[streams, depth]``,
    ``None`` (every block) or a function of the noisy inputs giving ``[B, streams, depth]``."""
    model.eval()
    streams = model.cfg.streams
    gen = torch.Generator().manual_seed(int(noise_seed))
    task = get_task(getattr(model.cfg, "task", None))
    errs = []
    for start in range(0, n, batch_size):
        sel = np.arange(start, min(n, start + batch_size))
        inputs, target = to_torch(ds.batch(sel), streams.modalities, task)
        if sigmas is not None:
            inputs = apply_noise(inputs, sigmas[start:start + len(sel)], streams, gen)
        out = model(inputs, mask(inputs) if callable(mask) else mask)
        errs.append(task.scores(out, target).numpy())
    return float(np.concatenate(errs).mean()) if errs else float("nan")
