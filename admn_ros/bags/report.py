"""Replay one bag at several budgets and baselines and write a Table-1-shaped report.

    admn-ros replay BAG --out DIR --budgets 27,36,54,72 --methods admn,naive,upper_bound

For every (method, budget) the bag is replayed offline through
:class:`admn_ros.bags.pipeline.AdmnPipeline` (each run in ``DIR/<name>/``: per-frame
CSV, an output bag for RViz/Foxglove, summary.json); then ``DIR/report.md`` and
``DIR/report.csv`` (mean error in cm, GFLOPs, per-frame pipeline latency) and plots:

* ``error_vs_budget.png``: mean error per method vs budget;
* ``allocation_noise.png``: per-stream blocks over time and estimated vs true noise
  (ADMN at the smallest budget);
* ``trajectory.png``: estimated trajectory vs ground truth (same run).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.bags.pipeline import make_pipeline
from admn_ros.bags.replay import ReplaySummary, replay


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
                  write_bags: bool = True) -> list[dict[str, Any]]:
    """Run every (method, budget) and write report.md / report.csv / plots; return the rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    runs: dict[str, Path] = {}
    for method in methods:
        for budget in (budgets if method != "upper_bound" else [None]):
            pipe = make_pipeline(method, mapping.stream_ids, budget, model_dir=model_dir, backend=backend)
            run_dir = out / pipe.name
            s: ReplaySummary = replay(bag, pipe, run_dir, mapping=mapping, storage=storage,
                                      max_frames=max_frames, progress=progress, write_bag=write_bags)
            fr = _read_frames(run_dir / "frames.csv")
            gf = float(np.nanmean(fr["gflops"])) if "gflops" in fr else float("nan")
            rows.append({"method": method, "budget": int(np.nanmean(fr["active_blocks"])) if budget is None
                         else int(budget), "run": pipe.name, "frames": s.frames,
                         "mean_error_cm": s.mean_error_cm, "median_error_cm": s.median_error_cm,
                         "p90_error_cm": s.p90_error_cm, "gflops": gf, "pipeline_ms": s.pipeline_ms_mean,
                         "frames_per_s": s.frames_per_s, "realtime_factor": (
                             s.frames_per_s * s.bag_duration_s / max(s.frames, 1)) if s.frames else float("nan")})
            runs[pipe.name] = run_dir
    _write_tables(out, rows, bag)
    _plots(out, rows, runs, methods, budgets)
    (out / "report.json").write_text(json.dumps(rows, indent=2))
    return rows


def _write_tables(out: Path, rows: list[dict[str, Any]], bag: str | Path) -> None:
    keys = list(rows[0]) if rows else []
    with open(out / "report.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    budgets = sorted({r["budget"] for r in rows if r["method"] != "upper_bound"})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = [f"# Replay report: `{Path(bag).name}`", "",
             "Mean localization error in cm (per-frame pipeline latency in ms, GFLOPs per frame).", "",
             "| method | " + " | ".join(f"L={b}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for m in methods:
        cells = []
        for b in budgets:
            r = next((r for r in rows if r["method"] == m and (r["budget"] == b or m == "upper_bound")), None)
            cells.append("" if r is None else
                         f"{r['mean_error_cm']:.1f} ({r['pipeline_ms']:.1f} ms, {r['gflops']:.3f} GF)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", f"Frames per run: {rows[0]['frames'] if rows else 0}. "
              "Upper bound runs every block (its budget is all blocks of the present streams).", ""]
    (out / "report.md").write_text("\n".join(lines))


def _plots(out: Path, rows: list[dict[str, Any]], runs: dict[str, Path], methods: Sequence[str],
           budgets: Sequence[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        rs = sorted((r for r in rows if r["method"] == m), key=lambda r: r["budget"])
        if m == "upper_bound" and rs:
            ax.axhline(rs[0]["mean_error_cm"], ls="--", c="k", label="upper bound (all blocks)")
        elif rs:
            ax.plot([r["budget"] for r in rs], [r["mean_error_cm"] for r in rs], "o-", label=m)
    ax.set_xlabel("budget L (active blocks)")
    ax.set_ylabel("mean error (cm)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "error_vs_budget.png", dpi=110)
    plt.close(fig)

    first = next((r["run"] for r in rows if r["method"] == "admn" and r["budget"] == min(budgets)), None)
    if first is None:
        return
    fr = _read_frames(runs[first] / "frames.csv")
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


__all__ = ["replay_report"]
