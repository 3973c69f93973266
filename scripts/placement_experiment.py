"""Does the controller's choice of *which* blocks matter, or only *how many* per stream?

    .venv/bin/python scripts/placement_experiment.py --data data/activity_sim --models models/activity \
        --out /tmp/placement_activity --no-latency --no-plots
    .venv/bin/python scripts/placement_experiment.py --data data/gdtm_sim --models models \
        --out /tmp/placement_tracking --samples 800 --no-latency --no-plots

Runs ``admn-ros evaluate`` (same flags) with two extra rows: ``ADMN spread`` and ``ADMN
universal spread``. They keep the controller's block *count* per stream but put those blocks
on LayerDrop's every-other pattern (:func:`admn_ros.core.streams.mask_from_counts`), the
pattern Naive Allocation and the QoI oracle use. If the spread rows beat the plain ones, the
controller's per-block logits cost accuracy; if they lose, its block choice carries
information. Results: docs/TRAINING.md, "Session 6".
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

import admn_ros.core.evaluate.cli as evaluate_cli
from admn_ros.core.evaluate.methods import Inputs, Method, build_methods
from admn_ros.core.streams import mask_from_counts


def spread_variant(method: Method, depth: int) -> Method:
    """``method`` with its per-stream block counts re-placed on every-other blocks."""

    def allocate(inputs: Inputs, budget: int, batch: int) -> np.ndarray | None:
        mask = method.allocate(inputs, budget, batch)
        if mask is None:
            return None
        return np.stack([mask_from_counts(counts, depth) for counts in np.asarray(mask).sum(-1)])

    return Method(f"{method.name} spread", f"{method.key}_spread", allocate, controller=method.controller,
                  adaptive=True, controllers=method.controllers)


def build_with_spread(streams, depth, per_budget=None, universal=None, ae=None, first_block=True) -> list[Method]:
    """:func:`build_methods` plus a spread variant of ``ADMN`` and ``ADMN universal``."""
    out = build_methods(streams, depth, per_budget, universal, ae, first_block)
    return out + [spread_variant(m, depth) for m in out if m.key in ("admn", "admn_universal")]


def main(argv: Sequence[str] | None = None) -> int:
    evaluate_cli.build_methods = build_with_spread  # the evaluate CLI looks it up at call time
    return evaluate_cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
