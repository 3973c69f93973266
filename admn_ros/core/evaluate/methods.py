"""Allocation methods compared in Table 1 (:func:`build_methods`), each mapping (noisy inputs, budget)
-> a bool mask, or ``None`` for a budget it cannot serve ("n/a" in the table).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

import numpy as np
import torch

from admn_ros.core.controller import AllocationController
from admn_ros.core.streams import (StreamSet, full_allocation, modality_allocation, naive_allocation,
                                  spread_allocation)
from admn_ros.core.train.common import Inputs, sigma_max_of

#: ``(noisy inputs, budget L, batch size, present) -> bool [B, n, depth]`` or ``None`` (not
#: applicable); ``present`` is bool ``[B, n]`` (``None`` = every stream has data). Streams that
#: are not present get no blocks whatever a method returns (the table masks them).
AllocateFn = Callable[[Inputs, int, int, "np.ndarray | None"], "np.ndarray | None"]
#: ``(true sigmas [B, n], budget L) -> bool [B, n, depth]`` (for the oracle, which is told the noise).
OracleFn = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class Method:
    """One column family of the table: display ``name``, CSV ``key``, the ``controller`` (or
    per-budget ``controllers``) whose FLOPs count, ``budgeted`` (False: one value, Upper Bound),
    ``adaptive`` (input-dependent) and, for the oracle, ``from_sigmas`` used instead of ``allocate``."""

    name: str
    key: str
    allocate: AllocateFn
    controller: AllocationController | None = None
    budgeted: bool = True
    adaptive: bool = False
    controllers: dict[int, AllocationController] = field(default_factory=dict)
    from_sigmas: OracleFn | None = None

    def mask(self, inputs: Inputs, budget: int, batch: int, sigmas: np.ndarray | None = None,
             present: np.ndarray | None = None) -> np.ndarray | None:
        if self.from_sigmas is not None and sigmas is not None:
            return self.from_sigmas(sigmas, budget)
        return self.allocate(inputs, budget, batch, present)


def static_method(name: str, key: str, fn: Callable[[int], np.ndarray]) -> Method:
    """An input-agnostic method from ``budget -> [n, depth]`` (``ValueError`` -> not applicable)."""
    cache: dict[int, np.ndarray | None] = {}

    def allocate(inputs: Inputs, budget: int, batch: int, present: np.ndarray | None = None) -> np.ndarray | None:
        if budget not in cache:
            try:
                cache[budget] = fn(budget)
            except ValueError:
                cache[budget] = None
        m = cache[budget]
        return None if m is None else np.broadcast_to(m[None], (batch, *m.shape))

    return Method(name, key, allocate)


def qoi_oracle(streams: StreamSet, depth: int, first_block: bool = True) -> Method:
    """The ``QoI oracle``: told the true sigmas, it spreads the budget evenly over the streams with
    ``sigma < sigma_max / 2`` (all if none is), so ``Naive - oracle`` bounds what a QoI-aware
    allocation can gain with the given backbones."""
    half = 0.5 * sigma_max_of(streams)

    def from_sigmas(sigmas: np.ndarray, budget: int) -> np.ndarray:
        out = []
        for sig in np.asarray(sigmas, dtype=np.float32).reshape(-1, len(streams)):
            clean = np.flatnonzero(sig < half)
            chosen = clean if clean.size else np.arange(len(streams))
            capacity = clean.size * (depth - (1 if first_block else 0))
            if clean.size and budget - (len(streams) if first_block else 0) > capacity:
                # more blocks than the clean streams hold: they run everything, the rest is spread
                noisy = np.flatnonzero(sig >= half).tolist()
                m = spread_allocation(len(streams), budget - capacity, noisy, first_block, depth)
                m[clean] = True
            else:
                m = spread_allocation(len(streams), budget, chosen.tolist(), first_block, depth)
            out.append(m)
        return np.stack(out)

    # not applicable without the true sigmas (see Method.mask)
    return Method("QoI oracle", "qoi_oracle", lambda *args: None, adaptive=True, from_sigmas=from_sigmas)


def controller_method(name: str, key: str, controllers: Mapping[int, AllocationController] | AllocationController,
                      choose: Callable[[AllocationController, Inputs, torch.Tensor | None, int], np.ndarray]
                      ) -> Method:
    """A method from one (universal) controller or ``{budget: controller}``: ``choose(controller in
    eval mode, inputs, present, budget)`` is its mask; not applicable where no controller serves."""
    per_budget = dict(controllers) if isinstance(controllers, Mapping) else {}
    shared = None if isinstance(controllers, Mapping) else controllers

    @torch.no_grad()
    def allocate(inputs: Inputs, budget: int, batch: int, present: np.ndarray | None = None) -> np.ndarray | None:
        c = per_budget.get(budget, shared)
        if c is None:
            return None
        pres = None if present is None else torch.from_numpy(np.asarray(present, bool))
        return choose(c.eval(), dict(inputs), pres, budget)

    return Method(name, key, allocate, controller=shared, adaptive=True, controllers=per_budget)


def per_modality_mask(logits: torch.Tensor | np.ndarray, budget: int, streams: StreamSet,
                      first_block: bool = True) -> np.ndarray:
    """Allocation shared by every node's stream of a modality (the paper's granularity): bool
    ``[B, n, depth]`` summing to ``budget``. Logits ``[B, n, depth]`` are averaged over each modality's
    nodes; after the forced block 0s, the budget goes in (modality, block) units of ``S`` streams, best
    mean logit first, and a remainder to the nodes with the highest per-stream logits of the next unit.
    """
    lg = torch.as_tensor(logits).detach().float()
    b, n, depth = lg.shape
    s, nm = len(streams.nodes), len(streams.modalities)
    per = lg.reshape(b, s, nm, depth)
    mean = per.mean(1)  # [B, M, depth]
    out = np.zeros((b, s, nm, depth), dtype=bool)
    first = 1 if first_block else 0
    if first_block:
        out[..., 0] = True
    rem = int(budget) - (n if first_block else 0)
    if rem < 0 or rem > n * (depth - first):
        raise ValueError(f"budget {budget} out of range for {n} streams x {depth} blocks")
    k, r = divmod(rem, s)
    cand = mean[:, :, first:].reshape(b, -1)  # [B, M*(depth-first)]
    order = torch.argsort(cand, dim=1, descending=True, stable=True).numpy()
    for bi in range(b):
        for rank in range(k):
            mi, j = divmod(int(order[bi, rank]), depth - first)
            out[bi, :, mi, j + first] = True
        if r:
            mi, j = divmod(int(order[bi, k]), depth - first)
            nodes = torch.argsort(per[bi, :, mi, j + first], descending=True, stable=True)[:r].numpy()
            out[bi, nodes, mi, j + first] = True
    return out.reshape(b, n, depth)


def baseline_methods(streams: StreamSet, depth: int, first_block: bool = True) -> list[Method]:
    """Upper Bound, Naive Allocation, the QoI oracle and one single-modality baseline per modality."""
    n = len(streams)
    title = {"rgb": "RGB", "depth": "Depth", "radar": "Radar"}
    out = [replace(static_method("Upper Bound", "upper_bound", lambda L: full_allocation(n, depth)), budgeted=False),
           static_method("Naive Allocation", "naive", lambda L: naive_allocation(n, L, depth)),
           qoi_oracle(streams, depth, first_block)]
    out += [static_method(f"{title.get(m, m)} only", f"{m}_only",
                          lambda L, m=m: modality_allocation(streams, L, [m], first_block, depth))
            for m in streams.modalities]
    return out


def build_methods(streams: StreamSet, depth: int, per_budget: Mapping[int, AllocationController] | None = None,
                  universal: AllocationController | None = None, ae: AllocationController | None = None,
                  first_block: bool = True) -> list[Method]:
    """Every method of the table that the given controllers allow, in display order: the controllers'
    top-L, the baselines, and ``ADMN per-modality``, :func:`per_modality_mask` of a controller's logits."""

    def top_l(c: AllocationController, x: Inputs, pres: torch.Tensor | None, L: int) -> np.ndarray:
        return (c.allocate(x, pres, budget=L)["mask"] > 0.5).numpy()

    def per_modality(c: AllocationController, x: Inputs, pres: torch.Tensor | None, L: int) -> np.ndarray:
        return per_modality_mask(c(x, pres, budget=L)["logits"], L, streams, first_block)

    ctrls = (("ADMN", "admn", per_budget or None), ("ADMN universal", "admn_universal", universal),
             ("ADMN_AE", "admn_ae", ae))
    out = [controller_method(name, key, c, top_l) for name, key, c in ctrls if c is not None]
    base = baseline_methods(streams, depth, first_block)
    out += base[:3]
    if per_budget or universal is not None:
        out.append(controller_method("ADMN per-modality", "admn_per_modality",
                                     per_budget or universal, per_modality))  # type: ignore[arg-type]
    out += base[3:]
    return out

