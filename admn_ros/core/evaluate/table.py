"""Table 1 on a held-out split: the mean score per noise regime or real-world failure, draw mode, method and
budget (what the rows, methods and cells are: docs/TRAINING.md, "Evaluation (Table 1)")."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from admn_ros.core.data.tools import progress_bar
from admn_ros.core.evaluate.methods import Method
from admn_ros.core.evaluate.stats import paired_diff, sample_groups
from admn_ros.core.noise import REGIMES, draw_stream_sigmas
from admn_ros.core.sim.config import CameraIntrinsics, RadarConfig
from admn_ros.core.sim.corruptions import REAL_WORLD
from admn_ros.core.streams import StreamSet, budget_from_fraction, mask_from_counts
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import (apply_failures, apply_noise, derive_seed, draw_failures, mean_score,
                                        sigma_max_of, to_torch)
from admn_ros.core.train.config import TABLE_FRACTIONS, TrainConfigError

DRAWS: dict[str, str] = {"modality": "per modality", "stream": "per stream"}
#: How the table applies each real-world failure to a dataset's 64x64 frames (report text).
FAILURE_NOTES: dict[str, str] = {
    "low_light": "RGB at severity 1 (exposure x0.1, shot and read noise), per pixel as at sensor resolution",
    "motion_blur": "RGB and depth at severity 1: a linear blur of 25 sensor pixels in a random direction, "
                   "{blur_px} pixels of the 64x64 frame",
    "frozen": "any stream shows its own earlier frame of the same episode, 1 to {max_age} frames old, "
              "as if it froze that long ago (at the episode's first frames the oldest there is); "
              "realised age {age}",
    "clutter": "radar at severity 1: 13 spurious reflectors (multipath ghosts)",
    "dropout": "any stream is absent: no input, 0 blocks (every method's mask is cut to the present "
               "streams, as the graph does; the controllers get the present streams and spend the whole "
               "budget on them, input-agnostic methods lose the absent streams' blocks)",
}
#: The input-agnostic baseline every budgeted method is compared with.
NAIVE = "Naive Allocation"


@dataclass
class EvalSettings:
    """What the table covers: rows (``regimes``), ``draws`` (``modality``: one sigma shared by a
    modality's nodes, the paper; ``stream``: per node stream), columns (``fractions`` of all blocks)
    and ``samples`` (0 = all). The Gaussian noise is drawn batch by batch, so the cells repeat
    for the same ``seed`` and ``batch_size``. A ``frozen`` frame is 1 to ``frozen_max_age`` old.
    """

    regimes: tuple[str, ...] = ("binary", "discrete", "continuous")
    draws: tuple[str, ...] = ("modality", "stream")
    fractions: tuple[float, ...] = TABLE_FRACTIONS
    samples: int = 0
    seed: int = 0
    batch_size: int = 64
    frozen_max_age: int = 15

    def budgets(self, n_streams: int, depth: int) -> list[int]:
        return [budget_from_fraction(f, n_streams, depth) for f in self.fractions]


@dataclass
class Record:
    """One table cell: the mean (``value``) and ``median`` score of ``method`` at ``budget`` under
    (``regime``, ``draw``) in the task's unit (tracking error cm, activity accuracy %)."""

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
    #: mean of ``score - naive score`` at the same budget and its 95% cluster-bootstrap interval
    #: over ``vs_naive_groups`` groups; NaN for Naive and unbudgeted methods.
    vs_naive: float = float("nan")
    vs_naive_lo: float = float("nan")
    vs_naive_hi: float = float("nan")
    vs_naive_groups: int = 0


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


def failure_geometry(ds: Any) -> tuple[RadarConfig, float]:
    """The radar geometry of ``ds``'s radar maps and its camera pixels per sensor pixel, from the
    simulator config in its ``meta.json`` (the simulator's defaults without one)."""
    sim = (getattr(ds, "meta", None) or {}).get("sim_config") or {}
    r = {**asdict(RadarConfig()), **(sim.get("radar") or {})}
    size = int(getattr(ds, "meta", {}).get("model_input", 64))
    radar = RadarConfig(size, r["range_bins"] * r["range_res_m"] / size, size, r["fov_deg"])
    width = ((sim.get("nodes") or [{}])[0].get("camera") or {}).get("width", CameraIntrinsics().width)
    return radar, size / float(width)


class EarlierFrames:
    """Earlier frames of the same episode, for ``frozen`` streams (each episode once, as
    consecutive frames in order: ``episode`` and ``t`` arrays, ``rate_hz``)."""

    def __init__(self, ds: Any) -> None:
        ep, t = getattr(ds, "episode", None), getattr(ds, "t", None)
        rate = float((getattr(ds, "meta", None) or {}).get("rate_hz") or 0.0)
        where = f"{getattr(ds, 'root', 'dataset')}/{getattr(ds, 'split', '')}"
        if ep is None or t is None or rate <= 0:
            raise TrainConfigError(f"{where}: 'frozen' needs episodes of consecutive frames (episode and t arrays, "
                             "rate_hz in meta.json)")
        ep, t = np.asarray(ep), np.asarray(t, np.float64)
        first = np.r_[True, ep[1:] != ep[:-1]]
        steps = np.diff(t)[~first[1:]]
        if first.sum() != len(np.unique(ep)) or not np.allclose(steps, 1.0 / rate, atol=0.01 / rate):
            raise TrainConfigError(f"{where}: 'frozen' needs each episode's frames consecutive and in order "
                             f"at {rate:g} Hz")
        self.ds = ds
        self.start = np.maximum.accumulate(np.where(first, np.arange(len(ep)), 0))

    def frames(self, rows: np.ndarray, ages: np.ndarray, streams: StreamSet
               ) -> tuple[dict[str, torch.Tensor], np.ndarray]:
        """Per sample ``rows [B]`` and stream, its frame ``ages [B, n]`` frames earlier (at most
        back to the episode's first frame): ``(inputs [B, S, C, H, W] per modality, actual ages [B, n])``."""
        rows = np.asarray(rows)[:, None]
        src = np.maximum(self.start[rows], rows - ages)
        uniq, inv = np.unique(src, return_inverse=True)
        got, _ = to_torch(self.ds.batch(uniq), streams.modalities)
        s, nm = len(streams.nodes), len(streams.modalities)
        inv, nodes = torch.from_numpy(inv.reshape(len(rows), s, nm)), torch.arange(s)[None, :]
        return {m: got[m][inv[:, :, mi], nodes] for mi, m in enumerate(streams.modalities)}, rows - src


@torch.no_grad()
def run_table(model: torch.nn.Module, methods: Sequence[Method], ds: Any, settings: EvalSettings,
              show_progress: bool = True, n_examples: int = 4, notes: dict[str, Any] | None = None
              ) -> tuple[list[Record], list[Example]]:
    """Every method on every (regime, draw, budget): the records and a few allocation examples (first
    samples at the smallest budget). ``notes`` receives ``frozen_age`` (realised ages) for the report."""
    model.eval()
    cfg = model.cfg
    streams: StreamSet = cfg.streams
    depth = cfg.vit_depth
    n_total = len(ds) if settings.samples <= 0 else min(len(ds), settings.samples)
    budgets = settings.budgets(len(streams), depth)
    forced = len(streams) if cfg.first_block else 0
    total = len(streams) * depth
    cells = [(meth, L) for meth in methods for L in (budgets if meth.budgeted else [total])]
    groups, _ = sample_groups(ds, n_total)
    records: list[Record] = []
    examples: list[Example] = []
    frozen_ages: list[int] = []
    n_batches = (n_total + settings.batch_size - 1) // settings.batch_size
    bar = progress_bar(show_progress, len(settings.regimes) * len(settings.draws) * n_batches, "batch", "evaluate",
                       transient=True)
    smax = sigma_max_of(streams)
    radar, pixel_scale = failure_geometry(ds)
    failures = [r for r in settings.regimes if r in REAL_WORLD]
    if failures and cfg.frames > 1:
        raise TrainConfigError(f"real-world failures ({', '.join(failures)}) corrupt one image per stream; a model of "
                               f"{cfg.frames}-frame windows ({cfg.task}) takes the noise regimes only "
                               f"({', '.join(REGIMES)})")
    history = EarlierFrames(ds) if "frozen" in settings.regimes else None
    for regime in settings.regimes:
        failure = regime in REAL_WORLD
        for draw in settings.draws:
            rng = np.random.default_rng(derive_seed(settings.seed, "eval", regime, draw))
            if failure:  # "sigmas" of failed streams are sigma_max: the oracle and noisy share see them as noisy
                sig_all = np.stack([draw_failures(regime, streams, rng, draw) for _ in range(n_total)]) * smax
                ages = rng.integers(1, settings.frozen_max_age + 1, size=sig_all.shape)
            else:
                sig_all = np.stack([draw_stream_sigmas(streams, regime, rng, mode=draw) for _ in range(n_total)])
            gen = torch.Generator().manual_seed(derive_seed(settings.seed, "eval-gauss", regime, draw))
            frng = np.random.default_rng(derive_seed(settings.seed, "eval-failure", regime, draw))
            errs: dict[tuple[str, int], list[np.ndarray]] = {}
            shares: dict[tuple[str, int], list[float]] = {}
            for bi, start in enumerate(range(0, n_total, settings.batch_size)):
                sel = np.arange(start, min(n_total, start + settings.batch_size))
                clean, gt = to_torch(ds.batch(sel), streams.modalities, get_task(cfg.task))
                sig = sig_all[sel]
                if failure:
                    earlier = None
                    if history is not None and regime == "frozen":
                        earlier, age = history.frames(sel, ages[sel], streams)
                        frozen_ages.extend(age[sig > 0].tolist())
                    noisy, present = apply_failures(clean, regime, sig / smax, streams, frng, earlier, radar,
                                                    pixel_scale)
                else:
                    noisy, present = apply_noise(clean, sig, streams, gen), None
                noisy_rows = sig >= 0.5 * smax  # the noisy share counts streams at sigma >= sigma_max / 2
                k = min(n_examples, len(sel)) if bi == 0 else 0  # the examples: the first batch's first samples
                ex = [Example(regime, draw, budgets[0], {m: noisy[m][i].numpy().copy() for m in streams.modalities},
                              sig[i].copy(), gt[i].numpy().copy()) for i in range(k)]
                for meth, L in cells:
                    key = (meth.name, L)
                    mask = meth.mask(noisy, L, len(sel), sig, present)
                    if mask is None:  # not applicable at this budget ("n/a")
                        continue
                    mask = np.asarray(mask, dtype=bool)
                    if present is not None:  # an absent stream gets no blocks
                        mask = mask & present[:, :, None]
                    got = mask.reshape(len(sel), -1).sum(1)
                    if not ((got == L) if present is None else (got <= L)).all():
                        raise AssertionError(f"{meth.name}: allocation uses {got.tolist()} blocks, budget {L}")
                    out = model(noisy, torch.from_numpy(np.ascontiguousarray(mask)), present)
                    errs.setdefault(key, []).append(get_task(cfg.task).scores(out, gt).numpy())
                    if meth.adaptive and L > forced:
                        extra = mask[:, :, 1:] if cfg.first_block else mask  # the blocks not forced
                        on_noisy = (extra.sum(2) * noisy_rows).sum(1)
                        shares.setdefault(key, []).extend((on_noisy / (L - forced)).tolist())
                    if L == budgets[0] or not meth.budgeted:
                        for i, exi in enumerate(ex):
                            exi.masks[meth.name] = mask[i].copy()
                            exi.preds[meth.name] = (out["mean"][i].numpy().copy() if "mean" in out
                                                    else out["logits"][i].argmax(-1).numpy().copy())
                examples.extend(ex)
                bar.update(1)
            for meth, L in cells:
                key = (meth.name, L)
                rec = Record(regime, draw, meth.name, meth.key, L, L / total, float("nan"), float("nan"), 0)
                records.append(rec)
                if key not in errs:
                    continue
                e = np.concatenate(errs[key])
                sh = shares.get(key)
                rec.value, rec.median, rec.n = float(e.mean()), float(np.median(e)), int(e.size)
                rec.noisy_share = float(np.mean(sh)) if sh else float("nan")
                base = errs.get((NAIVE, L))
                if meth.budgeted and meth.name != NAIVE and base is not None:
                    d = paired_diff(e, np.concatenate(base), groups,
                                    seed=derive_seed(settings.seed, "bootstrap", regime, draw))
                    rec.vs_naive, rec.vs_naive_lo, rec.vs_naive_hi, rec.vs_naive_groups = d.mean, d.lo, d.hi, d.groups
    bar.close()
    if notes is not None and frozen_ages:
        a = np.asarray(frozen_ages)
        notes["frozen_age"] = {"mean": float(a.mean()), "min": int(a.min()), "max": int(a.max())}
    return records, examples


@torch.no_grad()
def depth_curve(model: torch.nn.Module, ds: Any, settings: EvalSettings,
                blocks: Sequence[int] = (1, 2, 3, 4, 6, 9, 12)) -> list[tuple[int, float]]:
    """Clean-input score with the same ``k`` every-other blocks on every stream, per ``k``: if it is
    flat, no allocation can beat an even split by much."""
    cfg = model.cfg
    n = len(ds) if settings.samples <= 0 else min(len(ds), settings.samples)
    return [(int(k), mean_score(model, ds, n, mask_from_counts([k] * cfg.n_streams, cfg.vit_depth),
                                batch_size=settings.batch_size))
            for k in blocks if 1 <= k <= cfg.vit_depth]


def find(records: Sequence[Record], regime: str, draw: str, method: str, budget: int | None = None) -> Record | None:
    """The record of one cell (``method`` is a name or key; ``budget=None`` takes the first), or None."""
    return next((r for r in records if r.regime == regime and r.draw == draw and method in (r.method, r.key)
                 and (budget is None or r.budget == budget)), None)


def lookup(records: Sequence[Record], regime: str, draw: str, method: str, budget: int | None = None) -> float:
    """Score of one cell (cm or %); ``budget=None`` takes the method's only value (Upper Bound). NaN if absent."""
    r = find(records, regime, draw, method, budget)
    return float("nan") if r is None else r.value
