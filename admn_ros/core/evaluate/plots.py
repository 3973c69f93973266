"""Evaluation figures (matplotlib, Agg; PNG): error vs budget per (draw, regime), batch-1 latency vs
active blocks, and allocation examples (the paper's Fig. 8: noisy inputs and blocks per stream).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from admn_ros.core.evaluate.cost import LatencyResult
from admn_ros.core.evaluate.table import DRAWS, EvalSettings, Example, Record, lookup
from admn_ros.core.streams import StreamSet
from admn_ros.core.tasks import get_task
from admn_ros.core.tasks.base import pyplot, save_figure
from admn_ros.core.train.common import sigma_max_of


STYLE = {"ADMN": ("tab:green", "o", "-"), "ADMN universal": ("tab:olive", "s", "-"),
         "ADMN_AE": ("tab:cyan", "^", "-"), "Upper Bound": ("black", "", "--"),
         "Naive Allocation": ("tab:red", "x", "-"), "ADMN per-modality": ("tab:purple", "d", ":"),
         "RGB only": ("goldenrod", "v", ":"), "Depth only": ("tab:blue", "v", ":"),
         "Radar only": ("tab:pink", "v", ":")}


def plot_error_vs_budget(records: Sequence[Record], settings: EvalSettings, budgets: Sequence[int],
                         path: Path, task: str = "tracking") -> Path:
    plt = pyplot()
    rows, cols = len(settings.draws), len(settings.regimes)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharex=True)
    methods = list(dict.fromkeys(r.method for r in records))
    x = [100.0 * f for f in settings.fractions]
    for i, draw in enumerate(settings.draws):
        for j, regime in enumerate(settings.regimes):
            ax = axes[i][j]
            for m in methods:
                color, marker, ls = STYLE.get(m, ("gray", ".", "-"))
                if m == "Upper Bound":
                    v = lookup(records, regime, draw, m)
                    if not math.isnan(v):
                        ax.axhline(v, color=color, ls=ls, lw=1, label=m)
                    continue
                ys = [lookup(records, regime, draw, m, L) for L in budgets]
                if all(math.isnan(y) for y in ys):
                    continue
                ax.plot(x, ys, color=color, marker=marker, ls=ls, lw=1.3, label=m)
            ax.set_title(f"{regime}, {DRAWS.get(draw, draw)}", fontsize=10)
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
            ax.set_xticks(x)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(get_task(task).metric.axis)
            if i == rows - 1:
                ax.set_xlabel("budget (% of blocks)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, frameon=False)
    save_figure(fig, path, rect=(0, 0.08, 1, 1))
    return path


def plot_latency(latency: LatencyResult, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    if latency.curve:
        b, ms = zip(*latency.curve)
        ax.plot(b, ms, "o-", color="tab:gray", label="static allocation (no controller)")
    if latency.per_budget_ms:
        ax.plot(list(latency.per_budget_ms), list(latency.per_budget_ms.values()), "s", color="tab:green",
                label="ADMN (controller + allocated blocks)")
    ax.axhline(latency.full_ms, color="black", ls="--", lw=1, label="full model")
    ax.set_xlabel("active blocks")
    ax.set_ylabel("batch-1 latency (ms)")
    ax.set_title(f"latency vs active blocks ({latency.threads} thread(s))", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path


def plot_examples(examples: Sequence[Example], streams: StreamSet, path: Path, method: str = "ADMN",
                  max_examples: int = 3, classes: Sequence[str] | None = None) -> Path | None:
    """Fig.-8-style: per example a row of noisy inputs (node x modality; for windows the newest
    frame) and a bar chart of blocks per stream. With ``classes`` (activity) the titles show the
    true and predicted labels instead of the localisation error."""
    ex = [e for e in examples if method in e.masks][:max_examples]
    if not ex:
        return None
    plt = pyplot()
    s, nm = len(streams.nodes), len(streams.modalities)
    noisy = np.asarray([e.sigmas for e in ex]) >= 0.5 * sigma_max_of(streams)  # sigma >= sigma_max / 2
    fig = plt.figure(figsize=(1.5 * s * nm + 4.0, 2.1 * len(ex)))
    gs = fig.add_gridspec(len(ex), s * nm + 3)
    for r, e in enumerate(ex):
        for i in range(s * nm):
            node, mi = divmod(i, nm)
            m = streams.modalities[mi]
            ax = fig.add_subplot(gs[r, i])
            x = e.inputs[m][len(e.inputs[m]) - s + node]  # [C, H, W] -> [H, W(, 3)]
            img = np.clip(x.transpose(1, 2, 0) if x.shape[0] == 3 else x[0], 0, 1)
            ax.imshow(img, cmap=None if img.ndim == 3 else "viridis", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{streams.nodes[node]}/{m}\nσ={float(e.sigmas[i]):.2f}", fontsize=7,
                         color="red" if noisy[r, i] else "black")
        ax = fig.add_subplot(gs[r, s * nm:])
        blocks = e.masks[method].sum(1)
        ax.bar(range(len(streams)), blocks, color=["tab:red" if q else "tab:green" for q in noisy[r]])
        ax.set_xticks(range(len(streams)))
        ax.set_xticklabels([sid.replace("node", "n").replace("/", "\n") for sid in streams.ids], fontsize=6)
        ax.set_ylim(0, 12.5)
        ax.set_ylabel("blocks", fontsize=7)
        err = ""
        if method in e.preds and classes is not None:
            err = f", true {classes[int(e.gt)]}, pred {classes[int(e.preds[method])]}"
        elif method in e.preds:
            err = f", err {100 * float(np.linalg.norm(e.preds[method] - e.gt)):.0f} cm"
        ax.set_title(f"{method} L={int(blocks.sum())} ({e.regime}, {DRAWS.get(e.draw, e.draw)}{err})", fontsize=7)
    fig.suptitle("bars: blocks per stream (red = noisy stream, sigma >= sigma_max/2; green = clean)", fontsize=8)
    save_figure(fig, path)
    return path
