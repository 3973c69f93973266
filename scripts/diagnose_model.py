"""Where a stage-1 model's accuracy comes from (tracking or activity), on the test split.

    .venv/bin/python scripts/diagnose_model.py patterns [MODEL] [DATA] [--samples N]
    .venv/bin/python scripts/diagnose_model.py depth [MODEL] [DATA] [--samples N]
    .venv/bin/python scripts/diagnose_model.py depth models/activity/activity.safetensors data/activity_sim

Scores are tracking errors in cm or activity accuracies in %.

* ``patterns``: every binary noise pattern (the modalities whose streams are all at
  sigma_max, the others clean), all blocks. Shows which modalities the network can work
  from on their own: a model that learned only the radar is at the constant-predictor level
  whenever the radar is noisy (docs/TRAINING.md, "Why the cameras were not used").
* ``depth``: k = 1..depth blocks in every stream (LayerDrop's every-other choice, the
  blocks Naive Allocation uses), clean and with one modality at sigma_max. A flat curve
  means fewer blocks cost little, so an input-aware allocation cannot gain much over an even
  split (docs/TRAINING.md, "How much depth matters").
"""
from __future__ import annotations

import argparse
import itertools
from typing import Sequence

import numpy as np
import torch

from admn_ros.core.streams import MODALITIES, StreamSet, full_allocation, mask_from_counts
from admn_ros.core.train.common import metric_key, open_split, sample_scores
from admn_ros.core.train.stage2 import load_stage1


def sigmas_for(streams: StreamSet, noisy: Sequence[str], n: int) -> np.ndarray:
    """``[n, streams]`` sigmas: sigma_max on every stream of the ``noisy`` modalities, else 0."""
    sig = np.zeros((n, len(streams)), np.float32)
    for i in range(len(streams)):
        m = streams.modality_of(i)
        if m in noisy:
            sig[:, i] = MODALITIES[m].sigma_max
    return sig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["patterns", "depth"])
    p.add_argument("model", nargs="?", default="models/tracking.safetensors")
    p.add_argument("data", nargs="?", default="data/gdtm_sim")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(2)
    model, _ = load_stage1(a.model)
    ds = open_split(a.data, "test")
    st = model.cfg.streams
    depth = model.cfg.vit_depth
    idx = np.arange(min(a.samples, len(ds)))
    unit = "%" if metric_key(model.cfg.task) == "acc" else "cm"

    def score(mask: np.ndarray, noisy: Sequence[str]) -> float:
        sig = sigmas_for(st, noisy, len(idx))
        return float(sample_scores(model, ds, idx, st, lambda x, b: mask, sig, noise_seed=a.seed).mean())

    if a.mode == "patterns":
        print(f"{a.model}: {len(idx)} test samples of {a.data}, all blocks ({unit})")
        full = full_allocation(len(st), depth)
        means = []
        for pat in itertools.product([0, 1], repeat=len(st.modalities)):
            noisy = [m for m, on in zip(st.modalities, pat) if on]
            means.append(score(full, noisy))
            print(f"  noisy: {'+'.join(noisy) or 'none':<18} {means[-1]:6.1f} {unit}")
        print(f"  mean over the {len(means)} equally likely binary patterns: {np.mean(means):.1f} {unit}")
        return
    conds = {"clean": [], **{f"{m} noisy": [m] for m in st.modalities}}
    print(f"{a.model}: {len(idx)} test samples of {a.data}; {unit} with k blocks in every stream")
    print("   k " + "".join(f"{c:>14}" for c in conds))
    for k in range(1, depth + 1):
        mask = mask_from_counts([k] * len(st), depth)
        print(f"  {k:2d} " + "".join(f"{score(mask, noisy):14.1f}" for noisy in conds.values()))


if __name__ == "__main__":
    main()
