"""Does stage 2 descend its own objective? Task loss and score of fixed vs learned allocations.

    .venv/bin/python scripts/controller_objective_check.py --data data/activity_sim \
        --stage1 runs/activity_md/stage1/model.safetensors --budget 9 --counts 1,7,1 \
        --controller runs/activity_md/ctrl_L9/controller.safetensors \
        --controller /tmp/c9_static/controller.safetensors

On a random subset of the training split and on the validation split, with one set of
noise draws (binary, discrete and continuous mixed like stage 2, half per modality) shared
by every allocation, prints the stage-2 task loss (cross-entropy for activity, NLL + 0.05 x
distance for tracking) and the score (accuracy % or error cm) of: the static split
``--counts`` (blocks per stream on every-other blocks), Naive Allocation, and each
``--controller`` (deterministic top-L). If a static split has a lower *training* loss than a
controller trained on that loss, the controller's optimisation (the Gumbel top-L
straight-through estimator) did not descend it. Results: docs/TRAINING.md, "Session 7".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from admn_ros.core.model import ADMNModel
from admn_ros.core.streams import mask_from_counts, naive_allocation
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import NoiseSampler, apply_noise, open_split, to_torch
from admn_ros.core.train.stage2 import load_controller, load_stage1

#: Stage 2's default noise mixture (``Stage2Config.noise_regimes``).
REGIMES: dict[str, float] = {"binary": 1.0, "discrete": 1.0, "continuous": 1.0}

Allocator = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def losses_and_scores(model: ADMNModel, ds, idx: np.ndarray, allocators: Mapping[str, Allocator],
                      seed: int = 0, batch_size: int = 50) -> dict[str, tuple[float, float]]:
    """Mean per-sample task loss and score of every allocator on the windows/samples ``idx``
    of ``ds``, all on identical noisy inputs."""
    streams = model.cfg.streams
    sig = NoiseSampler(streams, REGIMES, modality_prob=0.5).draw(len(idx), np.random.default_rng(seed))
    gen = torch.Generator().manual_seed(seed + 1)
    acc: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in allocators}
    model.eval()
    with torch.no_grad():
        for s in range(0, len(idx), batch_size):
            sel = np.asarray(idx[s:s + batch_size])
            x, gt = to_torch(ds.batch(sel), streams.modalities)
            x = apply_noise(x, sig[s:s + len(sel)], streams, gen)
            for name, alloc in allocators.items():
                out = model(x, alloc(x))
                acc[name][0].extend(get_task(model.cfg.task).loss_per_sample(out, gt).tolist())
                acc[name][1].extend(get_task(model.cfg.task).scores(out, gt).tolist())
    return {k: (float(np.mean(v[0])), float(np.mean(v[1]))) for k, v in acc.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--stage1", required=True, help="stage-1 checkpoint the controllers were trained on")
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--counts", required=True, help="static split: blocks per stream, comma-separated")
    p.add_argument("--controller", action="append", default=[], help="controller checkpoint (repeatable)")
    p.add_argument("--train-samples", type=int, default=800, help="random training windows/samples")
    p.add_argument("--val-samples", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model, _ = load_stage1(a.stage1)
    n, depth = model.cfg.n_streams, model.cfg.vit_depth
    counts = [int(c) for c in a.counts.split(",")]
    if len(counts) != n or sum(counts) != a.budget:
        print(f"error: --counts needs {n} values summing to --budget {a.budget}, got {counts}", file=sys.stderr)
        return 2
    static = torch.from_numpy(mask_from_counts(counts, depth)).float()
    naive = torch.from_numpy(naive_allocation(n, a.budget, depth)).float()
    allocators: dict[str, Allocator] = {f"static {a.counts}": lambda x: static, "naive": lambda x: naive}
    for path in a.controller:
        ctrl = load_controller(path, model)[0].eval()
        allocators[f"controller {Path(path).parent.name}"] = (
            lambda x, c=ctrl: c.allocate(x, budget=a.budget)["mask"])
    for split, size in (("train", a.train_samples), ("val", a.val_samples)):
        ds = open_split(a.data, split)
        k = min(size, len(ds))
        idx = np.sort(np.random.default_rng(a.seed).choice(len(ds), k, replace=False)) if split == "train" \
            else np.arange(k)
        for name, (loss, score) in losses_and_scores(model, ds, idx, allocators, a.seed).items():
            print(f"{split:5s} {name:32s} task loss {loss:.3f}   score {score:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
