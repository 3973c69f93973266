"""What the live demo saw, frame by frame (:class:`Frame`), and its report (rclpy-free; the ROS side
is :mod:`admn_ros.ros.demo`): after the run, Naive Allocation and the Upper Bound on the same inputs
(a side :class:`~admn_ros.core.runtime.Runtime`, never the graph), the per-phase table and the picture.
"""
from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from admn_ros.core.sim.timeline import Timeline
from admn_ros.core.streams import MODALITIES, split_stream_id
from admn_ros.core.tasks.base import Task, pyplot, save_figure

#: The methods of the comparison: the graph's ADMN and the baselines computed on its frames.
METHODS = {"admn": "ADMN", "naive": "Naive", "upper_bound": "Upper Bound"}


@dataclass
class Frame:
    """One frame stamp's record (fields stay ``None`` until their message arrived)."""

    estimate: dict[str, Any] | None = None
    latency_ms: float = math.nan
    truth: Any = None
    blocks: np.ndarray | None = None        # per stream (the allocation for this stamp)
    est_noise: np.ndarray | None = None     # per stream, the controller's sigma estimate
    true_noise: np.ndarray | None = None    # per stream, StreamQoI severity (sigma / sigma_max)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)   # sid -> preprocess.to_storage array
    scores: dict[str, float] = field(default_factory=dict)        # method -> the task's metric


class DemoRecord:
    """Per-frame record of a demo run over ``timeline`` (``None``: one phase); keeps ``MAX_FRAMES``
    frames and the model inputs of the newest ``MAX_INPUTS``."""

    MAX_FRAMES, MAX_INPUTS = 20000, 2000

    def __init__(self, task: Task, stream_ids: Sequence[str], timeline: Timeline | None = None) -> None:
        self.task, self.ids, self.timeline = task, list(stream_ids), timeline
        self.frames: OrderedDict[int, Frame] = OrderedDict()
        self._with_inputs: deque[int] = deque()
        self.start_ns: int | None = None     # the scenario's (or the first estimate's) stamp
        self.dashboards: dict[int, np.ndarray] = {}   # phase -> its last dashboard image
        self.hops: dict[str, tuple[float, float]] = {}
        self.budget = 0
        self.compared = 0

    def frame(self, ns: int) -> Frame:
        f = self.frames.get(ns)
        if f is None:
            f = self.frames[ns] = Frame()
            while len(self.frames) > self.MAX_FRAMES:
                self.frames.popitem(last=False)
        return f

    def add_input(self, ns: int, sid: str, stored: np.ndarray) -> None:
        f = self.frame(ns)
        if not f.inputs:
            self._with_inputs.append(ns)
            while len(self._with_inputs) > self.MAX_INPUTS:
                old = self.frames.get(self._with_inputs.popleft())
                if old is not None:
                    old.inputs.clear()
        f.inputs[sid] = stored

    def phase(self, ns: int) -> int | None:
        """The scenario phase of a stamp (``None`` before the scenario started)."""
        if self.start_ns is None or ns < self.start_ns:
            return None
        return self.timeline.index_at((ns - self.start_ns) * 1e-9) if self.timeline is not None else 0

    def phase_names(self) -> list[str]:
        return [p.name for p in self.timeline.phases] if self.timeline is not None else ["no scenario"]

    def add_noise(self, ns: int, sid: str, severity: float) -> None:
        f = self.frame(ns)
        if f.true_noise is None:
            f.true_noise = np.full(len(self.ids), np.nan)
        f.true_noise[self.ids.index(sid)] = severity

    def compare(self, model_dir: str | Path, budget: int, limit: int = 300, backend: str = "torch") -> int:
        """Score the graph's ADMN, and Naive Allocation and the Upper Bound (at ``budget``, on the recorded
        inputs), on at most ``limit`` frames (evenly spread over those with an estimate, a truth and the
        inputs of every stream the graph had); returns how many."""
        from admn_ros.core.preprocess import from_storage
        from admn_ros.core.runtime import FrameWindow, Runtime

        def usable(f: Frame) -> bool:
            have = np.array([s in f.inputs for s in self.ids])
            return (f.estimate is not None and f.truth is not None and have.any()
                    and (f.blocks is None or bool(have[f.blocks > 0].all())))

        stamps = sorted(ns for ns, f in self.frames.items() if f.inputs)
        judged = [ns for ns in stamps if usable(self.frames[ns]) and self.phase(ns) is not None]
        pick = set(judged[::max(1, math.ceil(len(judged) / max(1, limit)))])
        if not pick:
            return 0
        rt = Runtime.load(model_dir, backend=backend, task=self.task.name)
        for policy in ("naive", "upper_bound"):
            win = FrameWindow(rt.frames, rt.stream_ids)
            for ns in stamps:
                f = self.frames[ns]
                win.push(ns, {s: from_storage(split_stream_id(s)[1], a) for s, a in f.inputs.items()})
                if ns in pick and win.full:
                    f.scores[policy] = self.task.score(rt.infer(win, budget, policy).estimate, f.truth)
        for f in map(self.frames.__getitem__, pick):
            f.scores["admn"] = self.task.score(f.estimate, f.truth)
        self.compared = len(pick)
        return self.compared

    def phases(self) -> list[dict[str, Any]]:
        """Per phase: time span, estimates, the metric of each method on the compared frames,
        mean blocks per stream and latency p50 / p99 of the graph's estimates."""
        names, out = self.phase_names(), []
        span = [(p.start_s, p.end_s) for p in self.timeline.phases] if self.timeline is not None else [(0.0, None)]
        for i, name in enumerate(names):
            fs = [f for ns, f in self.frames.items() if self.phase(ns) == i]
            est = [f for f in fs if f.estimate is not None]
            blocks = [f.blocks for f in fs if f.blocks is not None]
            lat = [f.latency_ms for f in est]
            out.append({
                "phase": name, "start_s": span[i][0], "end_s": span[i][1], "estimates": len(est),
                "compared": sum("admn" in f.scores for f in fs),
                self.task.metric.name: {k: _mean([f.scores[k] for f in fs if k in f.scores]) for k in METHODS},
                "blocks": dict(zip(self.ids, np.mean(blocks, axis=0).round(2).tolist())) if blocks else {},
                "latency_ms": {"p50": _pct(lat, 50), "p99": _pct(lat, 99)}})
        return out

    def report(self, files: Sequence[Path] = ()) -> tuple[list[str], dict[str, Any]]:
        """The summary's per-phase tables (text lines) and the JSON document."""
        m, rows = self.task.metric, self.phases()
        w = max([len(r["phase"]) for r in rows] + [5]) + 2
        best = "lower" if m.lower_is_better else "higher"
        lines = ["", f"per phase: {m.name} ({m.unit}, {best} is better) of the graph's ADMN and of Naive Allocation "
                     "and the Upper Bound computed on the same frames' inputs; latency = sensor stamp -> "
                     "estimate here",
                 f"  {'phase':<{w}} {'compared':>8}  {'ADMN':>8} {'Naive':>8} {'Upper Bound':>11}   latency p50 / p99"]
        for r in rows:
            v = r[m.name]
            lines.append(f"  {r['phase']:<{w}} {r['compared']:>8}  " + " ".join(
                f"{_num(v[k]):>{n}}" for k, n in (("admn", 8), ("naive", 8), ("upper_bound", 11)))
                + f"   {_num(r['latency_ms']['p50'])} / {_num(r['latency_ms']['p99'])} ms")
        lines += ["", f"blocks per stream (ADMN, mean over the phase; budget {self.budget})",
                  f"  {'phase':<{w}} " + " ".join(f"{s.replace('node', 'n'):>9}" for s in self.ids)]
        lines += [f"  {r['phase']:<{w}} " + " ".join(f"{_num(r['blocks'].get(s, math.nan)):>9}" for s in self.ids)
                  for r in rows]
        inside = [f for ns, f in self.frames.items() if self.phase(ns) is not None]
        judged = [self.task.score(f.estimate, f.truth) for f in inside
                  if f.estimate is not None and f.truth is not None]
        means = {k: _mean([f.scores[k] for f in inside if k in f.scores]) for k in METHODS}
        doc = {"task": self.task.name, "metric": {"name": m.name, "unit": m.unit, "lower_is_better": m.lower_is_better,
                                                  "admn_all_estimates": _mean(judged), "judged": len(judged), **means},
               "scenario": getattr(self.timeline, "name", None),
               "scenario_file": getattr(self.timeline, "source", None),
               "budget": self.budget, "streams": self.ids, "compared": self.compared,
               "estimates": sum(f.estimate is not None for f in self.frames.values()),
               "phases": rows, "hops_ms": {h: {"p50": a, "p99": b} for h, (a, b) in self.hops.items()},
               "files": [str(f) for f in files]}
        return lines, doc

    def plot(self, path: Path) -> Path:
        """One PNG: blocks per stream over time with the phases shaded, estimated vs true noise per
        stream, the metric of ADMN / Naive / Upper Bound over time, and one dashboard frame."""
        plt = pyplot()
        t0 = self.start_ns if self.start_ns is not None else min(self.frames, default=0)
        ts = np.array([(ns - t0) * 1e-9 for ns in self.frames])
        fs = list(self.frames.values())
        fig = plt.figure(figsize=(16, 9.5))
        grid = fig.add_gridspec(3, 2, width_ratios=(1.9, 1.0))
        axes = [fig.add_subplot(grid[i, 0]) for i in range(3)]
        for ax in axes[1:]:
            ax.sharex(axes[0])
        colors = _stream_colors(self.ids)
        # blocks per stream (stacked: the budget is shared)
        have = [i for i, f in enumerate(fs) if f.blocks is not None]
        if have:
            b = np.array([fs[i].blocks for i in have], float).T
            axes[0].stackplot(ts[have], b, labels=self.ids, colors=colors, step="post", alpha=0.9)
        axes[0].set_ylabel(f"blocks per stream (L={self.budget})")
        axes[0].legend(loc="upper left", fontsize=7, ncol=len(self.ids) // 3 or 1, framealpha=0.8)
        # estimated (solid) vs true (dashed) noise per stream
        smax = np.array([MODALITIES[split_stream_id(s)[1]].sigma_max for s in self.ids])
        for key, style, scale in (("est_noise", "-", smax), ("true_noise", "--", 1.0)):
            have = [i for i, f in enumerate(fs) if getattr(f, key) is not None]
            if have:
                v = np.array([getattr(fs[i], key) for i in have], float) / scale
                for j, c in enumerate(colors):
                    axes[1].plot(ts[have], _smooth(v[:, j], 5), style, color=c, lw=1.2)
        axes[1].set_ylabel("noise / sigma_max")
        axes[1].plot([], [], "k-", label="estimated (controller)")
        axes[1].plot([], [], "k--", label="true (sensors' QoI)")
        axes[1].legend(loc="upper left", fontsize=8)
        # the metric over time
        m = self.task.metric
        judged = [i for i, f in enumerate(fs) if f.estimate is not None and f.truth is not None]
        for k, style in (("admn", "tab:green"), ("naive", "tab:red"), ("upper_bound", "black")):
            idx = judged if k == "admn" else [i for i, f in enumerate(fs) if k in f.scores]
            v = [self.task.score(fs[i].estimate, fs[i].truth) if k == "admn" else fs[i].scores[k] for i in idx]
            win = max(3, 30 * len(idx) // max(1, len(judged)))  # about the same time span for every method
            if idx:
                axes[2].plot(ts[idx], _smooth(np.asarray(v, float), win, mean=True), color=style,
                             ls="--" if k == "upper_bound" else "-", label=METHODS[k])
        axes[2].set_ylabel(f"{m.name} ({m.unit}), running mean")
        axes[2].set_xlabel("time since the scenario started (s)")
        axes[2].legend(loc="upper left", fontsize=8)
        first = min((ts[i] for i in judged), default=0.0)
        axes[0].set_xlim(max(first, -5.0), max(ts.max(initial=1.0), self.timeline.duration_s if self.timeline else 0))
        for k, ax in enumerate(axes):   # the phases: every other one shaded, names above the first plot
            for i, p in enumerate(self.timeline.phases if self.timeline is not None else ()):
                if i % 2:
                    ax.axvspan(p.start_s, p.end_s, color="0.88", zorder=0)
                if k == 0:
                    ax.text((p.start_s + p.end_s) / 2, 1.01, p.name, ha="center", va="bottom", fontsize=8,
                            transform=ax.get_xaxis_transform())
        fig.suptitle(f"admn_ros {self.task.name} demo: {self.timeline.name if self.timeline else 'no scenario'}",
                     x=0.01, ha="left", fontsize=12)
        ax = fig.add_subplot(grid[:, 1])
        ax.axis("off")
        shown = next((i for i in range(1, len(self.phase_names())) if i in self.dashboards),
                     max(self.dashboards, default=None))
        if shown is not None:
            ax.imshow(self.dashboards[shown])
            ax.set_title(f"admn/dashboard during '{self.phase_names()[shown]}'", fontsize=10)
        save_figure(fig, path)
        return path


def _mean(v: Sequence[float]) -> float:
    return float(np.mean(v)) if len(v) else math.nan


def _pct(v: Sequence[float], q: float) -> float:
    v = [x for x in v if math.isfinite(x)]
    return float(np.percentile(v, q)) if v else math.nan


def _num(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1f}"


def _smooth(v: np.ndarray, n: int, mean: bool = False) -> np.ndarray:
    """Running median (or mean) over ``n`` samples, NaN-aware."""
    out = np.full(len(v), np.nan)
    for i in range(len(v)):
        w = v[max(0, i - n + 1): i + 1]
        w = w[np.isfinite(w)]
        if w.size:
            out[i] = w.mean() if mean else np.median(w)
    return out


def _stream_colors(ids: Sequence[str]) -> list[Any]:
    """A colour family per modality (rgb blues, depth greens, radar reds), a shade per node."""
    import matplotlib

    fam = {"rgb": "Blues", "depth": "Greens", "radar": "Reds"}
    nodes = sorted({split_stream_id(s)[0] for s in ids})
    return [matplotlib.colormaps[fam.get(split_stream_id(s)[1], "Greys")](
        0.45 + 0.4 * nodes.index(split_stream_id(s)[0]) / max(1, len(nodes) - 1)) for s in ids]
