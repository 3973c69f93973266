"""Replay one bag at several budgets and baselines and write a Table-1-shaped report.

    admn-ros replay BAG --out DIR --budgets 27,36,54,72 --methods admn,naive,upper_bound
    admn-ros replay BAG --task activity --out DIR --budgets 9,12,18,24

For every (method, budget) the bag is replayed offline (tracking:
:class:`admn_ros.bags.pipeline.AdmnPipeline`; activity:
:class:`admn_ros.bags.activity_replay.ActivityPipeline`), each run in ``DIR/<name>/``
(per-frame or per-window CSV, an output bag for RViz/Foxglove, summary.json); then
``DIR/report.md`` and ``DIR/report.csv`` (tracking: mean error in cm; activity: accuracy
in %; GFLOPs and per-frame pipeline latency for both) and plots:

* ``error_vs_budget.png`` / ``accuracy_vs_budget.png``: the metric per method vs budget;
* ``allocation_noise.png``: per-stream blocks over time and estimated vs true noise
  (ADMN at the smallest budget);
* ``trajectory.png`` (tracking): estimated trajectory vs ground truth (same run);
  ``labels.png`` (activity): estimated vs true activity over time (same run).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: Per task: the metric of the report, its CSV file and how the table and plot show it.
TASKS: dict[str, dict[str, str]] = {
    "tracking": {"metric": "mean_error_cm", "csv": "frames.csv", "plot": "error_vs_budget.png",
                 "axis": "mean error (cm)",
                 "caption": "Mean localization error in cm (per-frame pipeline latency in ms, GFLOPs per frame)."},
    "activity": {"metric": "accuracy_pct", "csv": "windows.csv", "plot": "accuracy_vs_budget.png",
                 "axis": "accuracy (%)",
                 "caption": "Accuracy in % of windows, scored against the true activity at each window's "
                            "newest frame (then: accuracy on the windows inside one activity, per-frame "
                            "pipeline latency in ms, GFLOPs per window)."},
}


def _run(task: str, bag: str | Path, method: str, budget: int | None, run_root: Path, *, mapping: Any,
         model_dir: str | None, backend: str, max_frames: int | None, storage: str, progress: bool,
         write_bag: bool) -> tuple[str, Path, dict[str, Any]]:
    """Replay one (method, budget); return (run name, run directory, summary fields)."""
    if task == "activity":
        from admn_ros.bags.activity_replay import ActivityPipeline, replay_activity

        pipe: Any = ActivityPipeline(mapping.stream_ids, budget, policy=method, model_dir=model_dir,
                                     backend=backend)
        s: Any = replay_activity(bag, pipe, run_root / pipe.name, mapping=mapping, storage=storage,
                                 max_frames=max_frames, progress=progress, write_bag=write_bag)
        fields = {"frames": s.windows, "accuracy_pct": s.accuracy_pct, "pure_accuracy_pct": s.pure_accuracy_pct}
    else:
        from admn_ros.bags.pipeline import make_pipeline
        from admn_ros.bags.replay import replay

        pipe = make_pipeline(method, mapping.stream_ids, budget, model_dir=model_dir, backend=backend)
        s = replay(bag, pipe, run_root / pipe.name, mapping=mapping, storage=storage, max_frames=max_frames,
                   progress=progress, write_bag=write_bag)
        fields = {"frames": s.frames, "mean_error_cm": s.mean_error_cm, "median_error_cm": s.median_error_cm,
                  "p90_error_cm": s.p90_error_cm}
    fields.update(pipeline_ms=s.pipeline_ms_mean, frames_per_s=s.frames_per_s,
                  realtime_factor=(s.frames_per_s * s.bag_duration_s / max(s.frames, 1)) if s.frames
                  else float("nan"))
    return pipe.name, run_root / pipe.name, fields


def _read_frames(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    out: dict[str, np.ndarray] = {}
    for k in rows[0]:
        try:
            out[k] = np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
        except ValueError:
            continue
    return out


def replay_report(bag: str | Path, out_dir: str | Path, *, methods: Sequence[str], budgets: Sequence[int],
                  mapping: Any, model_dir: str | None = None, backend: str = "auto",
                  max_frames: int | None = None, storage: str = "sqlite3", progress: bool = True,
                  write_bags: bool = True, task: str = "tracking") -> list[dict[str, Any]]:
    """Run every (method, budget) and write report.md / report.csv / plots; return the rows."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    spec = TASKS[task]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    runs: dict[str, Path] = {}
    for method in methods:
        for budget in (budgets if method != "upper_bound" else [None]):
            name, run_dir, fields = _run(task, bag, method, budget, out, mapping=mapping, model_dir=model_dir,
                                         backend=backend, max_frames=max_frames, storage=storage,
                                         progress=progress, write_bag=write_bags)
            fr = _read_frames(run_dir / spec["csv"])
            gf = float(np.nanmean(fr["gflops"])) if "gflops" in fr else float("nan")
            rows.append({"method": method, "budget": int(np.nanmean(fr["active_blocks"])) if budget is None
                         else int(budget), "run": name, **fields, "gflops": gf})
            runs[name] = run_dir
    _write_tables(out, rows, bag, task)
    _plots(out, rows, runs, methods, budgets, task)
    (out / "report.json").write_text(json.dumps(rows, indent=2))
    return rows


def _cell(r: dict[str, Any], task: str) -> str:
    cost = f"{r['pipeline_ms']:.1f} ms, {r['gflops']:.3f} GF"
    if task == "activity":
        return f"{r['accuracy_pct']:.1f} ({r['pure_accuracy_pct']:.1f}; {cost})"
    return f"{r['mean_error_cm']:.1f} ({cost})"


def _write_tables(out: Path, rows: list[dict[str, Any]], bag: str | Path, task: str = "tracking") -> None:
    keys = list(rows[0]) if rows else []
    with open(out / "report.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    budgets = sorted({r["budget"] for r in rows if r["method"] != "upper_bound"})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [f"# Replay report: `{Path(bag).name}`", "",
             TASKS[task]["caption"], "",
             "| method | " + " | ".join(f"L={b}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for m in methods:
        cells = []
        for b in budgets:
            r = next((r for r in rows if r["method"] == m and (r["budget"] == b or m == "upper_bound")), None)
            cells.append("" if r is None else _cell(r, task))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"{'Windows' if task == 'activity' else 'Frames'} per run: {rows[0]['frames'] if rows else 0}. "
              "Upper bound runs every block (its budget is all blocks of the present streams).", ""]
    (out / "report.md").write_text("\n".join(lines))


def _plots(out: Path, rows: list[dict[str, Any]], runs: dict[str, Path], methods: Sequence[str],
           budgets: Sequence[int], task: str = "tracking") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = TASKS[task]
    key = spec["metric"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["budget"])
        if m == "upper_bound" and rs:
            ax.axhline(rs[0][key], ls="--", c="k", label="upper bound (all blocks)")
        elif rs:
            ax.plot([r["budget"] for r in rs], [r[key] for r in rs], "o-", label=m)
    ax.set_xlabel("budget L (active blocks)")
    ax.set_ylabel(spec["axis"])
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / spec["plot"], dpi=110)
    plt.close(fig)

    first = next((r["run"] for r in rows if r["method"] == "admn" and r["budget"] == min(budgets)), None)
    if first is None:
        return
    fr = _read_frames(runs[first] / spec["csv"])
    ids = [k.split(":", 1)[1] for k in fr if k.startswith("blocks:")]
    t = fr["stamp_s"] - fr["stamp_s"][0]
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    blocks = np.stack([fr[f"blocks:{s}"] for s in ids])
    im = axes[0].imshow(blocks, aspect="auto", interpolation="nearest", cmap="viridis",
                        extent=(t[0], t[-1], len(ids) - 0.5, -0.5))
    axes[0].set_yticks(range(len(ids)), ids)
    axes[0].set_title(f"{first}: blocks per stream")
    fig.colorbar(im, ax=axes[0], label="blocks")
    for k, s in enumerate(ids):
        line, = axes[1].plot(t, fr[f"est_sigma:{s}"], lw=1, label=f"{s} est")
        if f"true_sigma:{s}" in fr:
            axes[1].plot(t, fr[f"true_sigma:{s}"], ls=":", c=line.get_color(), lw=1)
    axes[1].set_ylabel("noise sigma (solid est, dotted true)")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(fontsize=6, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "allocation_noise.png", dpi=110)
    plt.close(fig)

    if task == "activity":
        _label_plot(out, runs[first] / spec["csv"], first)
        return
    fig, ax = plt.subplots(figsize=(5, 5.5))
    ax.plot(fr["gt_x"], fr["gt_y"], "g-", lw=1.5, label="ground truth")
    ax.plot(fr["est_x"], fr["est_y"], "r.", ms=2, label=first)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, map)")
    ax.set_ylabel("y (m, map)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "trajectory.png", dpi=110)
    plt.close(fig)


def _label_plot(out: Path, csv_path: Path, run: str) -> None:
    """``labels.png``: estimated vs true activity of every window over time."""
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    names = sorted({r["gt_label"] for r in rows if r["gt_label"]} | {r["est_label"] for r in rows})
    idx = {n: k for k, n in enumerate(names)}
    t = np.array([float(r["stamp_s"]) for r in rows])
    t -= t[0]
    fig, ax = plt.subplots(figsize=(9, 4))
    gt = [(tt, idx[r["gt_label"]]) for tt, r in zip(t, rows) if r["gt_label"]]
    if gt:
        ax.plot(*zip(*gt), "g-", lw=3, alpha=0.5, label="true activity")
    ok = np.array([r["correct"] == "1" for r in rows])
    est = np.array([idx[r["est_label"]] for r in rows])
    ax.plot(t[ok], est[ok], "b.", ms=4, label="estimate (right)")
    ax.plot(t[~ok], est[~ok], "rx", ms=4, label="estimate (wrong)")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("time (s)")
    ax.set_title(f"{run}: activity per window")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "labels.png", dpi=110)
    plt.close(fig)


__all__ = ["TASKS", "replay_report"]
