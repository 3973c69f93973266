"""Table 1 on a held-out split: localisation error (cm) per noise regime, draw mode, method, budget.

Noise is drawn once per (regime, draw mode) from seeds derived from the evaluation seed,
and every method and budget is run on the *same* corrupted inputs. Errors are per-sample
Euclidean distances (cm) averaged over samples: batch-1 semantics (per-sample masks,
eval mode, no coupling between the samples of a batch). Each budgeted method is also compared
with Naive Allocation sample by sample (:mod:`admn_ros.core.evaluate.stats`), with a bootstrap
interval over the split's episodes (tracking) or subjects (activity).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from admn_ros.core.evaluate.methods import Method
from admn_ros.core.evaluate.stats import paired_diff, sample_groups
from admn_ros.core.noise import draw_stream_sigmas
from admn_ros.core.streams import MODALITIES, StreamSet, budget_from_fraction, mask_from_counts
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import apply_noise, derive_seed, progress, sample_scores, to_torch
from admn_ros.core.train.config import TABLE_FRACTIONS

DRAWS: dict[str, str] = {"modality": "per modality", "stream": "per stream"}
#: The input-agnostic baseline every budgeted method is compared with.
NAIVE = "Naive Allocation"


@dataclass
class EvalSettings:
    """What the table covers.

    Attributes:
        regimes: noise regimes (rows).
        draws: ``modality`` (one sigma per modality shared by the nodes; the paper) and/or
            ``stream`` (independent per node stream).
        fractions: budgets as fractions of all blocks (columns).
        samples: test samples used (0 = all).
        seed: noise seed (the same seed gives the same corrupted inputs).
        batch_size: evaluation batch. The masks and errors do not depend on it, but the
            Gaussian noise is drawn batch by batch, so the corrupted inputs (and the cells) are
            the same only for the same ``seed`` and ``batch_size``.
    """

    regimes: tuple[str, ...] = ("binary", "discrete", "continuous")
    draws: tuple[str, ...] = ("modality", "stream")
    fractions: tuple[float, ...] = TABLE_FRACTIONS
    samples: int = 0
    seed: int = 0
    batch_size: int = 64

    def budgets(self, n_streams: int, depth: int) -> list[int]:
        return [budget_from_fraction(f, n_streams, depth) for f in self.fractions]


@dataclass
class Record:
    """One table cell: the mean score of ``method`` at ``budget`` under (``regime``, ``draw``).

    ``value`` / ``median`` are in the task's unit (:attr:`Task.metric <admn_ros.core.tasks.base.Task.metric>`):
    tracking error in cm (lower is better), activity accuracy in % (higher is better)."""

    regime: str
    draw: str
    method: str
    key: str
    budget: int
    fraction: float
    value: float
    median: float
    n: int
    noisy_share: float = float("nan")
    #: paired comparison with Naive Allocation at the same budget (:mod:`.stats`): mean of
    #: ``score - naive score`` over the samples and its 95% cluster-bootstrap interval over
    #: ``vs_naive_groups`` groups (episodes / subjects); NaN for Naive and unbudgeted methods.
    vs_naive: float = float("nan")
    vs_naive_lo: float = float("nan")
    vs_naive_hi: float = float("nan")
    vs_naive_groups: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Example:
    """An allocation example (Fig. 8): noisy inputs, sigmas and the masks chosen per method."""

    regime: str
    draw: str
    budget: int
    inputs: dict[str, np.ndarray]  # modality -> [S, C, H, W]
    sigmas: np.ndarray  # [n]
    gt: np.ndarray  # tracking [2] metres, activity [] class index
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # method name -> [n, depth]
    preds: dict[str, np.ndarray] = field(default_factory=dict)  # method name -> [2] or class index


def noisy_stream_mask(sigmas: np.ndarray, streams: StreamSet, threshold: float = 0.5) -> np.ndarray:
    """bool ``[B, n]``: streams whose sigma is at least ``threshold * sigma_max``."""
    smax = np.array([MODALITIES[streams.modality_of(i)].sigma_max for i in range(len(streams))], dtype=np.float32)
    return sigmas >= threshold * smax[None]


@torch.no_grad()
def run_table(model: torch.nn.Module, methods: Sequence[Method], ds: Any, settings: EvalSettings,
              show_progress: bool = True, n_examples: int = 4) -> tuple[list[Record], list[Example]]:
    """Evaluate every method on every (regime, draw, budget). Returns the records and a few
    allocation examples (first samples of each (regime, draw) at the smallest budget)."""
    model.eval()
    cfg = model.cfg
    streams: StreamSet = cfg.streams
    depth = cfg.vit_depth
    n_total = len(ds) if settings.samples <= 0 else min(len(ds), settings.samples)
    budgets = settings.budgets(len(streams), depth)
    forced = len(streams) if cfg.first_block else 0
    groups, _ = sample_groups(ds, n_total)
    records: list[Record] = []
    examples: list[Example] = []
    n_batches = (n_total + settings.batch_size - 1) // settings.batch_size
    bar = progress(len(settings.regimes) * len(settings.draws) * n_batches, "evaluate", show_progress)
    for regime in settings.regimes:
        for draw in settings.draws:
            rng = np.random.default_rng(derive_seed(settings.seed, "eval", regime, draw))
            sig_all = np.stack([draw_stream_sigmas(streams, regime, rng, mode=draw) for _ in range(n_total)])
            gen = torch.Generator().manual_seed(derive_seed(settings.seed, "eval-gauss", regime, draw))
            errs: dict[tuple[str, int], list[np.ndarray]] = {}
            shares: dict[tuple[str, int], list[float]] = {}
            na: set[tuple[str, int]] = set()
            for bi, start in enumerate(range(0, n_total, settings.batch_size)):
                sel = np.arange(start, min(n_total, start + settings.batch_size))
                clean, gt = to_torch(ds.batch(sel), streams.modalities)
                sig = sig_all[sel]
                noisy = apply_noise(clean, sig, streams, gen)
                noisy_rows = noisy_stream_mask(sig, streams)
                ex = None
                if bi == 0 and n_examples > 0:
                    k = min(n_examples, len(sel))
                    ex = [Example(regime, draw, budgets[0], {m: noisy[m][i].numpy().copy() for m in streams.modalities},
                                  sig[i].copy(), gt[i].numpy().copy()) for i in range(k)]
                for meth in methods:
                    for L in (budgets if meth.budgeted else [len(streams) * depth]):
                        key = (meth.name, L)
                        if key in na:
                            continue
                        mask = meth.mask(noisy, L, len(sel), sig)
                        if mask is None:
                            na.add(key)
                            continue
                        mask = np.asarray(mask, dtype=bool)
                        got = mask.reshape(len(sel), -1).sum(1)
                        if not (got == L).all():
                            raise AssertionError(f"{meth.name}: allocation uses {got.tolist()} blocks, budget {L}")
                        out = model(noisy, torch.from_numpy(np.ascontiguousarray(mask)))
                        e = get_task(cfg.task).scores(out, gt).numpy()
                        errs.setdefault(key, []).append(e)
                        if meth.adaptive and L > forced:
                            extra = mask.copy()
                            if cfg.first_block:
                                extra[:, :, 0] = False
                            on_noisy = (extra.sum(2) * noisy_rows).sum(1)
                            shares.setdefault(key, []).extend((on_noisy / (L - forced)).tolist())
                        if ex is not None and (L == budgets[0] or not meth.budgeted):
                            for i, exi in enumerate(ex):
                                exi.masks[meth.name] = mask[i].copy()
                                exi.preds[meth.name] = (out["mean"][i].numpy().copy() if "mean" in out
                                                        else out["logits"][i].argmax(-1).numpy().copy())
                if ex is not None:
                    examples.extend(ex)
                bar.update(1)
            for meth in methods:
                for L in (budgets if meth.budgeted else [len(streams) * depth]):
                    key = (meth.name, L)
                    if key in na or key not in errs:
                        records.append(Record(regime, draw, meth.name, meth.key, L, L / (len(streams) * depth),
                                              float("nan"), float("nan"), 0))
                        continue
                    e = np.concatenate(errs[key])
                    sh = shares.get(key)
                    rec = Record(regime, draw, meth.name, meth.key, L, L / (len(streams) * depth),
                                 float(e.mean()), float(np.median(e)), int(e.size),
                                 float(np.mean(sh)) if sh else float("nan"))
                    base = errs.get((NAIVE, L))
                    if meth.budgeted and meth.name != NAIVE and base is not None:
                        pd = paired_diff(e, np.concatenate(base), groups,
                                         seed=derive_seed(settings.seed, "bootstrap", regime, draw))
                        rec.vs_naive, rec.vs_naive_lo, rec.vs_naive_hi = pd.mean, pd.lo, pd.hi
                        rec.vs_naive_groups = pd.groups
                    records.append(rec)
    bar.close()
    return records, examples


#: Blocks per stream of the depth-sensitivity curve (:func:`depth_curve`).
CURVE_BLOCKS: tuple[int, ...] = (1, 2, 3, 4, 6, 9, 12)


@torch.no_grad()
def depth_curve(model: torch.nn.Module, ds: Any, settings: EvalSettings,
                blocks: Sequence[int] = CURVE_BLOCKS) -> list[tuple[int, float]]:
    """Clean-input score with the same ``k`` every-other blocks on every stream, per ``k``.

    This is what any allocation works with: if the score barely changes between ``k = 1`` and
    the full depth, no allocation (not even the QoI oracle) can beat an even split by much.
    ``scripts/diagnose_model.py depth`` prints the full curve, also with noisy modalities.
    """
    cfg = model.cfg
    n_total = len(ds) if settings.samples <= 0 else min(len(ds), settings.samples)
    idx = np.arange(n_total)
    out = []
    for k in blocks:
        if 1 <= k <= cfg.vit_depth:
            mask = mask_from_counts([k] * cfg.n_streams, cfg.vit_depth)
            scores = sample_scores(model, ds, idx, cfg.streams, lambda x, b, m=mask: m,
                                   batch_size=settings.batch_size)
            out.append((int(k), float(scores.mean())))
    return out


def find(records: Sequence[Record], regime: str, draw: str, method: str, budget: int | None = None) -> Record | None:
    """The record of one cell (``method`` is a name or key; ``budget=None`` takes the first), or None."""
    for r in records:
        if r.regime == regime and r.draw == draw and (r.method == method or r.key == method) and (
                budget is None or r.budget == budget):
            return r
    return None


def lookup(records: Sequence[Record], regime: str, draw: str, method: str, budget: int | None = None) -> float:
    """Score of one cell (cm or %); ``budget=None`` takes the method's only value (Upper Bound). NaN if absent."""
    r = find(records, regime, draw, method, budget)
    return float("nan") if r is None else r.value
