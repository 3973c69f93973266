"""``admn-ros evaluate``: the paper's Table 1 on a held-out split, with compute and targets.

    admn-ros evaluate --data data/gdtm_sim --models models --out docs/results/table1
    admn-ros evaluate --data data/gdtm_sim --models models --out docs/results/realworld --regimes realworld

The rows are Gaussian noise regimes (none = clean, binary, discrete, continuous) or real-world sensor
failures (low_light, motion_blur, frozen, clutter, dropout; ``realworld`` = all five).
Writes ``table1.md``, ``table1.csv``, ``results.json`` and PNG plots into ``--out`` and
prints the targets as PASS/FAIL lines with their numbers. Exit code 0 unless the
evaluation itself fails (targets are reported, not enforced).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from admn_ros.core.checkpoint import CheckpointError, read_metadata
from admn_ros.core.controller import AllocationController
from admn_ros.core.evaluate.cost import FlopsRow, LatencyResult, flops_table, measure_latency
from admn_ros.core.evaluate.methods import build_methods
from admn_ros.core.evaluate.plots import plot_error_vs_budget, plot_examples, plot_latency
from admn_ros.core.evaluate.report import Target, check_targets, markdown, summary_lines, write_csv
from admn_ros.core.evaluate.stats import sample_groups
from admn_ros.core.evaluate.table import (EvalSettings, Example, Record, depth_curve, failure_geometry,
                                          run_table)
from admn_ros.core.noise import REGIMES
from admn_ros.core.sim.corruptions import REAL_WORLD
from admn_ros.core.tasks import TASKS
from admn_ros.core.train.common import check_dataset, fmt_duration, open_split, set_threads, write_json
from admn_ros.core.train.config import TABLE_FRACTIONS, TrainConfigError, check_budgets
from admn_ros.core.train.stage2 import load_controller, load_stage1


@dataclass
class ModelSet:
    stage1: Path
    controllers_budget: dict[int, Path] = field(default_factory=dict)
    universal: Path | None = None
    ae: Path | None = None

    def describe(self) -> str:
        parts = [f"stage1 {self.stage1}"]
        if self.controllers_budget:
            parts.append("per-budget " + ", ".join(f"L={L}: {p.name}"
                                                   for L, p in sorted(self.controllers_budget.items())))
        parts += [f"{what} {p.name}" for what, p in (("universal", self.universal), ("AE", self.ae)) if p]
        return "; ".join(parts)


def discover_models(models: str | Path | None, stage1: str | None = None,
                    controllers: Sequence[str] = ()) -> ModelSet:
    """Find the stage-1 model and controllers in ``models`` (by checkpoint ``kind``/``variant``),
    with explicit ``stage1`` / ``controllers`` paths taking precedence."""
    files: list[Path] = []
    if models:
        d = Path(models)
        if not d.is_dir():
            raise TrainConfigError(f"{d}: models directory not found")
        files = sorted(d.glob("*.safetensors")) + sorted(d.glob("baselines/*.safetensors"))
    found_stage1: list[Path] = []
    ms = ModelSet(Path(stage1) if stage1 else Path())
    for p in [*files, *map(Path, controllers)]:
        meta = read_metadata(p)
        variant = meta.get("variant") if meta.get("kind") == "controller" else None
        if meta.get("kind") == "stage1":
            found_stage1.append(p)
        elif variant == "budget":
            ms.controllers_budget[int(meta["budget"])] = p
        elif variant in ("universal", "ae"):
            setattr(ms, variant, p)
    if not stage1:
        if not found_stage1:
            raise TrainConfigError(f"{models}: no stage-1 model (kind 'stage1') found; train one with "
                                   "`admn-ros train stage1` or pass --stage1")
        pref = [p for p in found_stage1 if p.name in {t.model_file for t in TASKS.values()}]
        ms.stage1 = (pref or found_stage1)[0]
    return ms


@dataclass
class EvalResult:
    records: list[Record]
    flops: list[FlopsRow]
    latency: LatencyResult | None
    targets: list[Target]
    examples: list[Example]
    files: dict[str, Path]
    seconds: float
    depth_curve: list[tuple[int, float]] = field(default_factory=list)


def evaluate(data: str, out: str, models: str | None = "models", stage1: str | None = None,
             controllers: Sequence[str] = (), settings: EvalSettings | None = None,
             latency: bool = True, latency_reps: int = 20, plots: bool = True, show_progress: bool = True,
             threads: int = 1, log: Callable[[str], None] = print) -> EvalResult:
    """Run Table 1 on the test split and write the report files (module docstring)."""
    t0 = time.perf_counter()
    settings = settings or EvalSettings()
    set_threads(threads)
    outd = Path(out)
    outd.mkdir(parents=True, exist_ok=True)  # an unusable --out fails before the evaluation
    ms = discover_models(models, stage1, controllers)
    model, wid = load_stage1(ms.stage1)
    ds = open_split(data, "test")
    check_dataset(ds, model.cfg, f"{data}/test")
    if len(model.cfg.nodes) == 1 and len(settings.draws) > 1:
        settings = replace(settings, draws=("modality",))
        log("[evaluate] one sensor node: per-stream and per-modality noise coincide; evaluating per modality")

    def ctrl(p: Path) -> AllocationController:
        c, meta = load_controller(p, model, wid)
        if meta.get("parent_mismatch"):
            log(f"[evaluate] warning: {p} was trained on stage-1 weights {meta.get('stage1_weights_id')}, "
                f"not on {ms.stage1} ({wid})")
        return c

    per_budget = {L: ctrl(p) for L, p in sorted(ms.controllers_budget.items())}
    universal = ctrl(ms.universal) if ms.universal else None
    ae = ctrl(ms.ae) if ms.ae else None
    streams = model.cfg.streams
    methods = build_methods(streams, model.cfg.vit_depth, per_budget, universal, ae, model.cfg.first_block)
    budgets = settings.budgets(len(streams), model.cfg.vit_depth)
    check_budgets(budgets, len(streams), model.cfg.vit_depth, model.cfg.first_block,
                  f"--fractions {','.join(map(str, settings.fractions))}")
    n = len(ds) if settings.samples <= 0 else min(len(ds), settings.samples)
    log(f"[evaluate] {ms.describe()}")
    log(f"[evaluate] {n} test samples x {len(settings.regimes)} regimes x {len(settings.draws)} draws, "
        f"budgets {budgets}, methods {[m.name for m in methods]}")
    notes: dict[str, object] = {"pixel_scale": failure_geometry(ds)[1]}
    records, examples = run_table(model, methods, ds, settings, show_progress, notes=notes)
    curve = depth_curve(model, ds, settings)
    log("[evaluate] depth sensitivity (clean, k blocks per stream): "
        + ", ".join(f"k={k}: {v:.1f}" for k, v in curve))
    fl = flops_table(model, methods, budgets)
    lat = None
    if latency:
        lat_ctrl = per_budget or ({L: universal for L in budgets} if universal is not None else {})
        lat = measure_latency(model, lat_ctrl, budgets, reps=latency_reps, threads=max(1, threads))
    targets = check_targets(records, fl, budgets, settings, model.cfg.task)
    info = {"data": data, "split": "test", "n_samples": n, "models": ms.describe(),
            "total_blocks": streams.total_blocks, "task": model.cfg.task, "frames": model.cfg.frames,
            "groups": sample_groups(ds, n)[1], **notes}
    files = {"markdown": outd / "table1.md", "csv": outd / "table1.csv", "json": outd / "results.json"}
    files["markdown"].write_text(markdown(records, fl, lat, targets, settings, budgets, info, curve))
    write_csv(files["csv"], records, fl, model.cfg.task)
    write_json(files["json"], {"settings": asdict(settings), "info": info, "budgets": budgets,
                               "records": [asdict(r) for r in records],
                               "flops": [dict(asdict(r), gflops_total=r.gflops_total) for r in fl],
                               "latency": asdict(lat) if lat else None,
                               "depth_curve": [{"blocks": k, "value": v} for k, v in curve],
                               "targets": [asdict(t) for t in targets]})
    if plots:
        files["error_plot"] = plot_error_vs_budget(records, settings, budgets, outd / "error_vs_budget.png",
                                                   model.cfg.task)
        if lat is not None:
            files["latency_plot"] = plot_latency(lat, outd / "latency_vs_blocks.png")
        name = next(m.name for m in methods if m.adaptive)  # a controller's, else the QoI oracle's
        classes = list((getattr(ds, "meta", None) or {}).get("classes", [])) or None
        for draw in settings.draws:
            exs = [e for e in examples if e.draw == draw and e.regime == settings.regimes[0]]
            p = plot_examples(exs, streams, outd / f"allocation_examples_{draw}.png", method=name, classes=classes)
            if p:
                files[f"examples_{draw}"] = p
    seconds = time.perf_counter() - t0
    log(f"==== evaluation done in {fmt_duration(seconds)}: " + ", ".join(f"{k}={v}" for k, v in files.items()))
    for line in summary_lines(targets):
        log(line)
    return EvalResult(records, fl, lat, targets, examples, files, seconds, curve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="admn-ros evaluate", description=__doc__.replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset root (meta.json + train/ val/ test/)")
    p.add_argument("--models", default=None, help="directory with a stage-1 model + controller checkpoints "
                                                  "(default: models, with --stage1 only if it exists; activity: "
                                                  "pass models/activity)")
    p.add_argument("--stage1", default=None, help="explicit stage-1 checkpoint (overrides --models)")
    p.add_argument("--controller", action="append", default=[], help="extra controller checkpoint (repeatable)")
    p.add_argument("--out", required=True, help="output directory for table1.md/.csv, results.json, plots")
    p.add_argument("--samples", type=int, default=0, help="test samples to use (default 0 = all)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (identical corrupted inputs for every method; "
                   "default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="samples per forward pass (default 64)")
    p.add_argument("--regimes", default="binary,discrete,continuous",
                   help="comma list of rows: noise regimes (none = clean, binary, discrete, continuous) "
                        f"and/or real-world failures ({', '.join(REAL_WORLD)}; realworld = all of them); "
                        "default %(default)s")
    p.add_argument("--draws", default="modality,stream", help="comma list: modality (paper), stream (default "
                   "%(default)s)")
    p.add_argument("--fractions", default=",".join(str(f) for f in TABLE_FRACTIONS),
                   help="comma list of budget fractions of all blocks (default %(default)s)")
    p.add_argument("--no-latency", action="store_true", help="skip batch-1 latency measurement")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _csv(s: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in s.split(",") if x.strip())


def settings_from_args(a: argparse.Namespace) -> EvalSettings:
    regimes = tuple(dict.fromkeys(x for r in _csv(a.regimes) for x in (REAL_WORLD if r == "realworld" else (r,))))
    draws = _csv(a.draws)
    bad = [r for r in regimes if r not in REGIMES and r not in REAL_WORLD]
    if bad or not regimes:
        raise TrainConfigError(f"--regimes: unknown {bad}; use none, binary, discrete, continuous, "
                               f"{', '.join(REAL_WORLD)} or realworld")
    if not draws or any(d not in ("modality", "stream") for d in draws):
        raise TrainConfigError(f"--draws: {list(draws)}; use modality and/or stream")
    try:
        fr = tuple(float(x) for x in _csv(a.fractions))
    except ValueError as exc:
        raise TrainConfigError(f"--fractions: {exc}") from exc
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise TrainConfigError(f"--fractions must be in (0, 1], got {list(fr)}")
    if a.batch_size < 1 or a.samples < 0:
        raise TrainConfigError("--batch-size must be >= 1 and --samples >= 0")
    return EvalSettings(regimes, draws, fr, a.samples, a.seed, a.batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        models = a.models
        if models is None:  # models/, unless --stage1 names the model and there is no models/
            models = None if a.stage1 and not Path("models").is_dir() else "models"
        evaluate(a.data, a.out, models, a.stage1, a.controller, settings_from_args(a), latency=not a.no_latency,
                 plots=not a.no_plots, show_progress=not a.no_progress, threads=a.threads)
    except (TrainConfigError, CheckpointError) as exc:
        print(f"admn-ros evaluate: error: {exc}", file=sys.stderr)
        return 2
    return 0

