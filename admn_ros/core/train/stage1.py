"""Stage 1: LayerDrop training of the backbones + fusion with noise augmentation (the recipe and the
files of a run directory: docs/TRAINING.md)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, stored_config
from admn_ros.core.model import ADMNConfig, ADMNModel
from admn_ros.core.streams import budget_from_fraction, naive_allocation
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import (LAST, NoiseSampler, Throughput, apply_noise, checked_splits, continue_run,
                                        derive_seed, draw_missing, fmt_duration, load_resume, lr_at, make_adamw,
                                        mean_score, noise_aware_masks, open_split, run_epoch, seed_everything,
                                        start_run, write_json)
from admn_ros.core.train.config import Stage1Config, TrainConfigError, check_budgets

FINAL = "model.safetensors"
SUMMARY = "summary.json"
#: Fields of the training config that must not change when resuming.
RESUME_FIXED = ("data", "batch_size", "seed", "train_samples", "model", "init")


@dataclass
class StageResult:
    """What a training stage produced: ``epochs`` counts over resumes, ``seconds`` and
    ``samples_per_s`` this invocation only; ``val``: metrics after the last epoch."""

    out: Path
    model_path: Path
    epochs: int
    seconds: float
    samples_per_s: float
    val: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _meta(ds: Any) -> dict[str, Any]:
    meta = getattr(ds, "meta", None)
    return meta if isinstance(meta, dict) else {}


def dataset_bounds(ds: Any, margin: float = 0.2) -> list[list[float]] | None:
    """Map-frame box of the car plus ``margin`` metres: the dataset's ``meta["bounds"]`` (ground-truth
    extent), else the simulator's track centred on the origin; ``None`` if it has neither."""
    meta = _meta(ds)
    if meta.get("bounds"):
        return [[float(b[0]) - margin, float(b[1]) + margin] for b in meta["bounds"]]
    track = meta.get("sim_config", {}).get("track")
    if not track:
        return None
    hx, hy = float(track["size_x"]) / 2.0, float(track["size_y"]) / 2.0
    return [[-hx - margin, hx + margin], [-hy - margin, hy + margin]]


def build_model_config(cfg: Stage1Config, ds: Any) -> ADMNConfig:
    """``ADMNConfig``: ``cfg.model`` over the network of ``cfg.init`` (else the defaults with the
    dataset's nodes, modalities and task fields). The head's mean bounds: the init's if the task's
    ``positions`` of the dataset lie inside them, else the dataset's (:func:`dataset_bounds`)."""
    base = {}
    if cfg.init:
        base = {k: v for k, v in load_checkpoint(cfg.init, kind="stage1", with_optimizer=False).model_config.items()
                if k != "version"}
    over = {**base, **cfg.model}
    meta = _meta(ds)
    over.update({key: list(meta[key]) for key in ("nodes", "modalities") if key not in over and meta.get(key)})
    task = get_task(meta.get("task"))
    over.update({k: v for k, v in task.model_overrides(meta).items() if k not in cfg.model})
    gt = task.positions(ds)

    def inside(b: Any) -> bool:
        (x0, x1), (y0, y1) = b
        return not gt.size or bool(gt[:, 0].min() >= x0 and gt[:, 0].max() <= x1 and gt[:, 1].min() >= y0
                                   and gt[:, 1].max() <= y1)

    if "bounds" not in cfg.model and not (base.get("bounds") and inside(base["bounds"])):
        over.pop("bounds", None)
        b = dataset_bounds(ds)
        if b is not None:
            over["bounds"] = b
    try:
        mcfg = ADMNConfig.from_dict({**over, "full_drop": cfg.full_drop})
    except (ValueError, TypeError) as exc:
        raise TrainConfigError(f"Stage1Config.model: {exc}") from exc
    if not inside(mcfg.bounds):
        raise TrainConfigError(f"{cfg.data}: ground truth x [{gt[:, 0].min():.2f}, {gt[:, 0].max():.2f}], "
                               f"y [{gt[:, 1].min():.2f}, {gt[:, 1].max():.2f}] falls outside the model's "
                               f"mean bounds {mcfg.bounds}; set model.bounds")
    return mcfg


def validate_stage1(model: ADMNModel, ds: Any, n: int, batch_size: int, seed: int) -> dict[str, float]:
    """Validation scores (``*_cm`` errors / ``*_acc`` accuracies): clean full model, and under
    continuous noise the full model and naive 25%."""
    streams = model.cfg.streams
    k = get_task(model.cfg.task).metric.key
    rng = np.random.default_rng(derive_seed(seed, "val-noise"))
    sig = NoiseSampler(streams, {"continuous": 1.0}, modality_prob=0.5).draw(n, rng)
    naive = naive_allocation(len(streams), budget_from_fraction(0.25, len(streams), model.cfg.vit_depth),
                             model.cfg.vit_depth)
    noise_seed = derive_seed(seed, "val-gauss")
    return {f"clean_full_{k}": mean_score(model, ds, n, None, None, batch_size),
            f"noisy_full_{k}": mean_score(model, ds, n, None, sig, batch_size, noise_seed),
            f"noisy_naive25_{k}": mean_score(model, ds, n, naive, sig, batch_size, noise_seed)}


def val_text(val: Mapping[str, float], task: str) -> str:
    """``clean 5.0 cm, noisy 39.8 cm, noisy naive-25% 41.8 cm`` (or accuracies in %)."""
    m = get_task(task).metric
    return ", ".join(f"{what} {m.fmt(val.get(f'{key}_{m.key}', float('nan')))}" for what, key in
                     (("clean", "clean_full"), ("noisy", "noisy_full"), ("noisy naive-25%", "noisy_naive25")))


def warm_start(model: ADMNModel, path: str | Path, log: Callable[[str], None] = print) -> None:
    """Load every weight of the stage-1 checkpoint ``path`` into ``model`` (``Stage1Config.init``);
    :class:`CheckpointError` naming the fields if it is another network."""
    ck = load_checkpoint(path, kind="stage1", with_optimizer=False)
    stored = stored_config(path, ck.meta, "model_config", ADMNConfig).to_dict()
    want = model.cfg.to_dict()  # the head's bounds are no weights: a new site may move them
    diff = [f"{k} = {stored.get(k)!r} != {v!r}" for k, v in want.items() if stored.get(k) != v and k != "bounds"]
    if diff:
        raise CheckpointError(f"{path}: not the same network, cannot start from it: {'; '.join(diff)}")
    ck.load_into(model)
    log(f"[stage1] whole network initialised from {path} (epoch {ck.epoch})")


def train_stage1(cfg: Stage1Config, resume: bool = False, force: bool = False,
                 log: Callable[[str], None] = print) -> StageResult:
    """Run stage 1 as configured (``resume``: continue ``cfg.out``'s :data:`LAST` up to ``cfg.epochs``; ``force``:
    start over); :class:`TrainConfigError` (config, data) or :class:`CheckpointError` (resume checkpoint)."""
    out = start_run(cfg.out, cfg.threads, resume, force)
    train_ds, val_ds = open_split(cfg.data, "train"), open_split(cfg.data, "val")
    mcfg = build_model_config(cfg, train_ds)
    n_train, n_val = checked_splits(cfg, mcfg, train_ds, val_ds, f" vs {cfg.init}" if cfg.init else "")
    if n_train < cfg.batch_size:
        log(f"[stage1] note: {n_train} training samples < batch size {cfg.batch_size}; one partial batch per epoch")

    seed_everything(cfg.seed, "init")
    model = ADMNModel(mcfg)
    if cfg.init:
        warm_start(model, cfg.init, log)
    opt = make_adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    ck = load_resume(resume, out / LAST, "stage1", mcfg.to_dict(), cfg.to_dict(), RESUME_FIXED, log, "stage1")
    start_epoch, history, val = continue_run(ck, model, opt, cfg.epochs, log, "stage1")

    streams = mcfg.streams
    classes = _meta(train_ds).get("classes")

    def meta(epoch: int) -> dict[str, Any]:
        return {"model_config": mcfg.to_dict(), "train_config": cfg.to_dict(), "stage": 1, "epoch": epoch,
                "metrics": val, "history": history, **({"classes": list(classes)} if classes else {})}

    steps_per_epoch = max(1, n_train // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    sampler = NoiseSampler(streams, cfg.noise_regimes, cfg.modality_draw_prob, cfg.clean_prob)
    budgets = sorted({budget_from_fraction(f, len(streams), mcfg.vit_depth) for f in cfg.alloc_fractions})
    if any(p > 0 for _, p in cfg.alloc_ramp):  # a budget the allocations cannot meet fails now, not mid-run
        check_budgets(budgets, len(streams), mcfg.vit_depth, mcfg.first_block,
                      f"Stage1Config.alloc_fractions {list(cfg.alloc_fractions)}")
    tput = Throughput()
    t_start = time.perf_counter()
    log(f"[stage1] {n_train} train / {n_val} val samples, {steps_per_epoch} steps/epoch x {cfg.epochs} epochs, "
        f"batch {cfg.batch_size}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, "
        f"torch threads {torch.get_num_threads()}")

    for epoch in range(start_epoch, cfg.epochs):
        rng = seed_everything(cfg.seed, "stage1", epoch)
        noise_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "stage1-gauss", epoch))
        p_drop = cfg.layerdrop_at(epoch)
        w_nll, w_dist = cfg.loss_weights_at(epoch)
        noisy_phase = epoch >= cfg.noise_start_epoch
        p_alloc = cfg.alloc_at(epoch) if noisy_phase else 0.0

        def step_loss(sel: np.ndarray, inputs: dict[str, torch.Tensor], gt: torch.Tensor) -> torch.Tensor:
            mask = None
            if noisy_phase:
                sig = sampler.draw(len(sel), rng)
                inputs = apply_noise(inputs, sig, streams, noise_gen)
                if p_alloc > 0 and rng.random() < p_alloc:
                    mask = noise_aware_masks(sig, streams, budgets, mcfg.vit_depth, mcfg.first_block, rng,
                                             cfg.alloc_temperature)
            present = draw_missing(len(sel), cfg.missing_prob, rng, streams,
                                   cfg.modality_missing if noisy_phase else None)
            # an allocation batch runs exactly its budget: no LayerDrop on top
            model.set_layerdrop(0.0 if mask is not None else p_drop, 0.0 if mask is not None else cfg.full_drop)
            return get_task(mcfg.task).loss(model(inputs, mask, present), gt, w_nll, w_dist)

        losses, lr = run_epoch(model, opt, train_ds, cfg, rng, mcfg,
                               lambda i: lr_at(epoch * steps_per_epoch + i, total_steps, cfg.lr, cfg.min_lr, warmup),
                               step_loss, tput, f"stage1 epoch {epoch + 1}/{cfg.epochs}", f"[stage1] epoch {epoch + 1}")
        val = validate_stage1(model, val_ds, n_val, cfg.batch_size, cfg.seed)
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "loss_weights": [w_nll, w_dist],
               "layerdrop": p_drop, "alloc": p_alloc, "noise": noisy_phase,
               "lr": lr, "val": val, "samples_per_s": tput.rate}
        history.append(rec)
        save_checkpoint(out / LAST, kind="stage1", state_dict=model.state_dict(), meta=meta(epoch + 1),
                        optimizer_state=opt.state_dict())
        log(f"[stage1] epoch {epoch + 1}/{cfg.epochs} loss {rec['loss']:.3f} layerdrop {p_drop:.2f} "
            + (f"alloc {p_alloc:.2f} " if p_alloc > 0 else "") +
            f"noise {'on' if noisy_phase else 'off'} | val {val_text(val, mcfg.task)} | "
            f"{tput.rate:.0f} samples/s, elapsed {fmt_duration(time.perf_counter() - t_start)}")

    done = max(start_epoch, cfg.epochs)
    final = save_checkpoint(out / FINAL, kind="stage1", state_dict=model.state_dict(), meta=meta(done))
    return finish_run("stage 1", StageResult(out, final, done, time.perf_counter() - t_start, tput.rate, val, history),
                      {"stage": 1, "model": str(final), "model_config": mcfg.to_dict()}, cfg, log)


def finish_run(title: str, res: StageResult, summary: dict[str, Any], cfg: Any,
               log: Callable[[str], None]) -> StageResult:
    """Write ``summary.json`` (``summary`` plus the run's figures) and log a readable summary."""
    write_json(res.out / SUMMARY, {**summary, "epochs": res.epochs, "seconds": res.seconds,
                                   "samples_per_s": res.samples_per_s, "val": res.val, "history": res.history,
                                   "train_config": cfg.to_dict()})
    log("\n".join([f"==== {title} done: {res.epochs} epochs, {fmt_duration(res.seconds)} this run, "
                   f"{res.samples_per_s:.0f} samples/s", f"     checkpoint: {res.model_path}",
                   *(f"     val {k}: {v:.2f}" for k, v in res.val.items())]))
    return res
