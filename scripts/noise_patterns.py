"""Error of a stage-1 tracking model by binary noise pattern (which modalities are noisy).

    .venv/bin/python scripts/noise_patterns.py [MODEL] [DATA] [--samples N]

For every combination of noisy modalities (sigma_max on all nodes' streams of that
modality, the others clean) it prints the mean test error with all blocks. It shows which
modalities the network can localise from on their own: a model that learned only the
radar is at the constant-predictor level whenever the radar is noisy. docs/TRAINING.md
("Why the cameras were not used") quotes its output.
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from admn_ros.core.data.simdata import SimDataset
from admn_ros.core.streams import MODALITIES, full_allocation
from admn_ros.core.train.common import apply_noise, to_torch
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
    ds = SimDataset(a.data, "test")
    st = model.cfg.streams
    n = min(a.samples, len(ds))
    clean, gt = to_torch(ds.batch(np.arange(n)), st.modalities)
    full = torch.from_numpy(full_allocation(len(st), model.cfg.vit_depth))
    gen = torch.Generator().manual_seed(a.seed)
    print(f"{a.model}: {n} test samples of {a.data}, all blocks")
    means = []
    with torch.no_grad():
        for pat in itertools.product([0, 1], repeat=len(st.modalities)):
            sig = np.zeros((n, len(st)), np.float32)
            for i in range(len(st)):
                m = st.modality_of(i)
                sig[:, i] = MODALITIES[m].sigma_max * pat[st.modalities.index(m)]
            out = model(apply_noise(clean, sig, st, gen), full)
            e = float(((out["mean"] - gt).norm(dim=-1) * 100).mean())
            means.append(e)
            noisy = [m for m, on in zip(st.modalities, pat) if on] or ["none"]
            print(f"  noisy: {'+'.join(noisy):<18} {e:6.1f} cm")
    print(f"  mean over the {len(means)} equally likely binary patterns: {np.mean(means):.1f} cm")


if __name__ == "__main__":
    main()
