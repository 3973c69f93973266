"""Table-1 report: markdown, CSV, and the PASS/FAIL targets with their numbers."""
from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from admn_ros.core.evaluate.cost import FlopsRow, LatencyResult
from admn_ros.core.evaluate.table import DRAWS, FAILURE_NOTES, NAIVE, EvalSettings, Record, find, lookup
from admn_ros.core.sim.corruptions import REAL_WORLD, blur_length
from admn_ros.core.tasks import Task, get_task

#: Real-world failures a single frame cannot show (judged against the Upper Bound).
STREAM_FAILURES: tuple[str, ...] = ("frozen", "dropout")


@dataclass
class Target:
    """One checked target: ``passed`` is None when it could not be evaluated (missing method)."""

    name: str
    passed: bool | None
    detail: str

    def line(self) -> str:
        tag = "n/a " if self.passed is None else ("PASS" if self.passed else "FAIL")
        return f"[{tag}] {self.name}: {self.detail}"


def _f(x: float, nd: int = 1, sign: str = "") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:{sign}.{nd}f}"


def vs_naive_text(r: Record | None) -> str:
    """``"-0.6 [-2.1, +0.9]"``: paired difference to Naive Allocation and its 95% interval."""
    if r is None or math.isnan(r.vs_naive):
        return "n/a"
    return f"{_f(r.vs_naive, sign='+')} [{_f(r.vs_naive_lo, sign='+')}, {_f(r.vs_naive_hi, sign='+')}]"


def admn_name(records: Sequence[Record]) -> str:
    """The method the targets judge: per-budget ADMN if evaluated, else the universal controller."""
    names = {r.method for r in records if not math.isnan(r.value)}
    return next((n for n in ("ADMN", "ADMN universal", "ADMN_AE") if n in names), "ADMN")


def _binary_ratio_targets(a: float, ub: float, nv: float, where: str, adm: str) -> list[Target]:
    """Tracking (error, lower is better): ADMN / Upper Bound <= 1.15 and Naive / ADMN >= 2.0."""
    r1, r2 = a / ub if ub else math.nan, nv / a if a else math.nan
    return [Target(f"{where}: {adm}/UpperBound <= 1.15", None if math.isnan(r1) else r1 <= 1.15,
                   f"{_f(a)} / {_f(ub)} cm = {_f(r1, 3)}"),
            Target(f"{where}: Naive/{adm} >= 2.0", None if math.isnan(r2) else r2 >= 2.0,
                   f"{_f(nv)} / {_f(a)} cm = {_f(r2, 2)}")]


def _binary_point_targets(a: float, ub: float, nv: float, where: str, adm: str) -> list[Target]:
    """Activity (accuracy %, higher is better): within 5 points of Upper Bound, >= 15 above Naive."""
    return [Target(f"{where}: Upper Bound - {adm} <= 5 points", None if math.isnan(a - ub) else ub - a <= 5.0,
                   f"{_f(ub)} - {_f(a)} = {_f(ub - a)} points"),
            Target(f"{where}: {adm} - Naive >= 15 points", None if math.isnan(a - nv) else a - nv >= 15.0,
                   f"{_f(a)} - {_f(nv)} = {_f(a - nv)} points")]


def _accuracy_targets(records: Sequence[Record], budgets: Sequence[int], settings: EvalSettings, adm: str,
                      pct: str, higher_is_better: bool) -> list[Target]:
    """Per draw mode: the binary targets at the smallest budget (``pct`` of all blocks); ADMN better than
    Naive at every budget (discrete, continuous) or at least as good (real-world failures); errors under
    ``frozen`` / ``dropout``: ADMN within 1.10 x the Upper Bound at the smallest budget."""
    out: list[Target] = []
    L0 = budgets[0]
    binary = _binary_point_targets if higher_is_better else _binary_ratio_targets
    word, unit = (">", " %") if higher_is_better else ("<", "")
    for draw in settings.draws:
        dname = DRAWS.get(draw, draw)
        if "binary" in settings.regimes:
            bt = binary(lookup(records, "binary", draw, adm, L0), lookup(records, "binary", draw, "Upper Bound"),
                        lookup(records, "binary", draw, NAIVE, L0), f"binary {dname}, {pct} (L={L0})", adm)
            bt[1].detail += f"; paired {adm} - Naive {vs_naive_text(find(records, 'binary', draw, adm, L0))}"
            out += bt
        for regime in [r for r in ("discrete", "continuous", *REAL_WORLD) if r in settings.regimes]:
            failure = regime in REAL_WORLD
            if failure and regime in STREAM_FAILURES and not higher_is_better:
                a, ub = lookup(records, regime, draw, adm, L0), lookup(records, regime, draw, "Upper Bound")
                r = a / ub if ub else math.nan
                out.append(Target(f"{regime} {dname}, {pct} (L={L0}): {adm}/UpperBound <= 1.10",
                                  None if math.isnan(r) else r <= 1.10, f"{_f(a)} / {_f(ub)} cm = {_f(r, 3)}"))
            pairs = [(L, lookup(records, regime, draw, adm, L), lookup(records, regime, draw, NAIVE, L))
                     for L in budgets]
            ok = [(a >= n if failure else a > n) if higher_is_better else (a <= n if failure else a < n)
                  for _, a, n in pairs if not (math.isnan(a) or math.isnan(n))]
            out.append(Target(f"{regime} {dname}: {adm} {word + '=' if failure else word} Naive at every budget",
                              None if len(ok) < len(pairs) else all(ok),
                              ", ".join(f"L={L}: {_f(a)} vs {_f(n)}{unit} (paired "
                                        f"{vs_naive_text(find(records, regime, draw, adm, L))})"
                                        for L, a, n in pairs)))
    return out


def check_targets(records: Sequence[Record], flops: Sequence[FlopsRow], budgets: Sequence[int],
                  settings: EvalSettings, task: str | None = None) -> list[Target]:
    """The targets per draw mode in the direction of the task's metric (:func:`_accuracy_targets`) and, with
    :attr:`Task.compute_targets`, ADMN's FLOPs at the smallest budget <= 0.30 x the full model, the
    controller's share <= 2% and (a check) per-stream ADMN beating the per-modality baseline."""
    metric = get_task(task).metric
    adm = admn_name(records)
    L0 = budgets[0]
    pct = f"{round(100 * settings.fractions[0])}%"
    out = _accuracy_targets(records, budgets, settings, adm, pct, higher_is_better=not metric.lower_is_better)
    if not get_task(task).compute_targets:
        return out
    full = next((r for r in flops if r.method == "Upper Bound"), None)
    a0 = next((r for r in flops if (r.method, r.budget) == (adm, L0)), None)
    if full is not None and a0 is not None:
        ratio = a0.gflops_total / full.gflops_total
        out.append(Target(f"FLOPs {adm} at {pct} incl. controller <= 0.30 x full", ratio <= 0.30,
                          f"{a0.gflops_total:.4f} / {full.gflops_total:.4f} GFLOPs = {ratio:.3f}"))
        share = a0.gflops_controller / a0.gflops_total
        out.append(Target(f"controller share of {adm} FLOPs at {pct} <= 2%", share <= 0.02,
                          f"{a0.gflops_controller:.5f} / {a0.gflops_total:.4f} GFLOPs = {100 * share:.3f}%"))
    else:
        out.append(Target("FLOPs targets", None, f"no FLOPs for {adm} / Upper Bound"))
    if "stream" in settings.draws:
        cells = [(lookup(records, r, "stream", adm, L), lookup(records, r, "stream", "ADMN per-modality", L))
                 for r in settings.regimes if r not in REAL_WORLD for L in budgets]
        res = [(a, p) for a, p in cells if not (math.isnan(a) or math.isnan(p))]
        if res:
            wins = sum(metric.better(a, p) for a, p in res)
            out.append(Target(f"(check) per-stream {adm} beats ADMN per-modality under per-stream noise",
                              wins == len(res),
                              f"{wins}/{len(res)} cells; mean {_f(sum(a for a, _ in res) / len(res))} vs "
                              f"{_f(sum(p for _, p in res) / len(res))} {metric.unit}"))
    return out


def write_csv(path: Path, records: Sequence[Record], flops: Sequence[FlopsRow], task: str | None = None) -> Path:
    fl = {(r.method, r.budget): r for r in flops}
    metric = get_task(task).metric
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["regime", "draw", "method", "budget_blocks", "budget_fraction", metric.column, metric.median_column,
                    "n_samples", "noisy_share", "vs_naive", "vs_naive_ci_lo", "vs_naive_ci_hi", "vs_naive_groups",
                    "gflops_model", "gflops_controller", "gflops_total"])
        for r in records:
            fr = fl.get((r.method, r.budget))
            w.writerow([r.regime, r.draw, r.method, r.budget, f"{r.fraction:.4f}", _f(r.value, 3),
                        _f(r.median, 3), r.n, _f(r.noisy_share, 4), _f(r.vs_naive, 3), _f(r.vs_naive_lo, 3),
                        _f(r.vs_naive_hi, 3), r.vs_naive_groups or "",
                        f"{fr.gflops_model:.6f}" if fr else "", f"{fr.gflops_controller:.6f}" if fr else "",
                        f"{fr.gflops_total:.6f}" if fr else ""])
    return path


def _rows_word(settings: EvalSettings) -> str:
    """What the rows are drawn as: ``Failures`` when every row is a real-world failure, else ``Noise``."""
    return "Failures" if all(r in REAL_WORLD for r in settings.regimes) else "Noise"


def _failure_section(settings: EvalSettings, info: dict[str, Any]) -> list[str]:
    """Markdown: how each real-world failure row corrupts the frames (:data:`FAILURE_NOTES`)."""
    kinds = [r for r in settings.regimes if r in REAL_WORLD]
    if not kinds:
        return []
    age = info.get("frozen_age")
    fmt = {"max_age": settings.frozen_max_age, "blur_px": blur_length(1.0, info.get("pixel_scale", 1.0)),
           "age": f"mean {age['mean']:.1f}, {age['min']} to {age['max']} frames" if age else "n/a"}
    return ["## Real-world failures", "",
            "Each stream (per stream), or each modality on every node (per modality), that a failure applies to "
            "fails with probability 1/2, like the binary noise regime:", ""] + [
        f"- `{k}`: {FAILURE_NOTES[k].format(**fmt)}" for k in kinds] + [""]


def _paired_section(records: Sequence[Record], settings: EvalSettings, budgets: Sequence[int], info: dict[str, Any],
                    task: Task) -> list[str]:
    """Markdown: each adaptive method minus Naive Allocation, sample by sample, with its interval."""
    names = list(dict.fromkeys(r.method for r in records if not math.isnan(r.vs_naive)))
    if not names:
        return []
    n_groups = max(r.vs_naive_groups for r in records)
    group = info.get("groups", "group")
    m = task.metric
    better = f"{'negative' if m.lower_is_better else 'positive'} = better than Naive"
    lines = [f"## Paired difference to Naive Allocation ({'points' if m.unit == '%' else m.unit}; {better})", "",
             "Mean of (method - Naive) over the same corrupted samples, with a 95% bootstrap interval that "
             f"resamples whole {group}s ({n_groups} in this split). An interval that contains 0 means this "
             "split cannot tell the two apart.", ""]
    for draw in settings.draws:
        lines += [f"{_rows_word(settings)} drawn {DRAWS.get(draw, draw)}:", ""]
        lines += _cell_table(settings.regimes, names, [f"L={L}" for L in budgets], lambda regime, m: [
            vs_naive_text(find(records, regime, draw, m, L)) for L in budgets])
    return lines


def _cell_table(regimes: Sequence[str], methods: Sequence[str], cols: Sequence[str],
                cells: Callable[[str, str], list[str]]) -> list[str]:
    """Markdown: a row of ``cells(regime, method)`` per regime and method, without the rows of only n/a."""
    lines = ["| noise | method | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for regime in regimes:
        for m in methods:
            row = cells(regime, m)
            if any(c != "n/a" for c in row):
                lines.append(f"| {regime} | {m} | " + " | ".join(row) + " |")
    return lines + [""]


def markdown(records: Sequence[Record], flops: Sequence[FlopsRow], latency: LatencyResult | None,
             targets: Sequence[Target], settings: EvalSettings, budgets: Sequence[int], info: dict[str, Any],
             curve: Sequence[tuple[int, float]] = ()) -> str:
    """The report as markdown: tables per draw mode, compute, targets."""
    total = info.get("total_blocks", 108)
    task = get_task(info.get("task"))
    methods = list(dict.fromkeys(r.method for r in records))
    cols = [f"{round(100 * f)}% (L={L})" for f, L in zip(settings.fractions, budgets)]
    word = _rows_word(settings)
    lines = [f"# {task.table_title}" + (": real-world sensor failures" if word == "Failures" else ""), ""]
    lines += [f"- data: `{info.get('data')}` split `{info.get('split')}`, {info.get('n_samples')} samples, "
              f"noise seed {settings.seed}",
              f"- models: {info.get('models')}",
              f"- metric: {task.table_metric.format(frames=info.get('frames'))} (batch-1 semantics: per-sample "
              "allocation); every method sees identical corrupted inputs",
              f"- budgets are active blocks of {total} (forced first blocks included); Upper Bound uses all {total}",
              "- *noisy share*: for adaptive methods, fraction of the non-forced blocks given to streams with "
              "sigma >= sigma_max/2 (or a real-world failure)", ""]
    lines += _failure_section(settings, info)
    for draw in settings.draws:
        lines += [f"## {word} drawn {DRAWS.get(draw, draw)}"
                  + (" (the paper's setting)" if draw == "modality" else " (independent per node stream)"), ""]
        lines += _cell_table(settings.regimes, methods, cols, lambda regime, m: [
            _f(lookup(records, regime, draw, m, None if m == "Upper Bound" else L)) for L in budgets])
        shares = [r for r in records if r.draw == draw and not math.isnan(r.noisy_share)]
        if shares:
            lines += [f"Noisy share ({DRAWS.get(draw, draw)}): " + "; ".join(
                f"{r.method} {r.regime} L={r.budget}: {r.noisy_share:.2f}" for r in shares
                if r.method in ("ADMN", "ADMN universal") and r.budget == budgets[0]), ""]
    lines += _paired_section(records, settings, budgets, info, task)
    if curve:
        unit = f"{task.metric.name} {task.metric.unit}"
        lines += ["## Depth sensitivity (clean inputs, the same k every-other blocks on every stream)", "",
                  "| blocks per stream k | " + " | ".join(str(k) for k, _ in curve) + " |",
                  "|---|" + "---|" * len(curve),
                  f"| {unit} | " + " | ".join(_f(v) for _, v in curve) + " |", "",
                  "If this row is nearly flat, no allocation can gain much over Naive Allocation: compare "
                  "the QoI oracle (told the true noise) with Naive in the tables above.", ""]
    lines += ["## Compute", "", "| method | budget | GFLOPs model | GFLOPs controller | GFLOPs total | share of full |",
              "|---|---|---|---|---|---|"]
    full = next((r for r in flops if r.method == "Upper Bound"), None)
    for r in flops:
        share = r.gflops_total / full.gflops_total if full else math.nan
        lines.append(f"| {r.method} | {r.budget} | {r.gflops_model:.4f} | {r.gflops_controller:.5f} | "
                     f"{r.gflops_total:.4f} | {share:.3f} |")
    lines.append("")
    if latency is not None:
        lines += [f"Batch-1 latency (engine, torch backend, {latency.threads} thread(s), median): full model "
                  f"{latency.full_ms:.2f} ms", ""]
        if latency.per_budget_ms:
            lines += ["| budget | ADMN ms (controller + blocks) | controller ms | vs full |", "|---|---|---|---|"]
            lines += [f"| {L} | {ms:.2f} | {latency.controller_ms.get(L, math.nan):.2f} | {ms / latency.full_ms:.2f} |"
                      for L, ms in latency.per_budget_ms.items()] + [""]
        lines += ["Latency vs active blocks (static allocations): " + ", ".join(
            f"{b}: {ms:.2f} ms" for b, ms in latency.curve), ""]
    lines += ["## Targets", ""] + [f"- {t.line()}" for t in targets] + [""]
    return "\n".join(lines)


def summary_lines(targets: Sequence[Target]) -> list[str]:
    n = Counter(t.passed for t in targets)
    return [t.line() for t in targets] + [f"targets: {n[True]} PASS, {n[False]} FAIL, {n[None]} n/a"]
