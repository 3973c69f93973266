"""Typed training configurations (stage 1, stage 2), serialisable into checkpoints, and what a task's
shipped recipe holds (:class:`TaskRecipe`). Defaults are the shipped tracking recipe; a config is validated
at construction and every problem raises :class:`TrainConfigError` naming the field.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from admn_ros.core.noise import REGIMES
from admn_ros.core.paths import read_yaml
from admn_ros.core.streams import DEPTH, MODALITIES, budget_from_fraction, budget_range, validate_budget

T = TypeVar("T", bound="_Base")

#: Budgets of the paper's Table 1 as fractions of all blocks (25/33/50/67% of 108 -> 27/36/54/72).
TABLE_FRACTIONS: tuple[float, ...] = (0.25, 0.33, 0.50, 0.67)


class TrainConfigError(ValueError):
    """A training/evaluation setting or input is invalid; the message names it."""


def check_budgets(budgets: Sequence[int], n_streams: int, depth: int, first_block: bool, what: str) -> None:
    """:class:`TrainConfigError` naming the setting ``what`` for a budget ``validate_budget`` refuses."""
    try:
        for b in budgets:
            validate_budget(b, n_streams, depth, first_block)
    except ValueError as exc:
        raise TrainConfigError(f"{what}: {exc}") from exc


def load_config_file(path: str | None) -> dict[str, Any]:
    """A JSON (or ``.yaml``/``.yml``) file of config fields as a dict; ``{}`` for no path."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise TrainConfigError(f"{p}: config file not found")
    if p.suffix in (".yaml", ".yml"):
        d = read_yaml(p, "config", TrainConfigError) or {}
    else:
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise TrainConfigError(f"{p}: cannot parse config: {exc}") from exc
    if not isinstance(d, dict):
        raise TrainConfigError(f"{p}: config must be a mapping of field -> value")
    return d


@dataclass
class _Base:
    """The fields both stages share (``val_samples``: the first samples, 0 = all; ``threads``: 0 =
    torch's default) and (de)serialisation."""

    data: str = "data/gdtm_sim"
    batch_size: int = 64
    seed: int = 0
    val_samples: int = 512
    threads: int = 0
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls: type[T], d: Mapping[str, Any]) -> T:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainConfigError(f"{cls.__name__}: unknown keys {unknown}; known keys: {sorted(known)}")
        for f in fields(cls):  # a number or a mapping where the default is one
            default = f.default_factory() if callable(f.default_factory) else f.default
            want = {float: Real, int: Integral, bool: Integral, dict: Mapping}.get(type(default))
            if f.name in d and want and not isinstance(d[f.name], want):
                raise TrainConfigError(f"{cls.__name__}.{f.name} must be of type {f.type}, got {d[f.name]!r}")
        return cls(**dict(d))


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise TrainConfigError(msg)


def _require(cfg: Any, rules: Mapping[str, tuple[bool, str]]) -> None:
    """Raise for the first failing rule ``field -> (ok, what the field must be)``."""
    for name, (ok, want) in rules.items():
        _check(ok, f"{type(cfg).__name__}.{name} must be {want}, got {getattr(cfg, name)!r}")


def _check_mix(name: str, mix: Mapping[str, float], allowed: Sequence[str]) -> None:
    _check(bool(mix), f"{name}: needs at least one entry")
    for k, v in mix.items():
        _check(k in allowed, f"{name}: unknown key {k!r}; allowed: {list(allowed)}")
        _check(float(v) >= 0.0, f"{name}[{k!r}] must be >= 0, got {v}")
    _check(sum(float(v) for v in mix.values()) > 0.0, f"{name}: weights sum to 0")


@dataclass
class Stage1Config(_Base):
    """Stage 1 (docs/TRAINING.md). Ramps are ``[[epoch, value], ...]`` (``loss_ramp``: ``[[epoch,
    nll_weight, dist_weight]]``), each value holding from its epoch on. ``train_samples``: a fresh random
    subset per epoch (0 = all). ``modality_missing``: per modality, the probability that all its streams
    are missing. ``alloc_ramp``: the share of noisy batches under
    :func:`~admn_ros.core.train.common.noise_aware_masks` instead of LayerDrop. ``init``: a stage-1
    checkpoint of the same network ("" = scratch)."""

    out: str = "runs/stage1"
    epochs: int = 10
    lr: float = 5e-4
    min_lr: float = 2e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    train_samples: int = 0
    layerdrop_ramp: tuple[tuple[int, float], ...] = ((0, 0.0), (2, 0.1), (4, 0.2))
    loss_ramp: tuple[tuple[int, float, float], ...] = ((0, 0.0, 1.0), (2, 1.0, 0.05))
    full_drop: float = 0.1
    noise_start_epoch: int = 1
    noise_regimes: dict[str, float] = field(default_factory=lambda: {"binary": 0.5, "continuous": 0.5})
    modality_draw_prob: float = 0.5
    clean_prob: float = 0.1
    missing_prob: float = 0.02
    modality_missing: dict[str, float] = field(default_factory=lambda: {"radar": 0.25})
    alloc_ramp: tuple[tuple[int, float], ...] = ((0, 0.0),)
    alloc_fractions: tuple[float, ...] = TABLE_FRACTIONS
    alloc_temperature: float = 0.2
    model: dict[str, Any] = field(default_factory=dict)
    init: str = ""

    def __post_init__(self) -> None:
        try:
            self.layerdrop_ramp = tuple((int(e), float(p)) for e, p in self.layerdrop_ramp)
            self.alloc_ramp = tuple((int(e), float(p)) for e, p in self.alloc_ramp)
            self.alloc_fractions = tuple(float(f) for f in self.alloc_fractions)
            self.loss_ramp = tuple((int(e), float(a), float(b)) for e, a, b in self.loss_ramp)
        except (TypeError, ValueError) as exc:
            raise TrainConfigError("Stage1Config.layerdrop_ramp / alloc_ramp must be [[epoch, p], ...], loss_ramp "
                                   "[[epoch, nll_weight, dist_weight], ...] and alloc_fractions a list of fractions: "
                                   f"{exc}") from exc
        _require(self, {
            "alloc_ramp": (all(0.0 <= p <= 1.0 for _, p in self.alloc_ramp), "[[epoch, p in [0, 1]], ...]"),
            "alloc_fractions": (bool(self.alloc_fractions) and all(0.0 < f <= 1.0 for f in self.alloc_fractions),
                                "fractions in (0, 1]"),
            "alloc_temperature": (self.alloc_temperature >= 0.0, ">= 0"),
            "loss_ramp": (bool(self.loss_ramp) and all(a >= 0 and b >= 0 and a + b > 0 for _, a, b in self.loss_ramp),
                          "[[epoch, nll_weight, dist_weight], ...] with weights >= 0, not both 0"),
            "epochs": (self.epochs >= 1, ">= 1"), "batch_size": (self.batch_size >= 1, ">= 1"),
            "lr": (self.lr > 0 and 0 <= self.min_lr <= self.lr, "> 0 and >= min_lr >= 0"),
            "warmup_epochs": (self.warmup_epochs >= 0, ">= 0"),
            "layerdrop_ramp": (all(0.0 <= p < 1.0 for _, p in self.layerdrop_ramp), "[[epoch, p in [0, 1)], ...]"),
            "full_drop": (0.0 <= self.full_drop <= 1.0, "in [0, 1]"),
            "noise_start_epoch": (self.noise_start_epoch >= 0, ">= 0"),
            "modality_draw_prob": (0.0 <= self.modality_draw_prob <= 1.0, "in [0, 1]"),
            "clean_prob": (0.0 <= self.clean_prob <= 1.0, "in [0, 1]"),
            "missing_prob": (0.0 <= self.missing_prob < 0.5, "in [0, 0.5)"),
            "train_samples": (self.train_samples >= 0, ">= 0"), "val_samples": (self.val_samples >= 0, ">= 0")})
        _check_mix("Stage1Config.noise_regimes", self.noise_regimes, REGIMES)
        for m, p in self.modality_missing.items():
            _check(m in MODALITIES, f"Stage1Config.modality_missing: unknown modality {m!r}; known: "
                                    f"{sorted(MODALITIES)}")
            _check(0.0 <= float(p) <= 1.0, f"Stage1Config.modality_missing[{m!r}] must be in [0, 1], got {p}")

    def loss_weights_at(self, epoch: int) -> tuple[float, float]:
        """``(nll_weight, dist_weight)`` in ``epoch`` (0-based; ``(1, 0.05)`` before the ramp)."""
        return next(((a, b) for e, a, b in sorted(self.loss_ramp, reverse=True) if epoch >= e), (1.0, 0.05))

    def layerdrop_at(self, epoch: int) -> float:
        return _ramp_at(self.layerdrop_ramp, epoch)

    def alloc_at(self, epoch: int) -> float:
        return _ramp_at(self.alloc_ramp, epoch)


def _ramp_at(ramp: Sequence[tuple[int, float]], epoch: int) -> float:
    """The value of a ``[[epoch, value], ...]`` ramp in ``epoch`` (0 before its first entry)."""
    return next((p for e, p in sorted(ramp, reverse=True) if epoch >= e), 0.0)


#: Controller variants trained in stage 2, each with its epochs in the shipped recipe:
#: ``(noise_warmup_epochs, epochs)``. The per-budget controllers start from the universal one
#: folded at their budget (``Stage2Config.init``), so one epoch finetunes them.
VARIANTS: dict[str, tuple[int, int]] = {"budget": (0, 1), "universal": (1, 4), "ae": (1, 2)}


@dataclass
class Stage2Config(_Base):
    """Stage 2 (docs/TRAINING.md); fields as stage 1's where shared. ``variant``: ``budget`` (``budget``
    blocks, or ``budget_fraction`` of all when 0), ``universal`` (a budget per batch from the
    ``budget_range`` fractions) or ``ae``. ``init``: a controller to start from (a universal one is folded
    at ``budget``). ``epochs`` / ``noise_warmup_epochs``: ``None`` = the variant's (:data:`VARIANTS`).
    ``loss_weights`` and the split fields: :func:`~admn_ros.core.train.stage2.expected_split_loss`."""

    out: str = "runs/controller"
    stage1: str = "runs/stage1/model.safetensors"
    variant: str = "budget"
    budget: int = 0
    budget_fraction: float = 0.25
    budget_range: tuple[float, float] = (0.2, 0.75)
    init: str = ""
    epochs: int | None = None
    noise_warmup_epochs: int | None = None
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.01
    noise_weight: float = 1.0
    loss_weights: tuple[float, float] = (1.0, 0.05)
    noise_regimes: dict[str, float] = field(default_factory=lambda: {"binary": 1.0, "discrete": 1.0,
                                                                     "continuous": 1.0})
    modality_draw_prob: float = 0.5
    k_samples: int = 4
    explore_scale: float = 1.0
    split_temperature: float = 1.0
    split_limit: int = 4096
    controller: dict[str, Any] = field(default_factory=dict)
    train_samples: int = 4800

    def __post_init__(self) -> None:
        _check(self.variant in VARIANTS, f"Stage2Config.variant must be one of {list(VARIANTS)}, got {self.variant!r}")
        warmup, epochs = VARIANTS[self.variant]
        self.noise_warmup_epochs = warmup if self.noise_warmup_epochs is None else self.noise_warmup_epochs
        self.epochs = epochs if self.epochs is None else self.epochs
        self.budget_range = tuple(float(x) for x in self.budget_range)  # type: ignore[assignment]
        self.loss_weights = tuple(float(x) for x in self.loss_weights)  # type: ignore[assignment]
        lo, hi = self.budget_range
        _require(self, {
            "k_samples": (self.k_samples >= 1, ">= 1"), "explore_scale": (self.explore_scale > 0, "> 0"),
            "split_temperature": (self.split_temperature > 0, "> 0"), "split_limit": (self.split_limit >= 1, ">= 1"),
            "loss_weights": (len(self.loss_weights) == 2 and min(self.loss_weights) >= 0 and sum(self.loss_weights) > 0,
                             "[nll, dist] >= 0, not both 0"),
            "epochs": (self.epochs >= 0, ">= 0"),
            "noise_warmup_epochs": (self.noise_warmup_epochs >= 0 and self.epochs + self.noise_warmup_epochs >= 1,
                                    ">= 0, and > 0 when epochs is 0"),
            "batch_size": (self.batch_size >= 1, ">= 1"),
            "lr": (self.lr > 0 and 0 <= self.min_lr <= self.lr, "> 0 and >= min_lr >= 0"),
            "budget_fraction": (0.0 < self.budget_fraction <= 1.0, "in (0, 1]"),
            "budget_range": (len(self.budget_range) == 2 and 0.0 < lo <= hi <= 1.0, "[lo, hi] with 0 < lo <= hi <= 1"),
            "budget": (self.budget >= 0, ">= 0"), "noise_weight": (self.noise_weight >= 0, ">= 0"),
            "modality_draw_prob": (0.0 <= self.modality_draw_prob <= 1.0, "in [0, 1]")})
        _check_mix("Stage2Config.noise_regimes", self.noise_regimes, REGIMES)

    def resolve_budget(self, n_streams: int, depth: int = DEPTH, first_block: bool = True) -> int:
        """The fixed budget ``L`` (for ``variant="budget"``), validated against the stream set."""
        L = int(self.budget or budget_from_fraction(self.budget_fraction, n_streams, depth))
        check_budgets([L], n_streams, depth, first_block, "Stage2Config.budget")
        return L

    def resolve_range(self, n_streams: int, depth: int = DEPTH, first_block: bool = True) -> tuple[int, int]:
        """``budget_range`` in blocks, clipped to what the first-block rule allows."""
        lo = max(budget_range(n_streams, depth, first_block)[0],
                 budget_from_fraction(self.budget_range[0], n_streams, depth))
        hi = budget_from_fraction(self.budget_range[1], n_streams, depth)
        if hi < lo:
            raise TrainConfigError(f"Stage2Config.budget_range {list(self.budget_range)} gives [{lo}, {hi}] blocks; "
                                   f"need at least {lo} (one block per stream)")
        return lo, hi


#: Stage-1 fields of a warm start: the whole stage-1 network trained on at a low learning rate
#: without warmup, with LayerDrop, noise and the paper's loss from the start.
WARM_STAGE1: dict[str, Any] = {"lr": 1e-4, "min_lr": 1e-5, "warmup_epochs": 0.0, "layerdrop_ramp": [[0, 0.2]],
                               "loss_ramp": [[0, 1.0, 0.05]], "noise_start_epoch": 0}

#: Stage-1 fields of the finetune (:attr:`TaskRecipe.finetune_epochs`): a warm start with half
#: of the noisy batches under budgeted QoI-aware allocations (``Stage1Config.alloc_ramp``).
FINETUNE_STAGE1: dict[str, Any] = {**WARM_STAGE1, "alloc_ramp": [[0, 0.5]]}


@dataclass(frozen=True)
class TaskRecipe:
    """The shipped recipe (``admn-ros train all``) of one task (``Task.recipe``): directories (the models
    go to ``models/<Task.models_subdir>``), the dataset ``generator`` (a function of ``Task.dataset_module``),
    config fields over the defaults, the finetune's epochs (0 = none) and, with ``--init MODELS``, the
    fields of the warm start (``init_stage1``) and per controller (``init_stage2``)."""

    data: str
    runs: str
    generator: str
    dataset: dict[str, int]
    stage1: dict[str, Any] = field(default_factory=dict)
    finetune_epochs: int = 0
    stage2: dict[str, Any] = field(default_factory=dict)
    init_stage1: dict[str, Any] = field(default_factory=lambda: {**WARM_STAGE1, "epochs": 10})
    # every controller starts from its counterpart in MODELS: no noise-head warmup, one epoch re-fits it
    init_stage2: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {v: {"noise_warmup_epochs": 0, "epochs": 1} for v in VARIANTS})
