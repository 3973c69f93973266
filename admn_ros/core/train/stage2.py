"""Stage 2: allocation controllers on the frozen stage-1 network (variants ``budget``, ``universal`` and ``ae``;
the objective, :func:`expected_split_loss`, the recipe and the files of a run directory: docs/TRAINING.md)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, load_into, save_checkpoint, stored_config
from admn_ros.core.controller import AllocationController, ControllerConfig
from admn_ros.core.model import ADMNConfig, ADMNModel
from admn_ros.core.splits import (count_embeddings, sampled_splits, split_candidates, split_log_scores,
                                  split_losses)
from admn_ros.core.streams import MODALITIES, budget_from_fraction, naive_allocation
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import (LAST, NoiseSampler, Throughput, apply_noise, checked_splits, continue_run,
                                        derive_seed, fmt_duration, load_resume, lr_at, make_adamw, open_split,
                                        run_epoch, mean_score, seed_everything, start_run, to_torch)
from admn_ros.core.train.config import TABLE_FRACTIONS, Stage2Config, TrainConfigError
from admn_ros.core.train.stage1 import StageResult, finish_run

FINAL = "controller.safetensors"
RESUME_FIXED = ("data", "stage1", "variant", "budget", "budget_fraction", "budget_range", "batch_size", "seed",
                "train_samples", "controller", "init")


def load_stage1(path: str | Path) -> tuple[ADMNModel, str]:
    """The frozen stage-1 network (eval mode, no grads) and its ``weights_id``."""
    ck = load_checkpoint(path, kind="stage1", with_optimizer=False)
    model = ADMNModel(stored_config(path, ck.meta, "model_config", ADMNConfig))
    ck.load_into(model)
    model.eval().requires_grad_(False)
    return model, str(ck.meta["weights_id"])


def load_controller(path: str | Path, model: ADMNModel | None = None, model_weights_id: str | None = None,
                    strict_parent: bool = False) -> tuple[AllocationController, dict[str, Any]]:
    """A controller checkpoint -> (controller in eval mode, its metadata), checked against
    ``model``'s streams and depth. Trained on another stage-1 network than ``model_weights_id``:
    raises if ``strict_parent``, else ``meta["parent_mismatch"] = True``."""
    ck = load_checkpoint(path, kind="controller", with_optimizer=False)
    ccfg = stored_config(path, ck.meta, "controller_config", ControllerConfig)
    if model is not None:
        mc = model.cfg
        got = (list(ccfg.nodes), list(ccfg.modalities), ccfg.depth)
        want = (list(mc.nodes), list(mc.modalities), mc.vit_depth)
        if got != want:
            raise CheckpointError(f"{path}: controller streams/depth {got} != model {want}")
    ctrl = AllocationController(ccfg)
    ck.load_into(ctrl)
    ctrl.eval()
    meta = dict(ck.meta)
    parent = meta.get("stage1_weights_id")
    if model_weights_id is not None and parent is not None and parent != model_weights_id:
        if strict_parent:
            raise CheckpointError(f"{path}: trained on stage-1 weights {parent}, but the loaded network is "
                                  f"{model_weights_id}")
        meta["parent_mismatch"] = True
    return ctrl, meta


@torch.no_grad()
def fold_universal(src: AllocationController, budget: int) -> AllocationController:
    """A fixed-budget controller equal to the universal ``src`` at ``budget`` (exact FiLM folding).

    FiLM ``tok * (1 + g) + b`` followed by ``fc1`` equals ``fc1'`` with
    ``W' = W diag(1 + g)`` and ``b' = W b + b1``, since ``g, b`` depend only on the budget.
    """
    if not src.cfg.universal:
        raise ValueError("fold_universal needs a universal (budget-conditioned) controller")
    d = src.cfg.to_dict()
    d.update(universal=False, budget=int(budget), autoencoder=False)
    dst = AllocationController(ControllerConfig.from_dict(d))
    sd = {k: v for k, v in src.state_dict().items()
          if not k.startswith("decoders.") and not k.startswith("alloc_head.budget_mlp.")}
    frac = src.budget_fraction(int(budget), 1)
    gamma, beta = src.alloc_head.budget_mlp(frac.reshape(-1, 1)).chunk(2, dim=-1)
    w, b1 = src.alloc_head.fc1.weight, src.alloc_head.fc1.bias
    sd["alloc_head.fc1.weight"] = w * (1.0 + gamma[0])[None, :]
    sd["alloc_head.fc1.bias"] = w @ beta[0] + b1
    dst.load_state_dict(sd)
    return dst


@torch.no_grad()
def validate_controller(model: ADMNModel, ctrl: AllocationController, ds: Any, n: int, budgets: list[int],
                        regimes: Mapping[str, float], batch_size: int, seed: int) -> dict[str, float]:
    """Mean val score per budget of the controller and of naive allocation on identical noisy inputs
    (``admn_L{L}_cm`` / ``naive_L{L}_acc``...), and the noise head's L1 (``sigma_l1``)."""
    streams = model.cfg.streams
    k = get_task(model.cfg.task).metric.key
    sig = NoiseSampler(streams, regimes, modality_prob=0.5).draw(n, np.random.default_rng(derive_seed(seed, "v2")))
    noise_seed = derive_seed(seed, "v2-gauss")
    ctrl.eval()
    res: dict[str, float] = {}
    for L in budgets:
        def admn(x: dict[str, torch.Tensor], L: int = L) -> torch.Tensor:
            return ctrl.allocate(x, budget=L)["mask"] > 0.5
        naive = naive_allocation(len(streams), L, model.cfg.vit_depth)
        res[f"admn_L{L}_{k}"] = mean_score(model, ds, n, admn, sig, batch_size, noise_seed)
        res[f"naive_L{L}_{k}"] = mean_score(model, ds, n, naive, sig, batch_size, noise_seed)
    gen = torch.Generator().manual_seed(noise_seed)
    errs = []
    for s in range(0, n, batch_size):
        sel = np.arange(s, min(n, s + batch_size))
        inputs, _ = to_torch(ds.batch(sel), streams.modalities)
        inputs = apply_noise(inputs, sig[s:s + len(sel)], streams, gen)
        pred = ctrl(inputs, budget=budgets[0])["sigma"]
        errs.append((pred - torch.from_numpy(sig[s:s + len(sel)])).abs().mean().item())
    res["sigma_l1"] = float(np.mean(errs)) if errs else float("nan")
    return res


def split_table(cfg: Stage2Config, ccfg: ControllerConfig, budgets: list[int]) -> dict[int, np.ndarray | None]:
    """The candidate splits per budget: every split, or ``None`` where there are more than
    ``cfg.split_limit`` (sampled per batch then, :func:`sampled_splits`)."""
    out: dict[int, np.ndarray | None] = {}
    for L in budgets:
        try:
            out[L] = split_candidates(ccfg.n_streams, L, ccfg.depth, ccfg.first_block, cfg.split_limit)
        except ValueError as exc:
            if "exceed the limit" not in str(exc):
                raise TrainConfigError(f"Stage2Config: {exc}") from exc
            out[L] = None
    return out


def expected_split_loss(model: ADMNModel, logits: torch.Tensor, inputs: Mapping[str, torch.Tensor],
                        target: torch.Tensor, budget: Any, table: Mapping[int, np.ndarray | None], cfg: Stage2Config,
                        first_block: bool = True, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, float]:
    """The allocation objective: per sample, ``sum_c softmax(score / T)_c * loss_c`` over the
    candidate splits ``c`` of its budget (every split, or the per-sample sample of
    :func:`sampled_splits` where ``table`` has ``None``; scores:
    :func:`~admn_ros.core.splits.split_log_scores`, losses: the frozen network, no grad).
    Returns ``(mean over the batch, differentiable; mean loss of the deterministic choice,
    for logging)``."""
    b = logits.shape[0]
    bt = torch.as_tensor(budget).long()
    budgets = bt.expand(b) if bt.dim() == 0 else bt
    groups = []
    for L in sorted(set(budgets.tolist())):
        rows = (budgets == L).nonzero().squeeze(1)
        lg = logits.index_select(0, rows)
        if table[L] is None:
            counts, keep = sampled_splits(lg, L, cfg.k_samples, cfg.explore_scale, first_block, generator)
        else:
            counts, keep = torch.from_numpy(table[L]), None
        groups.append((rows, lg, counts, keep))
    ks = sorted({int(k) for g in groups for k in g[2].unique().tolist()})
    emb = count_embeddings(model, inputs, ks)
    total = logits.new_zeros(())
    chosen = 0.0
    for rows, lg, counts, keep in groups:
        lmat = split_losses(model, None, target.index_select(0, rows), counts, cfg.loss_weights,
                            emb=(ks, emb.index_select(1, rows)))[0].T  # [b_L, C]
        s = split_log_scores(lg, counts, first_block)
        if keep is not None:
            s = s.masked_fill(~keep, float("-inf"))
        q = torch.softmax(s / cfg.split_temperature, dim=1)
        total = total + (q * lmat).sum()
        chosen += float(lmat.gather(1, s.argmax(1, keepdim=True)).sum())
    return total / b, chosen / b


def build_controller_config(cfg: Stage2Config, mcfg: ADMNConfig) -> ControllerConfig:
    over: dict[str, Any] = dict(cfg.controller)
    if cfg.variant == "budget":
        over.update(budget=cfg.resolve_budget(mcfg.n_streams, mcfg.vit_depth, mcfg.first_block), universal=False)
    else:
        lo, hi = cfg.resolve_range(mcfg.n_streams, mcfg.vit_depth, mcfg.first_block)
        l25 = budget_from_fraction(0.25, mcfg.n_streams, mcfg.vit_depth)
        over.update(budget=l25 if lo <= l25 <= hi else lo, universal=True)
    over["autoencoder"] = cfg.variant == "ae"
    try:
        return ControllerConfig.for_model(mcfg, **over)
    except (ValueError, TypeError) as exc:
        raise TrainConfigError(f"Stage2Config.controller: {exc}") from exc


def _init_controller(ctrl: AllocationController, path: str, log: Callable[[str], None]) -> None:
    src, meta = load_controller(path)
    if src.cfg.universal and not ctrl.cfg.universal:
        src = fold_universal(src, ctrl.cfg.budget)
        log(f"[stage2] initialised from universal controller {path} folded at budget {ctrl.cfg.budget}")
    else:
        log(f"[stage2] initialised from controller {path}")
    sd = {k: v for k, v in src.state_dict().items() if k in ctrl.state_dict()}
    own = {k: v for k, v in ctrl.state_dict().items() if k.startswith("decoders.")}  # the AE's, never shipped
    load_into(ctrl, {**own, **sd}, path=path, strict=False)


def train_stage2(cfg: Stage2Config, resume: bool = False, force: bool = False,
                 log: Callable[[str], None] = print) -> StageResult:
    """Train one controller as configured; :class:`TrainConfigError` (config, data, budgets) or
    :class:`CheckpointError` (stage-1 or resume checkpoint)."""
    out = start_run(cfg.out, cfg.threads, resume, force)
    model, parent_id = load_stage1(cfg.stage1)
    mcfg = model.cfg
    ccfg = build_controller_config(cfg, mcfg)  # validates budgets before touching data
    lo, hi = (ccfg.budget, ccfg.budget) if cfg.variant == "budget" else \
        cfg.resolve_range(mcfg.n_streams, mcfg.vit_depth, mcfg.first_block)
    table = split_table(cfg, ccfg, list(range(lo, hi + 1)))
    train_ds, val_ds = open_split(cfg.data, "train"), open_split(cfg.data, "val")
    n_train, n_val = checked_splits(cfg, mcfg, train_ds, val_ds)
    streams = mcfg.streams

    seed_everything(cfg.seed, "stage2-init", cfg.variant)
    ctrl = AllocationController(ccfg)
    if cfg.init:
        _init_controller(ctrl, cfg.init, log)
    opt = make_adamw(ctrl.parameters(), cfg.lr, cfg.weight_decay)
    total_epochs = cfg.noise_warmup_epochs + cfg.epochs
    ck = load_resume(resume, out / LAST, "controller_train", mcfg.to_dict(), cfg.to_dict(), RESUME_FIXED, log,
                     "stage2", controller_config=ccfg.to_dict())
    if ck is not None and ck.meta.get("stage1_weights_id") != parent_id:
        raise CheckpointError(f"{ck.path}: was trained on stage-1 weights {ck.meta.get('stage1_weights_id')}, "
                              f"but {cfg.stage1} is {parent_id}")
    if ck is not None and cfg.variant == "ae" and ck.epoch > cfg.noise_warmup_epochs:
        ctrl.freeze_encoder(True)
        opt = make_adamw(ctrl.parameters(), cfg.lr, cfg.weight_decay)
    start_epoch, history, val = continue_run(ck, ctrl, opt, total_epochs, log, "stage2")

    budgets_val = [ccfg.budget] if cfg.variant == "budget" else [
        L for L in (budget_from_fraction(f, mcfg.n_streams, mcfg.vit_depth) for f in TABLE_FRACTIONS)
        if lo <= L <= hi] or [lo]
    sampler = NoiseSampler(streams, cfg.noise_regimes, cfg.modality_draw_prob, 0.0)
    nweights = {m: 1.0 / MODALITIES[m].sigma_max for m in mcfg.modalities}  # L1 relative to each range
    steps_per_epoch = max(1, n_train // cfg.batch_size)
    alloc_steps = steps_per_epoch * max(1, cfg.epochs)
    tput = Throughput()
    t0 = time.perf_counter()
    fixed = cfg.variant == "budget"
    label = cfg.variant + (f" L={ccfg.budget}" if fixed else f" L in [{lo}, {hi}]")
    metric = get_task(mcfg.task).metric

    def meta(epoch: int, export: bool = False) -> dict[str, Any]:
        cc = {**ccfg.to_dict(), **({"autoencoder": False} if export else {})}  # the decoder is not shipped
        return {"controller_config": cc, "model_config": mcfg.to_dict(), "train_config": cfg.to_dict(), "stage": 2,
                "variant": cfg.variant, "epoch": epoch, "metrics": val, "history": history,
                "stage1_weights_id": parent_id, "budget": ccfg.budget if fixed else None,
                "budget_range": None if fixed else [lo, hi]}

    log(f"[stage2] controller {label}: {sum(p.numel() for p in ctrl.parameters())} params, {n_train} train / "
        f"{n_val} val samples, {cfg.noise_warmup_epochs} warmup + {cfg.epochs} epochs")

    for epoch in range(start_epoch, total_epochs):
        warm = epoch < cfg.noise_warmup_epochs
        if cfg.variant == "ae" and epoch == cfg.noise_warmup_epochs:
            ctrl.freeze_encoder(True)  # AE: only the allocation head learns from here on
            opt = make_adamw(ctrl.parameters(), cfg.lr, cfg.weight_decay)
        rng = seed_everything(cfg.seed, "stage2", cfg.variant, epoch)
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "stage2-gauss", epoch))
        ggen = torch.Generator().manual_seed(derive_seed(cfg.seed, "stage2-gumbel", epoch))
        phase = ("autoencoder" if cfg.variant == "ae" else "noise-head") if warm else "allocation"
        task_losses: list[float] = []

        def step_loss(sel: np.ndarray, inputs: dict[str, torch.Tensor], gt: torch.Tensor) -> torch.Tensor:
            sig = sampler.draw(len(sel), rng)
            noisy = apply_noise(inputs, sig, streams, gen)
            # every split of a batch's budgets is scored: one budget per batch keeps that cost at one budget's
            budget: Any = ccfg.budget if fixed else torch.from_numpy(rng.integers(lo, hi + 1, size=1)).expand(len(sel))
            if warm and cfg.variant == "ae":
                return ctrl.reconstruction_loss(noisy)
            o = ctrl(noisy, budget=budget)
            noise_loss = ctrl.noise_loss(o["sigma"], torch.from_numpy(sig), modality_weights=nweights)
            if warm:
                return noise_loss
            loss, chosen = expected_split_loss(model, o["logits"], noisy, gt, budget, table, cfg, ctrl.cfg.first_block,
                                               ggen)
            task_losses.append(chosen)
            return loss + cfg.noise_weight * noise_loss if cfg.variant != "ae" and cfg.noise_weight > 0 else loss

        def lr_of(i: int) -> float:
            return cfg.lr if warm else lr_at((epoch - cfg.noise_warmup_epochs) * steps_per_epoch + i, alloc_steps,
                                             cfg.lr, cfg.min_lr, 0, "linear")

        losses, _ = run_epoch(ctrl, opt, train_ds, cfg, rng, mcfg, lr_of, step_loss, tput,
                              f"stage2 {label} epoch {epoch + 1}/{total_epochs} ({phase})",
                              f"[stage2] epoch {epoch + 1}")
        val = validate_controller(model, ctrl, val_ds, n_val, budgets_val, cfg.noise_regimes, cfg.batch_size,
                                  cfg.seed)
        rec = {"epoch": epoch + 1, "phase": phase, "loss": float(np.mean(losses)),
               "task_loss": float(np.mean(task_losses)) if task_losses else None, "val": val,
               "samples_per_s": tput.rate}
        history.append(rec)
        save_checkpoint(out / LAST, kind="controller_train", state_dict=ctrl.state_dict(), meta=meta(epoch + 1),
                        optimizer_state=opt.state_dict())
        vs = ", ".join(f"L={L}: {val[f'admn_L{L}_{metric.key}']:.1f} vs naive {val[f'naive_L{L}_{metric.key}']:.1f}"
                       for L in budgets_val)
        log(f"[stage2] {label} epoch {epoch + 1}/{total_epochs} ({phase}) loss {rec['loss']:.3f} | val {metric.axis} "
            f"{vs}; sigma L1 {val['sigma_l1']:.3f} | {tput.rate:.0f} samples/s, "
            f"elapsed {fmt_duration(time.perf_counter() - t0)}")

    done = max(start_epoch, total_epochs)
    final = save_checkpoint(out / FINAL, kind="controller",  # inference weights only: the AE decoder stays
                            state_dict={k: v for k, v in ctrl.state_dict().items() if not k.startswith("decoders.")},
                            meta=meta(done, export=True))
    res = StageResult(out, final, done, time.perf_counter() - t0, tput.rate, val, history)
    return finish_run(f"stage 2 ({label})", res, {"stage": 2, "variant": cfg.variant, "controller": str(final),
                                                  "controller_config": ccfg.to_dict()}, cfg, log)

