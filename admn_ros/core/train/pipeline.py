"""The shipped-model pipeline (``admn-ros train all``, ``make models``; its steps: docs/TRAINING.md, "What
``admn-ros train all`` does")."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from admn_ros.core.checkpoint import read_metadata
from admn_ros.core.model import ADMNConfig
from admn_ros.core.streams import budget_from_fraction
from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task
from admn_ros.core.train.common import fmt_duration, write_json
from admn_ros.core.train.config import (FINETUNE_STAGE1, TABLE_FRACTIONS, Stage1Config, TaskRecipe, TrainConfigError,
                                        VARIANTS)
from admn_ros.core.train.ship import ship_models, shipped_name
from admn_ros.core.train.stage1 import train_stage1, val_text

#: Dataset-size flags of ``train all`` and the generator argument each sets.
DATASET_FLAGS: dict[str, str] = {"samples": "n_samples", "frames_per_episode": "frames_per_episode",
                                 "subjects": "n_subjects", "windows_per_activity": "windows_per_activity",
                                 "frames": "frames"}


@dataclass
class PipelineConfig:
    """What ``admn-ros train all`` runs: every ``None`` (and ``dataset``'s missing generator
    arguments) is the task's shipped recipe (``Task.recipe``; the models go to ``models/<Task.models_subdir>``);
    ``init``: a models directory to fine-tune from."""

    task: str = DEFAULT_TASK
    data: str | None = None
    runs: str | None = None
    models: str | None = None
    seed: int = 0
    workers: int = 2
    stage1_threads: int = 2
    progress: bool = True
    dataset: dict[str, int] = field(default_factory=dict)
    stage1_epochs: int | None = None
    finetune_epochs: int | None = None
    stage2_train_samples: int | None = None
    val_samples: int | None = None
    init: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise TrainConfigError(f"unknown task {self.task!r}; known: {sorted(TASKS)}")
        recipe = self.recipe
        self.data = self.data or recipe.data
        self.runs = self.runs or recipe.runs
        self.models = self.models or str(Path("models", TASKS[self.task].models_subdir))
        extra = sorted(set(self.dataset) - set(recipe.dataset))
        if extra:
            flags = [f"--{k.replace('_', '-')}" for k, v in DATASET_FLAGS.items() if v in extra]
            raise TrainConfigError(f"{', '.join(flags or extra)} does not apply to --task {self.task}")

    @property
    def recipe(self) -> TaskRecipe:
        return TASKS[self.task].recipe

    def _fields(self, recipe: dict[str, Any], init: dict[str, Any], **over: Any) -> dict[str, Any]:
        return {**recipe, **(init if self.init else {}), **{k: v for k, v in over.items() if v is not None}}

    def stage1_fields(self) -> dict[str, Any]:
        """Stage-1 fields of the recipe with this run's overrides (no paths)."""
        return self._fields(self.recipe.stage1, self.recipe.init_stage1, epochs=self.stage1_epochs,
                            val_samples=self.val_samples)

    def stage2_fields(self, variant: str = "") -> dict[str, Any]:
        """Stage-2 fields of the recipe with this run's overrides (for ``variant``'s controllers)."""
        return self._fields(self.recipe.stage2, self.recipe.init_stage2.get(variant, {}),
                            train_samples=self.stage2_train_samples, val_samples=self.val_samples)

    def command(self) -> str:
        ref = PipelineConfig(task=self.task)
        parts = ["admn-ros train all"] + ([f"--task {self.task}"] if self.task != PipelineConfig.task else [])
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "dataset":
                flag = {arg: name for name, arg in DATASET_FLAGS.items()}
                parts += [f"--{flag[k].replace('_', '-')} {x}" for k, x in v.items() if self.recipe.dataset[k] != x]
            elif f.name not in ("task", "progress") and v != getattr(ref, f.name):
                parts.append(f"--{f.name.replace('_', '-')} {v}")
        return " ".join(parts)


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    d = PipelineConfig()
    p.add_argument("--task", choices=sorted(TASKS), default=DEFAULT_TASK,
                   help="tracking (GDTM-style, default) or activity (MM-Fi-style; data/runs/models default to "
                        "data/activity_sim, runs/activity, models/activity)")
    p.add_argument("--data", default=None, help="dataset root; generated if missing (default: the task's)")
    p.add_argument("--runs", default=None, help="run directories (default: the task's)")
    p.add_argument("--models", default=None, help="where the shipped models go (default: the task's)")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the dataset and every run (default {d.seed})")
    p.add_argument("--workers", type=int, default=d.workers, help=f"dataset generation processes (default {d.workers})")
    p.add_argument("--stage1-threads", type=int, default=d.stage1_threads,
                   help=f"torch threads of stage 1 and the finetune (default {d.stage1_threads})")
    g = p.add_argument_group("smaller runs (default: the shipped recipe)")
    g.add_argument("--samples", type=int, help="tracking: dataset size if it must be generated")
    g.add_argument("--frames-per-episode", type=int, help="tracking: consecutive frames per simulated episode")
    g.add_argument("--subjects", type=int, help="activity: simulated subjects if the dataset must be generated")
    g.add_argument("--windows-per-activity", type=int, help="activity: windows per (subject, activity)")
    g.add_argument("--frames", type=int, help="activity: frames per window")
    g.add_argument("--stage1-epochs", type=int, help="stage-1 epochs")
    g.add_argument("--finetune-epochs", type=int, help="epochs of the finetune of the whole stage-1 network")
    g.add_argument("--stage2-train-samples", type=int, help="training samples per stage-2 epoch")
    g.add_argument("--val-samples", type=int, help="validation samples per epoch")
    p.add_argument("--init", default=None, metavar="MODELS",
                   help="fine-tune the models in MODELS (e.g. models/) on --data instead of training from scratch "
                        "(the recipe's init_stage1 / init_stage2; docs/TRAINING.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_pipeline_args(a: argparse.Namespace) -> None:
    run_pipeline(PipelineConfig(**{f.name: getattr(a, f.name) for f in fields(PipelineConfig)
                                   if f.name not in ("progress", "dataset")}, progress=not a.no_progress,
                                dataset={arg: getattr(a, flag) for flag, arg in DATASET_FLAGS.items()
                                         if getattr(a, flag) is not None}))


def _stage2_cmd(cfg: PipelineConfig, stage1: Path, name: str, variant: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "admn_ros.core.train.cli", "stage2", "--data", str(cfg.data), "--stage1",
            str(stage1), "--out", str(Path(str(cfg.runs)) / name), "--variant", variant, "--seed", str(cfg.seed),
            "--threads", "1", "--config", str(Path(str(cfg.runs)) / f"stage2_{variant}.json"), "--resume",
            "--no-progress", *extra]


def init_models(cfg: PipelineConfig) -> dict[str, Path]:
    """The files of ``cfg.init`` to start from: ``stage1`` and, where present, ``universal``, ``ae``
    and ``L<budget>`` controllers; :class:`TrainConfigError` naming the file if the directory holds
    no stage-1 network of ``cfg.task`` or a controller trained on another network."""
    d = Path(str(cfg.init))
    if not d.is_dir():
        raise TrainConfigError(f"{d}: --init models directory not found")
    name = shipped_name({"kind": "stage1", "model_config": {"task": cfg.task}})
    if not (d / name).is_file():
        held = sorted(str(p.relative_to(d)) for p in d.rglob("*.safetensors"))
        raise TrainConfigError(f"{d}: no {name}, so no models of --task {cfg.task} (it holds "
                               f"{', '.join(held) or 'no .safetensors file'})")
    files = {"stage1": d / name}
    wid = read_metadata(files["stage1"]).get("weights_id")
    for p in [*sorted(d.glob("controller_*.safetensors")), d / "baselines" / "controller_ae.safetensors"]:
        if p.is_file():
            meta = read_metadata(p)
            if meta.get("stage1_weights_id") != wid:
                raise TrainConfigError(f"{p}: trained on stage-1 weights {meta.get('stage1_weights_id')}, not on "
                                       f"{files['stage1']} ({wid}); --init needs one consistent models directory")
            files[f"L{meta['budget']}" if meta.get("variant") == "budget" else str(meta.get("variant"))] = p
    return files


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


def _make_dataset(cfg: PipelineConfig, log: Any) -> None:
    """Render the task's dataset into ``cfg.data`` unless it holds one."""
    if (Path(str(cfg.data)) / "meta.json").is_file():
        log(f"[all] dataset {cfg.data} exists; reusing it")
        return
    generate = getattr(importlib.import_module(get_task(cfg.task).dataset_module), cfg.recipe.generator)
    size = {**cfg.recipe.dataset, **cfg.dataset}
    log(f"[all] generating the {cfg.task} dataset into {cfg.data} "
        f"({', '.join(f'{k} {v}' for k, v in size.items())}, seed {cfg.seed}, {cfg.workers} workers)")
    try:
        generate(cfg.data, seed=cfg.seed, workers=cfg.workers, progress=cfg.progress, **size)
    except ValueError as exc:  # the generator's check of a size or count
        raise TrainConfigError(f"{cfg.data}: cannot generate the {cfg.task} dataset: {exc}") from exc


def run_pipeline(cfg: PipelineConfig, log: Any = print) -> dict[str, Any]:
    """Run every step (docs/TRAINING.md); returns the summary dict."""
    log = _locked(log)
    t_all = time.perf_counter()
    runs = Path(str(cfg.runs))
    runs.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"command": cfg.command(), "config": dict(cfg.__dict__), "steps": {}}
    init = init_models(cfg) if cfg.init else {}
    s1_fields = {**cfg.stage1_fields(), **({"init": str(init["stage1"])} if init else {})}
    common = dict(data=cfg.data, seed=cfg.seed, threads=cfg.stage1_threads, progress=cfg.progress)
    Stage1Config(**common, **s1_fields)  # a bad override fails before any work

    t0 = time.perf_counter()
    if init and not (Path(str(cfg.data)) / "meta.json").is_file():
        raise TrainConfigError(f"{cfg.data}: no meta.json; --init fine-tunes on a dataset you built "
                               "(admn-ros dataset --from-bag ... --out DIR)")
    _make_dataset(cfg, log)
    summary["steps"]["dataset"] = {"seconds": time.perf_counter() - t0}

    t0 = time.perf_counter()
    if init:
        log(f"[all] fine-tuning {cfg.init} on {cfg.data}: the whole stage-1 network from {init['stage1']} for "
            f"{s1_fields['epochs']} epochs, then every controller from its counterpart")
    res1 = train_stage1(Stage1Config(**common, **s1_fields, out=str(runs / "stage1")), resume=True, log=log)

    def stage1_step(t0: float) -> dict[str, Any]:
        return {"seconds": time.perf_counter() - t0, "samples_per_s": res1.samples_per_s, "val": res1.val,
                "epochs": res1.epochs}

    summary["steps"]["stage1"] = stage1_step(t0)
    finetune = 0 if init else cfg.recipe.finetune_epochs if cfg.finetune_epochs is None else cfg.finetune_epochs
    if finetune > 0:
        t0 = time.perf_counter()
        log(f"[all] finetune: the whole stage-1 network for {finetune} epochs under budgeted QoI-aware allocations")
        ft = {**s1_fields, **FINETUNE_STAGE1, "epochs": finetune, "init": str(res1.model_path),
              "out": str(runs / "finetune")}
        res1 = train_stage1(Stage1Config(**common, **ft), resume=True, log=log)
        summary["steps"]["finetune"] = stage1_step(t0)
    stage1 = res1.model_path

    t0 = time.perf_counter()
    for variant in VARIANTS:
        write_json(runs / f"stage2_{variant}.json", cfg.stage2_fields(variant))
    mcfg = ADMNConfig.from_dict(read_metadata(stage1)["model_config"])
    budgets = [budget_from_fraction(f, mcfg.n_streams, mcfg.vit_depth) for f in TABLE_FRACTIONS]
    uni = "ctrl_universal"

    def start(key: str) -> list[str]:
        return ["--init", str(init[key])] if key in init else []

    jobs_a = [_Job(uni, _stage2_cmd(cfg, stage1, uni, "universal", start("universal")))]
    jobs_b = [_Job("ctrl_ae", _stage2_cmd(cfg, stage1, "ctrl_ae", "ae", start("ae")))]
    folded = ["--init", str(runs / uni / "controller.safetensors")]
    per_budget = [_Job(f"ctrl_L{L}", _stage2_cmd(cfg, stage1, f"ctrl_L{L}", "budget",
                                                 ["--budget", str(L), *(start(f"L{L}") or folded)]),
                       needs=None if f"L{L}" in init else uni)
                  for L in budgets]
    # small budgets are cheap: lane A gets the smaller half, lane B (after the AE) the larger half
    half = (len(per_budget) + 1) // 2
    jobs_a += per_budget[:half]
    jobs_b += list(reversed(per_budget[half:]))
    done = {j.name: threading.Event() for j in jobs_a + jobs_b}
    status: dict[str, Any] = {}
    lanes = [threading.Thread(target=_run_lane, args=(jobs, done, runs, status, log), daemon=True)
             for jobs in (jobs_a, jobs_b)]
    for th in lanes:
        th.start()
    for th in lanes:
        th.join()
    summary["steps"]["stage2"] = {"seconds": time.perf_counter() - t0, "jobs": status}
    failed = [k for k, v in status.items() if v.get("rc") != 0]
    if failed:
        raise TrainConfigError(f"stage-2 jobs failed: {failed}; see their logs in {runs}")

    ctrls = [runs / j.name / "controller.safetensors" for j in jobs_a + jobs_b]
    man = ship_models(stage1, ctrls, str(cfg.models), command=cfg.command())
    total = time.perf_counter() - t_all
    summary.update(models=man, seconds=total)
    write_json(runs / "pipeline_summary.json", summary)

    log("=" * 72)
    log(f"[all] shipped {len(man['files'])} files ({man['total_bytes'] / 1e6:.1f} MB) to {cfg.models}/ "
        f"in {fmt_duration(total)}")
    for step, s in summary["steps"].items():
        log(f"[all]   {step:<8} {fmt_duration(s['seconds'])}")
    task = get_task(mcfg.task)
    k = task.metric.key
    log(f"[all]   {'finetune' if finetune > 0 else 'stage-1'} val: {val_text(res1.val, mcfg.task)} "
        f"({res1.samples_per_s:.0f} samples/s)")
    for name, st in status.items():
        cells = ", ".join(f"{key.replace('_' + k, '')} {x:.1f}" for key, x in (st.get("val") or {}).items()
                          if key.endswith("_" + k))
        log(f"[all]   {name}: {fmt_duration(st.get('seconds', 0))}, val {task.metric.unit}: {cells}")
    ref = PipelineConfig(task=cfg.task)
    shipped = (str(cfg.data), str(cfg.models)) == (ref.data, ref.models)  # the committed report's
    out = task.report_dir if shipped else Path(str(cfg.runs)) / "table1"
    log(f"[all] evaluate with: admn-ros evaluate --data {cfg.data} --models {cfg.models} --out {out}")
    return summary
