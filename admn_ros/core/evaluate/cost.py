"""Compute cost per allocation: analytic GFLOPs (:mod:`admn_ros.core.flops`, controller counted) and batch-1
latency through the :class:`~admn_ros.core.engine.InferenceEngine` (real skipping)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from admn_ros.core.controller import AllocationController
from admn_ros.core.engine import InferenceEngine
from admn_ros.core.evaluate.methods import Method
from admn_ros.core.flops import allocation_flops, controller_flops
from admn_ros.core.model import ADMNModel, random_inputs
from admn_ros.core.streams import full_allocation, naive_allocation


@dataclass
class FlopsRow:
    """FLOPs of one method at one budget (per sample)."""

    method: str
    budget: int
    gflops_model: float
    gflops_controller: float

    @property
    def gflops_total(self) -> float:
        return self.gflops_model + self.gflops_controller


def flops_table(model: ADMNModel, methods: Sequence[Method], budgets: Sequence[int]) -> list[FlopsRow]:
    """Analytic GFLOPs per (method, budget); controller FLOPs counted for adaptive methods."""
    cfg = model.cfg
    n, depth = cfg.n_streams, cfg.vit_depth
    rows = []
    for meth in methods:
        if meth.from_sigmas is not None:  # the oracle is a yardstick, not something that runs
            continue
        for L in (budgets if meth.budgeted else [n * depth]):
            mask = naive_allocation(n, L, depth) if meth.budgeted else full_allocation(n, depth)
            c = meth.controllers.get(L, meth.controller)
            rows.append(FlopsRow(meth.name, L, allocation_flops(cfg, mask) / 1e9,
                                 controller_flops(c.cfg) / 1e9 if (c is not None and meth.adaptive) else 0.0))
    return rows


@dataclass
class LatencyResult:
    """Batch-1 latencies (ms, median): every block, ADMN (controller + blocks) and the controller alone
    per budget, and ``curve``: ``[(active blocks, ms)]`` of static allocations."""

    full_ms: float
    per_budget_ms: dict[int, float] = field(default_factory=dict)
    controller_ms: dict[int, float] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)
    threads: int = 1


def median_ms(fn: Any, reps: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def measure_latency(model: ADMNModel, controllers: dict[int, AllocationController], budgets: Sequence[int],
                    reps: int = 20, threads: int = 1) -> LatencyResult:
    """The :class:`LatencyResult` via the engine (medians of ``reps`` after 3 warm-up runs; 8 curve points)."""
    cfg = model.cfg
    n, depth = cfg.n_streams, cfg.vit_depth
    x = random_inputs(cfg, 1, torch.Generator().manual_seed(0))
    base = InferenceEngine(model, None, backend="torch", threads=threads)
    full = full_allocation(n, depth)
    res = LatencyResult(median_ms(lambda: base.infer(x, mask=full), reps), threads=threads)
    for L in [b for b in budgets if b in controllers]:
        eng = InferenceEngine(model, controllers[L], backend="torch", threads=threads)
        res.per_budget_ms[L] = median_ms(lambda: eng.infer(x, budget=L), reps)
        res.controller_ms[L] = median_ms(lambda: eng.allocate(x, budget=L), reps)
    for blocks in np.unique(np.linspace(n, n * depth, 8).round().astype(int)):
        m = naive_allocation(n, int(blocks), depth)
        res.curve.append((int(blocks), median_ms(lambda: base.infer(x, mask=m), reps)))
    return res
