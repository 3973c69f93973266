"""Score of a stage-1 model (tracking or activity) against the blocks every stream runs.

    .venv/bin/python scripts/depth_curve.py [MODEL] [DATA] [--samples N]
    .venv/bin/python scripts/depth_curve.py models/activity/activity.safetensors data/activity_sim

For k = 1..depth blocks per stream (LayerDrop's every-other choice, the blocks Naive
Allocation uses) it prints the mean test score (tracking: error in cm; activity: accuracy
in %) on clean inputs and with all streams of one modality at sigma_max. A flat curve
means fewer blocks cost little, so an input-aware allocation cannot gain much over an even
split: ADMN's margin over Naive Allocation is bounded by how much the backbone needs its
depth (docs/TRAINING.md, "How much depth matters").
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from admn_ros.core.streams import MODALITIES, mask_from_counts
from admn_ros.core.train.common import metric_key, open_split, sample_scores
from admn_ros.core.train.stage2 import load_stage1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    conds = {"clean": None, **{f"{m} noisy": m for m in st.modalities}}
    unit = "accuracy in %" if metric_key(model.cfg.task) == "acc" else "error in cm"
    print(f"{a.model}: {len(idx)} test samples of {a.data}; {unit} with k blocks in every stream")
    print("   k " + "".join(f"{c:>14}" for c in conds))
    for k in range(1, depth + 1):
        mask = mask_from_counts([k] * len(st), depth)
        row = []
        for noisy in conds.values():
            sig = np.zeros((len(idx), len(st)), np.float32)
            for i in range(len(st)):
                if st.modality_of(i) == noisy:
                    sig[:, i] = MODALITIES[noisy].sigma_max
            row.append(float(sample_scores(model, ds, idx, st, lambda x, b: mask, sig, noise_seed=a.seed).mean()))
        print(f"  {k:2d} " + "".join(f"{e:14.1f}" for e in row))


if __name__ == "__main__":
    main()
