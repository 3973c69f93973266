"""The shipped-model pipeline (``admn-ros train all``, ``make models``): dataset -> stage 1 ->
controllers -> ``models/``, with fixed seeds, sized for <= 60 min on a 2-core CPU.

Steps (each is skipped/resumed if its output already exists, so a re-run continues):

1. dataset: ``generate_dataset(data, samples, seed)`` unless ``data/meta.json`` exists;
   (optional) stage 0, pretraining of the backbones, with ``--stage0-epochs N > 0``: MAE
   reconstruction (``--stage0 mae``, no labels) or the task itself with the spatial readout
   (``--stage0 spatial``, the default recipe's stage 1 for N epochs), for a pooled readout;
2. stage 1 in this process with ``--stage1-threads`` torch threads (from stage 0's backbones
   if it ran), with the backbone readout of ``--readout``; (optional) with
   ``--finetune-epochs N > 0``, the whole stage-1 network (trained or ``--stage1-from``) is
   then finetuned for N epochs with half of its noisy batches under budgeted QoI-aware
   allocations (:data:`FINETUNE_STAGE1`), and that network gets the controllers;
3. stage 2 in two parallel lanes (subprocesses, 1 torch thread each; on 2 cores this is
   faster than one 2-thread process for these small matrices):
   lane A: universal controller, then per-budget controllers for the first half of the budgets;
   lane B: ADMN_AE controller, then (once the universal one exists) the other budgets.
   Per-budget controllers start from the universal controller folded at their budget;
4. ship: ``models/tracking.safetensors``, ``controller_L*.safetensors``,
   ``controller_universal.safetensors``, ``controller_ae.safetensors``, ``manifest.json``.

Logs of the stage-2 subprocesses go to ``<runs>/<name>.log``; the end summary (times,
throughput, validation errors) is printed and written to ``<runs>/pipeline_summary.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from admn_ros.core.streams import budget_from_fraction
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import fmt_duration, metric_key, write_json
from admn_ros.core.train.config import (ESTIMATORS, TABLE_FRACTIONS, Stage0Config, Stage1Config, TrainConfigError,
                                        load_config_file)


@dataclass
class PipelineConfig:
    """Knobs of the pipeline; the defaults are the shipped recipe (see docs/TRAINING.md)."""

    task: str = "tracking"
    data: str = "data/gdtm_sim"
    runs: str = "runs/shipped"
    models: str = "models"
    seed: int = 0
    samples: int = 30000
    frames_per_episode: int = 50
    workers: int = 2
    stage1_epochs: int = 14
    stage1_threads: int = 2
    stage1_val_samples: int = 512
    universal_epochs: int = 4
    budget_epochs: int = 1
    ae_epochs: int = 2
    stage2_val_samples: int = 512
    stage2_train_samples: int = 12000
    fractions: tuple[float, ...] = TABLE_FRACTIONS
    lanes: int = 2
    progress: bool = True
    extra_stage1: dict[str, Any] = field(default_factory=dict)
    readout: str = "spatial"
    fusion_token_norm: bool = False
    stage0_epochs: int = 0
    stage0: str = "mae"
    activity_subjects: int = 40
    activity_windows: int = 20
    activity_frames: int = 5
    stage2_estimator: str = "ste"
    stage1_from: str = ""
    finetune_epochs: int = 0


#: Stage-1 overrides of the activity task: modality dropout on every modality (the body is
#: seen by all three; each backbone must learn alone, so a clean one can replace a noisy one).
ACTIVITY_STAGE1: dict[str, Any] = {"modality_missing": {"rgb": 0.2, "depth": 0.2, "radar": 0.2}}

#: Stage-1 fields of the optional finetune (``--finetune-epochs``): a low learning rate
#: without warmup, LayerDrop and noise from the start, and half of the noisy batches under
#: budgeted QoI-aware allocations (``Stage1Config.alloc_ramp``; docs/TRAINING.md "Session 16").
FINETUNE_STAGE1: dict[str, Any] = {"lr": 1e-4, "min_lr": 1e-5, "warmup_epochs": 0.0,
                                   "layerdrop_ramp": [[0, 0.2]], "loss_ramp": [[0, 1.0, 0.05]],
                                   "noise_start_epoch": 0, "alloc_ramp": [[0, 0.5]]}

#: What stage 0 can pretrain the backbones on (``PipelineConfig.stage0``).
STAGE0_KINDS: tuple[str, ...] = ("mae", "spatial")

#: Defaults that differ for the activity task (``--task activity``).
ACTIVITY_DEFAULTS: dict[str, Any] = {"data": "data/activity_sim", "runs": "runs/activity",
                                     "models": "models/activity"}


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    d = PipelineConfig()
    p.add_argument("--task", choices=["tracking", "activity"], default="tracking",
                   help="tracking (GDTM-style, default) or activity (MM-Fi-style; data/runs/models default to "
                        "data/activity_sim, runs/activity, models/activity)")
    p.add_argument("--data", default=None, help=f"dataset root; generated if missing (default {d.data})")
    p.add_argument("--runs", default=None, help=f"run directories (default {d.runs})")
    p.add_argument("--models", default=None, help=f"where the shipped models go (default {d.models})")
    p.add_argument("--subjects", type=int, default=d.activity_subjects,
                   help="activity: simulated subjects if the dataset must be generated")
    p.add_argument("--windows-per-activity", type=int, default=d.activity_windows,
                   help="activity: windows per (subject, activity) if the dataset must be generated")
    p.add_argument("--frames", type=int, default=d.activity_frames, help="activity: frames per window")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--samples", type=int, default=d.samples, help="dataset size if it must be generated")
    p.add_argument("--frames-per-episode", type=int, default=d.frames_per_episode,
                   help="consecutive frames per simulated episode (fewer = more distinct scenes)")
    p.add_argument("--workers", type=int, default=d.workers, help="dataset generation processes")
    p.add_argument("--readout", choices=["spatial", "cls", "mean"], default=d.readout,
                   help="backbone readout (ADMNConfig.readout; 'cls'/'mean' need --stage0-epochs to train)")
    p.add_argument("--fusion-token-norm", action="store_true",
                   help="LayerNorm on the fusion's adapter outputs (ADMNConfig.fusion_token_norm)")
    p.add_argument("--stage0-epochs", type=int, default=d.stage0_epochs,
                   help="stage-0 pretraining epochs of the backbones before stage 1 (0 = none; what it trains: --stage0)")
    p.add_argument("--stage0", choices=list(STAGE0_KINDS), default=d.stage0,
                   help="what stage 0 pretrains the backbones on: mae = masked-patch reconstruction (no labels); "
                        "spatial = the task itself with the spatial readout (the default stage-1 recipe for "
                        "--stage0-epochs epochs), whose backbones then start a pooled-readout stage 1")
    p.add_argument("--stage1-epochs", type=int, default=d.stage1_epochs)
    p.add_argument("--stage1-threads", type=int, default=d.stage1_threads)
    p.add_argument("--stage1-config", default=None, metavar="FILE",
                   help="JSON/YAML file of stage-1 config fields over the recipe, e.g. "
                        "{\"modality_missing\": {\"rgb\": 0.4, \"depth\": 0.4, \"radar\": 0.4}}")
    p.add_argument("--universal-epochs", type=int, default=d.universal_epochs)
    p.add_argument("--budget-epochs", type=int, default=d.budget_epochs)
    p.add_argument("--ae-epochs", type=int, default=d.ae_epochs)
    p.add_argument("--val-samples", type=int, default=d.stage1_val_samples, help="validation samples per epoch")
    p.add_argument("--stage2-train-samples", type=int, default=d.stage2_train_samples,
                   help="training samples per stage-2 epoch (0 = all)")
    p.add_argument("--lanes", type=int, choices=[1, 2], default=d.lanes, help="parallel stage-2 lanes")
    p.add_argument("--stage2-estimator", choices=list(ESTIMATORS), default=d.stage2_estimator,
                   help="how every controller learns its allocation (Stage2Config.estimator): ste (the paper), "
                        "best_of_k, or splits (expected loss over count splits: all of them for activity's 3 streams, "
                        "sampled ones for tracking's 9)")
    p.add_argument("--stage1-from", default=d.stage1_from, metavar="CKPT",
                   help="skip stage 0 and 1 and train the controllers on this stage-1 checkpoint "
                        "(e.g. the shipped models/activity/activity.safetensors); it is shipped unchanged")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                   help="after stage 1 (or --stage1-from), finetune the whole network this many epochs with half "
                        "of its noisy batches under budgeted QoI-aware allocations (0 = none)")
    p.add_argument("--no-progress", action="store_true")


def run_pipeline_args(a: argparse.Namespace) -> int:
    d = PipelineConfig()
    dflt = ACTIVITY_DEFAULTS if a.task == "activity" else {"data": d.data, "runs": d.runs, "models": d.models}
    cfg = PipelineConfig(task=a.task, data=a.data or dflt["data"], runs=a.runs or dflt["runs"],
                         models=a.models or dflt["models"], seed=a.seed, samples=a.samples,
                         activity_subjects=a.subjects, activity_windows=a.windows_per_activity,
                         activity_frames=a.frames,
                         frames_per_episode=a.frames_per_episode, workers=a.workers,
                         readout=a.readout, fusion_token_norm=a.fusion_token_norm,
                         stage0_epochs=a.stage0_epochs, stage0=a.stage0,
                         stage1_epochs=a.stage1_epochs, stage1_threads=a.stage1_threads,
                         stage1_val_samples=a.val_samples, universal_epochs=a.universal_epochs,
                         budget_epochs=a.budget_epochs, ae_epochs=a.ae_epochs, stage2_val_samples=a.val_samples,
                         stage2_train_samples=a.stage2_train_samples, lanes=a.lanes, progress=not a.no_progress,
                         extra_stage1=load_config_file(a.stage1_config),
                         stage2_estimator=a.stage2_estimator, stage1_from=a.stage1_from,
                         finetune_epochs=a.finetune_epochs)
    run_pipeline(cfg)
    return 0


def _stage2_cmd(cfg: PipelineConfig, stage1: Path, name: str, variant: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "admn_ros.core.train.cli", "stage2", "--data", cfg.data, "--stage1", str(stage1),
            "--out", str(Path(cfg.runs) / name), "--variant", variant, "--seed", str(cfg.seed), "--threads", "1",
            "--val-samples", str(cfg.stage2_val_samples), "--train-samples", str(cfg.stage2_train_samples),
            "--estimator", cfg.stage2_estimator, "--resume", "--no-progress", *extra]


@dataclass
class _Job:
    name: str
    cmd: list[str]
    needs: str | None = None  # name of a job that must finish first


def _run_lane(jobs: list[_Job], done: dict[str, threading.Event], runs: Path, status: dict[str, Any],
              log: Any) -> None:
    for job in jobs:
        if job.needs:
            done[job.needs].wait()
            if status.get(job.needs, {}).get("rc") != 0:
                status[job.name] = {"rc": -1, "error": f"skipped: {job.needs} failed"}
                done[job.name].set()
                continue
        t0 = time.perf_counter()
        logf = runs / f"{job.name}.log"
        log(f"[all] start {job.name} (log {logf})")
        with open(logf, "a") as fh:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            rc = subprocess.call(job.cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        secs = time.perf_counter() - t0
        status[job.name] = {"rc": rc, "seconds": secs}
        summ = runs / job.name / "summary.json"
        if rc == 0 and summ.is_file():
            s = json.loads(summ.read_text())
            status[job.name].update(val=s.get("val"), samples_per_s=s.get("samples_per_s"))
        log(f"[all] {job.name} {'done' if rc == 0 else f'FAILED (rc {rc}, see {logf})'} in {fmt_duration(secs)}")
        done[job.name].set()


def _locked(log: Any) -> Any:
    lock = threading.Lock()

    def out(msg: str) -> None:
        with lock:
            log(msg)
            sys.stdout.flush()

    return out


#: Stage-1 fields the pipeline sets from its own flags (not overridable by ``extra_stage1``).
_PIPELINE_STAGE1_KEYS: frozenset[str] = frozenset({"data", "out", "epochs", "seed", "val_samples", "threads",
                                                  "progress", "init"})


def _check_stage1_overrides(extra: dict[str, Any], model_over: dict[str, Any]) -> None:
    """Raise :class:`TrainConfigError` for stage-1 overrides that are unknown, invalid or the pipeline's own."""
    own = sorted(_PIPELINE_STAGE1_KEYS & set(extra))
    if own:
        raise TrainConfigError(f"stage-1 overrides {own} are set by the pipeline's own flags "
                               "(--data, --runs, --stage1-epochs, --seed, --val-samples, --stage1-threads, "
                               "--stage0-epochs); remove them from the stage-1 config")
    Stage1Config.from_dict({**extra, "data": "", "out": "", "model": model_over})


def _given_stage1(cfg: PipelineConfig, runs: Path) -> Path | None:
    """``--stage1-from``: check it is a stage-1 checkpoint of the task and copy it into the
    run directory (so shipping it over itself in ``--models`` is safe); else ``None``."""
    if not cfg.stage1_from:
        return None
    import shutil

    from admn_ros.core.checkpoint import CheckpointError, read_metadata

    try:
        meta = read_metadata(cfg.stage1_from)
    except (CheckpointError, OSError) as exc:
        raise TrainConfigError(f"--stage1-from {cfg.stage1_from}: {exc}") from exc
    task = (meta.get("model_config") or {}).get("task", "tracking")
    if meta.get("kind") != "stage1" or task != cfg.task:
        raise TrainConfigError(f"--stage1-from {cfg.stage1_from}: not a {cfg.task} stage-1 checkpoint "
                               f"(kind {meta.get('kind')!r}, task {task!r})")
    dst = runs / "stage1_given.safetensors"
    shutil.copyfile(cfg.stage1_from, dst)
    return dst


def _run_stage0(cfg: PipelineConfig, runs: Path, model_over: dict[str, Any], log: Any) -> Path:
    """Stage 0 into ``<runs>/stage0``; returns the checkpoint stage 1 starts from.

    ``mae``: :func:`~admn_ros.core.train.stage0.train_stage0` on the backbones alone.
    ``spatial``: :func:`~admn_ros.core.train.stage1.train_stage1` with the task's default recipe
    and the spatial readout; only its backbones (not the readout head or the fusion) are used.
    """
    from admn_ros.core.train.stage0 import BACKBONE_KEYS, train_stage0

    backbone_over = {k: v for k, v in model_over.items() if k in BACKBONE_KEYS}  # stage 0 has no fusion
    if cfg.stage0 == "mae":
        s0cfg = Stage0Config(data=cfg.data, out=str(runs / "stage0"), epochs=cfg.stage0_epochs, seed=cfg.seed,
                             threads=cfg.stage1_threads, progress=cfg.progress, model=backbone_over)
        return train_stage0(s0cfg, resume=True, log=log)
    from admn_ros.core.train.stage1 import train_stage1

    recipe = dict(ACTIVITY_STAGE1) if cfg.task == "activity" else {}
    s0cfg = Stage1Config(data=cfg.data, out=str(runs / "stage0"), epochs=cfg.stage0_epochs, seed=cfg.seed,
                         val_samples=cfg.stage1_val_samples, threads=cfg.stage1_threads, progress=cfg.progress,
                         model={**backbone_over, "readout": "spatial"}, **recipe)
    log(f"[all] stage 0: the task with the spatial readout for {cfg.stage0_epochs} epochs (backbones for stage 1)")
    return train_stage1(s0cfg, resume=True, log=log).model_path


def _run_finetune(cfg: PipelineConfig, runs: Path, stage1: Path, extra: dict[str, Any],
                  model_over: dict[str, Any], log: Any) -> Any:
    """``--finetune-epochs``: the whole ``stage1`` network trained on for ``cfg.finetune_epochs``
    epochs with the stage-1 recipe ``extra`` under :data:`FINETUNE_STAGE1`, into
    ``<runs>/finetune/`` (resumed if it exists); returns the :class:`StageResult`."""
    from admn_ros.core.train.stage1 import train_stage1

    recipe = {k: v for k, v in extra.items() if k != "init"}
    recipe.update(FINETUNE_STAGE1, init=str(stage1))
    ftcfg = Stage1Config(data=cfg.data, out=str(runs / "finetune"), epochs=cfg.finetune_epochs, seed=cfg.seed,
                         val_samples=cfg.stage1_val_samples, threads=cfg.stage1_threads, progress=cfg.progress,
                         model=model_over, **recipe)
    log(f"[all] finetune: the whole stage-1 network for {cfg.finetune_epochs} epochs under budgeted "
        f"QoI-aware allocations")
    return train_stage1(ftcfg, resume=True, log=log)


def run_pipeline(cfg: PipelineConfig, log: Any = print) -> dict[str, Any]:
    """Run every step (see the module docstring); returns the summary dict."""
    import torch

    log = _locked(log)
    from admn_ros.core.train.ship import ship_models
    from admn_ros.core.train.stage1 import train_stage1

    t_all = time.perf_counter()
    runs = Path(cfg.runs)
    runs.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"config": {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in cfg.__dict__.items()}, "steps": {}}

    # Stage-1 overrides are checked now, not after the dataset and stage 0.
    extra = dict(ACTIVITY_STAGE1) if cfg.task == "activity" else {}
    extra.update(cfg.extra_stage1)
    model_over = {**dict(extra.pop("model", {})), **({"readout": cfg.readout} if cfg.readout != "spatial" else {}),
                  **({"fusion_token_norm": True} if cfg.fusion_token_norm else {})}
    _check_stage1_overrides(extra, model_over)
    if cfg.stage0 not in STAGE0_KINDS:
        raise TrainConfigError(f"unknown stage 0 {cfg.stage0!r}; known: {list(STAGE0_KINDS)}")
    given = _given_stage1(cfg, runs)  # checked before any work

    # 1. dataset
    t0 = time.perf_counter()
    if (Path(cfg.data) / "meta.json").is_file():
        log(f"[all] dataset {cfg.data} exists; reusing it")
    elif cfg.task == "activity":
        from admn_ros.core.data.activity import generate_activity_dataset

        log(f"[all] generating activity windows into {cfg.data} ({cfg.activity_subjects} subjects x "
            f"{cfg.activity_windows} windows per activity, {cfg.activity_frames} frames, seed {cfg.seed})")
        generate_activity_dataset(cfg.data, n_subjects=cfg.activity_subjects,
                                  windows_per_activity=cfg.activity_windows, frames=cfg.activity_frames,
                                  seed=cfg.seed, workers=cfg.workers, progress=cfg.progress)
    else:
        from admn_ros.core.data import generate_dataset

        log(f"[all] generating {cfg.samples} samples into {cfg.data} (seed {cfg.seed}, {cfg.workers} workers)")
        generate_dataset(cfg.data, n_samples=cfg.samples, seed=cfg.seed, workers=cfg.workers,
                         frames_per_episode=cfg.frames_per_episode, progress=cfg.progress)
    summary["steps"]["dataset"] = {"seconds": time.perf_counter() - t0}

    # 1b. optional stage 0
    if given is not None:
        log(f"[all] --stage1-from {cfg.stage1_from}: skipping stage 0 and stage 1")
    elif cfg.stage0_epochs > 0:
        t0 = time.perf_counter()
        extra["init"] = str(_run_stage0(cfg, runs, model_over, log))
        summary["steps"]["stage0"] = {"seconds": time.perf_counter() - t0, "epochs": cfg.stage0_epochs,
                                      "kind": cfg.stage0}

    # 2. stage 1
    t0 = time.perf_counter()
    s1cfg = Stage1Config(data=cfg.data, out=str(runs / "stage1"), epochs=cfg.stage1_epochs, seed=cfg.seed,
                         val_samples=cfg.stage1_val_samples, threads=cfg.stage1_threads, progress=cfg.progress,
                         model=model_over, **extra)
    if given is None:
        res1 = train_stage1(s1cfg, resume=True, log=log)
        summary["steps"]["stage1"] = {"seconds": time.perf_counter() - t0, "samples_per_s": res1.samples_per_s,
                                      "val": res1.val, "epochs": res1.epochs}
        stage1 = res1.model_path
    else:
        res1, stage1 = None, given
        summary["steps"]["stage1"] = {"seconds": time.perf_counter() - t0, "from": cfg.stage1_from}

    # 2b. optional finetune of the whole network under budgeted allocations
    if cfg.finetune_epochs > 0:
        t0 = time.perf_counter()
        res1 = _run_finetune(cfg, runs, stage1, extra, model_over, log)
        stage1 = res1.model_path
        summary["steps"]["finetune"] = {"seconds": time.perf_counter() - t0, "samples_per_s": res1.samples_per_s,
                                        "val": res1.val, "epochs": res1.epochs}

    # 3. stage 2 lanes
    t0 = time.perf_counter()
    from admn_ros.core.model import ADMNConfig
    from admn_ros.core.checkpoint import read_metadata

    mcfg = ADMNConfig.from_dict(read_metadata(stage1)["model_config"])
    budgets = [budget_from_fraction(f, mcfg.n_streams, mcfg.vit_depth) for f in cfg.fractions]
    uni = "ctrl_universal"
    jobs_a = [_Job(uni, _stage2_cmd(cfg, stage1, uni, "universal",
                                    ["--epochs", str(cfg.universal_epochs), "--warmup-epochs", "1"]))]
    jobs_b = [_Job("ctrl_ae", _stage2_cmd(cfg, stage1, "ctrl_ae", "ae",
                                          ["--epochs", str(cfg.ae_epochs), "--warmup-epochs", "1"]))]
    init = str(runs / uni / "controller.safetensors")
    per_budget = [_Job(f"ctrl_L{L}", _stage2_cmd(cfg, stage1, f"ctrl_L{L}", "budget",
                                                 ["--budget", str(L), "--init", init, "--epochs",
                                                  str(cfg.budget_epochs), "--warmup-epochs", "0"]), needs=uni)
                  for L in budgets]
    # small budgets are cheap: lane A gets the smaller half, lane B (after the AE) the larger half
    half = (len(per_budget) + 1) // 2
    jobs_a += per_budget[:half]
    jobs_b += list(reversed(per_budget[half:]))
    if cfg.lanes == 1:
        jobs_a, jobs_b = jobs_a + jobs_b, []
    done = {j.name: threading.Event() for j in jobs_a + jobs_b}
    status: dict[str, Any] = {}
    lanes = [threading.Thread(target=_run_lane, args=(jobs, done, runs, status, log), daemon=True)
             for jobs in (jobs_a, jobs_b) if jobs]
    for th in lanes:
        th.start()
    for th in lanes:
        th.join()
    summary["steps"]["stage2"] = {"seconds": time.perf_counter() - t0, "jobs": status}
    failed = [k for k, v in status.items() if v.get("rc") != 0]
    if failed:
        raise TrainConfigError(f"stage-2 jobs failed: {failed}; see their logs in {runs}")

    # 4. ship
    ctrls = [runs / j.name / "controller.safetensors" for j in jobs_a + jobs_b]
    man = ship_models(stage1, ctrls, cfg.models, torch.float32)
    summary["models"] = man
    total = time.perf_counter() - t_all
    summary["seconds"] = total
    write_json(runs / "pipeline_summary.json", summary)

    log("=" * 72)
    log(f"[all] shipped {len(man['files'])} files ({man['total_bytes'] / 1e6:.1f} MB) to {cfg.models}/ "
        f"in {fmt_duration(total)}")
    for step, s in summary["steps"].items():
        log(f"[all]   {step:<8} {fmt_duration(s['seconds'])}")
    from admn_ros.core.train.stage1 import val_text

    k = metric_key(mcfg.task)
    if res1 is not None:
        step = "finetune" if cfg.finetune_epochs > 0 else "stage-1"
        log(f"[all]   {step} val: {val_text(res1.val, mcfg.task)} ({res1.samples_per_s:.0f} samples/s)")
    else:
        log(f"[all]   stage 1: {cfg.stage1_from} (given)")
    for name, st in status.items():
        val = st.get("val") or {}
        cells = ", ".join(f"{key.replace('_' + k, '')} {x:.1f}" for key, x in val.items() if key.endswith("_" + k))
        log(f"[all]   {name}: {fmt_duration(st.get('seconds', 0))}, val {get_task(mcfg.task).metric.unit}: "
            f"{cells}")
    out_dir = get_task(mcfg.task).report_dir
    log(f"[all] evaluate with: admn-ros evaluate --data {cfg.data} --models {cfg.models} --out {out_dir}")
    return summary
