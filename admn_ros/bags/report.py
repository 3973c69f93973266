"""Replay one bag at several budgets and baselines into ``DIR/<run>/`` and write a Table-1-shaped report:
``DIR/report.md`` / ``.csv`` / ``.json`` (the task's metric, GFLOPs, pipeline latency), ``<metric>_vs_budget.png``,
``allocation_noise.png`` and the task's plot of ADMN at the smallest budget.
"""
from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags.pipeline import make_pipeline
from admn_ros.bags.replay import json_text, replay
from admn_ros.core.health import HealthConfig
from admn_ros.core.tasks import Task, get_task
from admn_ros.core.tasks.base import read_rows, save_figure


def read_columns(path: Path) -> dict[str, np.ndarray]:
    """The numeric columns of a replay CSV (empty cells are NaN)."""
    rows = read_rows(path)
    out: dict[str, np.ndarray] = {}
    for k in rows[0] if rows else ():
        with contextlib.suppress(ValueError):
            out[k] = np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
    return out


def replay_report(bag: str | Path, out_dir: str | Path, *, methods: Sequence[str], budgets: Sequence[int],
                  mapping: Any, model_dir: str | None = None, backend: str = "auto", progress: bool = True,
                  write_bags: bool = True, task: str | Task | None = None,
                  health: Any = HealthConfig()) -> list[dict[str, Any]]:
    """Run every (method, budget) and write report.md / report.csv / plots; return the rows
    (``health``: the stream health check of :func:`admn_ros.bags.replay.replay`)."""
    t = get_task(task)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    runs: dict[str, Path] = {}
    for method in methods:
        for budget in (budgets if method != "upper_bound" else [None]):
            pipe = make_pipeline(method, mapping.stream_ids, budget, model_dir=model_dir, backend=backend, task=t.name)
            runs[pipe.name] = run_dir = out / pipe.name
            s = replay(bag, pipe, run_dir, task=t, mapping=mapping, progress=progress, write_bag=write_bags,
                       health=health)
            fr = read_columns(run_dir / t.csv_name)
            gflops = fr.get("gflops", np.array([]))  # all NaN: the pipeline gives no compute figures
            rows.append({"method": method, "budget": int(np.nanmean(fr["active_blocks"])) if budget is None
                         else int(budget), "run": pipe.name, "frames": s.windows,
                         **{k: v for k, v in s.metrics.items() if isinstance(v, (int, float))},
                         "pipeline_ms": s.pipeline_ms_mean, "frames_per_s": s.frames_per_s,
                         "realtime_factor": (s.frames_per_s * s.bag_duration_s / max(s.frames, 1)) if s.frames
                         else float("nan"),
                         "gflops": float("nan") if np.isnan(gflops).all() else float(np.nanmean(gflops))})
    _write_tables(out, rows, bag, t)
    _plots(out, rows, runs, methods, budgets, t)
    (out / "report.json").write_text(json_text(rows))
    return rows


def _cell(r: dict[str, Any], t: Task) -> str:
    cost = f"{r['pipeline_ms']:.1f} ms, {r['gflops']:.3f} GF"
    second = f"{r[t.metric.secondary]:.1f}; " if t.metric.secondary else ""
    return f"{r[t.metric.summary]:.1f} ({second}{cost})"


def _write_tables(out: Path, rows: list[dict[str, Any]], bag: str | Path, t: Task) -> None:
    with open(out / "report.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        w.writeheader()
        w.writerows(rows)
    budgets = sorted({r["budget"] for r in rows if r["method"] != "upper_bound"})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [f"# Replay report: `{Path(bag).name}`", "", t.report_caption, "",
             "| method | " + " | ".join(f"L={b}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for m in methods:
        runs = [next((r for r in rows if r["method"] == m and (r["budget"] == b or m == "upper_bound")), None)
                for b in budgets]
        lines.append(f"| {m} | " + " | ".join("" if r is None else _cell(r, t) for r in runs) + " |")
    lines += ["", f"{t.unit.capitalize()}s per run: {rows[0]['frames'] if rows else 0}. "
              "Upper bound runs every block (its budget is all blocks of the present streams).", ""]
    (out / "report.md").write_text("\n".join(lines))


def _plots(out: Path, rows: list[dict[str, Any]], runs: dict[str, Path], methods: Sequence[str],
           budgets: Sequence[int], t: Task) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = t.metric.summary
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["budget"])
        if m == "upper_bound" and rs:
            ax.axhline(rs[0][key], ls="--", c="k", label="upper bound (all blocks)")
        elif rs:
            ax.plot([r["budget"] for r in rs], [r[key] for r in rs], "o-", label=m)
    ax.set(xlabel="budget L (active blocks)", ylabel=t.metric.axis)
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, out / f"{t.metric.name}_vs_budget.png")

    first = next((r["run"] for r in rows if r["method"] == "admn" and r["budget"] == min(budgets)), None)
    if first is None:
        return
    fr = read_columns(runs[first] / t.csv_name)
    ids = [k.split(":", 1)[1] for k in fr if k.startswith("blocks:")]
    ts = fr["stamp_s"] - fr["stamp_s"][0]
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    blocks = np.stack([fr[f"blocks:{s}"] for s in ids])
    im = axes[0].imshow(blocks, aspect="auto", interpolation="nearest", cmap="viridis",
                        extent=(ts[0], ts[-1], len(ids) - 0.5, -0.5))
    axes[0].set_yticks(range(len(ids)), ids)
    axes[0].set_title(f"{first}: blocks per stream")
    fig.colorbar(im, ax=axes[0], label="blocks")
    for s in ids:
        line, = axes[1].plot(ts, fr[f"est_sigma:{s}"], lw=1, label=f"{s} est")
        if f"true_sigma:{s}" in fr:
            axes[1].plot(ts, fr[f"true_sigma:{s}"], ls=":", c=line.get_color(), lw=1)
    axes[1].set(ylabel="noise sigma (solid est, dotted true)", xlabel="time (s)")
    axes[1].legend(fontsize=6, ncol=3)
    save_figure(fig, out / "allocation_noise.png")

    t.plot_run(runs[first] / t.csv_name, out, first)
