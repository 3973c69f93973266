"""Fine-tuning the shipped models for a new site: how much data and time it takes.

``nice -n 5 .venv/bin/python -m benchmarks.bench_new_site --work runs/new_site`` (about 2 hours;
``--quick``: a smoke run): the ``admn-ros`` steps of docs/BENCHMARKS.md, "Fine-tuning for a new site".
A step whose output exists is skipped, so a re-run continues. Figures also go to ``<work>/summary.json``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

SITE = ROOT / "benchmarks" / "new_site.yaml"
#: Fine-tuned vs full-size: at most this error ratio, data share and training-time share.
TARGET = {"error": 1.2, "data": 0.10, "time": 0.25}
METHODS = ("ADMN", "Naive Allocation", "Upper Bound")
SETS = ("shipped", "finetuned", "scratch", "full")
LABEL = {"shipped": "shipped models, unchanged", "finetuned": "fine-tuned (--init models/)",
         "scratch": "from scratch, same small data", "full": "reference: full-size dataset"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(name: str, args: list[str], work: Path, done: Path, times: dict[str, Any]) -> None:
    """``admn-ros ARGS`` unless ``done`` exists; its output goes to ``<work>/logs/<name>.log`` and
    its last line is shown every minute. Wall time lands in ``times[name]``."""
    if done.exists():
        log(f"{name}: done before ({done}); skipped")
        return
    logf = work / "logs" / f"{name}.log"
    logf.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "admn_ros.cli", *args]
    log(f"{name}: admn-ros {shlex.join(args)}  (log {logf})")
    t0 = time.perf_counter()
    with open(logf, "a") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        while proc.poll() is None:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                lines = [ln for ln in logf.read_text(errors="replace").splitlines() if ln.strip()]
                log(f"  {name} {time.perf_counter() - t0:.0f} s: {lines[-1][:150] if lines else '...'}")
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}); see {logf}")
    times[name] = secs
    (work / "times.json").write_text(json.dumps(times, indent=2))
    log(f"{name}: done in {secs / 60:.1f} min")


def errors(results: Path) -> dict[str, Any]:
    """Per method and budget (``ADMN@27``, ``Upper Bound``) the error averaged over the evaluated
    noise regimes and draws, and the clean all-blocks error."""
    d = json.loads(results.read_text())
    cells: dict[str, list[float]] = {}
    for r in d["records"]:
        if r["method"] in METHODS:
            cells.setdefault(cell(r["method"], r["budget"]), []).append(r["value"])
    return {"n": d["info"]["n_samples"], "budgets": d["budgets"],
            "clean": max(d["depth_curve"], key=lambda c: c["blocks"])["value"],
            **{k: sum(v) / len(v) for k, v in cells.items()}}


def cell(method: str, budget: int) -> str:
    return "Upper Bound" if method == "Upper Bound" else f"{method.split()[0]}@{budget}"


def train_seconds(runs: Path) -> float:
    """Training time of a ``train all`` run: its stage-1 (+ finetune) and stage-2 steps."""
    s = json.loads((runs / "pipeline_summary.json").read_text())["steps"]
    return sum(v["seconds"] for k, v in s.items() if k != "dataset")


def samples(data: Path) -> dict[str, int]:
    meta = json.loads((data / "meta.json").read_text())
    return {s: int(meta["splits"][s]["n_samples"]) for s in ("train", "val", "test")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="runs/new_site", help="where bags, datasets, runs, models and evaluations go")
    p.add_argument("--models", default="models", help="the shipped models to start from")
    p.add_argument("--bags", type=int, default=4, help="bags recorded at the site")
    p.add_argument("--frames", type=int, default=600, help="frames per bag (15 Hz)")
    p.add_argument("--test-frac", type=float, default=0.2, help="share of the bags' segments for test")
    p.add_argument("--full-samples", type=int, default=24000, help="size of the full-size reference dataset")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny bags, dataset and training")
    a = p.parse_args(argv)
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if a.quick:
        a.bags, a.frames, a.full_samples = 2, 300, 600
    tiny = ["--stage1-epochs", "1", "--stage2-train-samples", "64", "--val-samples", "32"] if a.quick else []
    few = ["--samples", "32", "--regimes", "continuous"] if a.quick else []
    models = str(Path(a.models).resolve())
    tf = work / "times.json"
    times: dict[str, Any] = json.loads(tf.read_text()) if tf.is_file() else {}
    quiet = ["--no-progress"]

    bags = [work / "bags" / f"bag{e}" for e in range(a.bags)]
    for e, bag in enumerate(bags):
        run(f"record_bag{e}", ["record", "--config", str(SITE), "--frames", str(a.frames), "--seed", "1",
                               "--episode", str(e), "--out", str(bag), *quiet], work, bag / "metadata.yaml", times)
    site = work / "site"
    run("dataset_site", ["dataset", "--from-bag", *map(str, bags), "--out", str(site), "--test-frac",
                         str(a.test_frac), "--quiet"], work, site / "meta.json", times)
    full = work / "full"
    dirs = {"shipped": Path(models), **{k: work / "models" / k for k in SETS[1:]}}
    train = {"finetuned": ["--data", str(site), "--init", models],
             "scratch": ["--data", str(site)],
             "full": ["--data", str(full)]}
    for name in SETS[1:]:
        if name == "full":
            run("dataset_full", ["dataset", "--config", str(SITE), "--out", str(full), "--n-samples",
                                 str(a.full_samples), "--frames-per-episode", "50", "--seed", "0", "--quiet"],
                work, full / "meta.json", times)
        run(f"train_{name}", ["train", "all", *train[name], "--runs", str(work / "runs" / name), "--models",
                              str(dirs[name]), *tiny, *quiet], work, dirs[name] / "manifest.json", times)
    res: dict[str, Any] = {}
    for name in SETS:
        out = work / "eval" / name
        run(f"evaluate_{name}", ["evaluate", "--data", str(site), "--models", str(dirs[name]), "--out", str(out),
                                 "--no-latency", "--no-plots", "--threads", "2", *few, *quiet], work,
            out / "results.json", times)
        train_s = train_seconds(work / "runs" / name) if name != "shipped" else 0.0
        res[name] = {**errors(out / "results.json"), "train_s": train_s, "wall_s": times.get(f"train_{name}", 0.0)}
    report(res, samples(site), samples(full), times, work, a)
    return 0


def report(res: dict[str, Any], site: dict[str, int], full: dict[str, int], times: dict[str, Any], work: Path,
           a: argparse.Namespace) -> None:
    budgets = res["shipped"]["budgets"]
    n_train = {"shipped": 0, "finetuned": site["train"], "scratch": site["train"], "full": full["train"]}
    n_total = {"shipped": 0, "finetuned": sum(site.values()), "scratch": sum(site.values()), "full": sum(full.values())}
    cols = [cell(m, L) for m in METHODS[:2] for L in budgets] + ["Upper Bound", "clean"]
    print(f"\nNew site ({SITE.name}), test segments of the recorded bags: {res['shipped']['n']} samples; errors in cm, "
          "mean over the noise regimes x draws of `admn-ros evaluate` (clean: all blocks, no noise)\n")
    print("| model set | " + " | ".join(c.replace("@", " L=") for c in cols) + " | train / all samples | train time |")
    print("|---" * (len(cols) + 3) + "|")
    for name in SETS:
        r = res[name]
        size = f"{n_train[name]} / {n_total[name]}" if n_total[name] else "-"
        t = f"{r['train_s'] / 60:.1f} min" if r["train_s"] else "-"
        print(f"| {LABEL[name]} | " + " | ".join(f"{r[c]:.1f}" for c in cols) + f" | {size} | {t} |")
    ft, fu = res["finetuned"], res["full"]
    err = {c: ft[c] / fu[c] for c in cols[:-1]}
    worst = max(err, key=err.get)
    ratios = {"error": err[worst], "data": n_total["finetuned"] / n_total["full"],
              "time": ft["train_s"] / fu["train_s"]}
    print("\nfine-tuned / full-size, error per column: " + ", ".join(f"{c} {v:.2f}" for c, v in err.items()))
    passed = {k: ratios[k] <= TARGET[k] for k in TARGET}
    for k, what in (("error", f"error (worst cell, {worst})"), ("data", "data (all samples)"),
                    ("time", "training time (train all, dataset excluded)")):
        print(f"[{'PASS' if passed[k] else 'FAIL'}] {what}: {ratios[k]:.2f} (target <= {TARGET[k]})")
    adm = {n: sum(res[n][cell("ADMN", L)] for L in budgets) / len(budgets) for n in SETS}
    print(f"\nSummary: the shipped models score {adm['shipped']:.1f} cm (ADMN, mean of the four budgets) at this site. "
          f"Fine-tuned from them on {n_train['finetuned']} training samples in {ft['train_s'] / 60:.1f} min they "
          f"score {adm['finetuned']:.1f} cm; the same data from scratch gives {adm['scratch']:.1f} cm in "
          f"{res['scratch']['train_s'] / 60:.1f} min; the shipped recipe on the full-size dataset "
          f"({n_train['full']} training samples, {fu['train_s'] / 60:.1f} min) {adm['full']:.1f} cm. "
          f"Target {'met' if all(passed.values()) else 'missed'}: "
          + ", ".join(f"{k} {ratios[k]:.2f}" for k in TARGET) + ".")
    summary = {"results": res, "site_samples": site, "full_samples": full, "ratios": ratios, "passed": passed,
               "target": TARGET, "times_s": times, "args": vars(a)}
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"figures: {work / 'summary.json'}")


if __name__ == "__main__":
    sys.exit(main())
