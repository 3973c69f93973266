"""Where a stage-1 model's accuracy comes from (tracking or activity), on the test split.

    .venv/bin/python scripts/diagnose_model.py depth [MODEL] [DATA] [--samples N]
    .venv/bin/python scripts/diagnose_model.py splits MODEL DATA --budget 9 [--samples N]

``depth``: k = 1..depth every-other blocks in every stream, clean and with one modality at
sigma_max (flat: allocation cannot gain much).
``splits``: the ceiling of a per-modality controller: the best split of ``--budget`` per binary
pattern (chosen on validation) and the best static split, next to the even split.
"""
from __future__ import annotations

import argparse
import itertools
from typing import Sequence

import numpy as np
import torch

from admn_ros.core.splits import split_candidates, split_losses
from admn_ros.core.streams import MODALITIES, StreamSet, mask_from_counts
from admn_ros.core.train.common import apply_noise, metric_key, open_split, sample_scores, to_torch
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
    p.add_argument("mode", choices=["depth", "splits"])
    p.add_argument("model", nargs="?", default="models/tracking.safetensors")
    p.add_argument("data", nargs="?", default="data/gdtm_sim")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--budget", type=int, default=0, help="splits: total blocks L (default 25%% of all blocks)")
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
        return float(sample_scores(model, ds, idx, st, lambda x, b: mask, sig, noise_seed=0).mean())

    if a.mode == "splits":
        split_ceiling(model, a.data, len(idx), a.budget or round(0.25 * len(st) * depth), 0)
        return
    conds = {"clean": [], **{f"{m} noisy": [m] for m in st.modalities}}
    print(f"{a.model}: {len(idx)} test samples of {a.data}; {unit} with k blocks in every stream")
    print("   k " + "".join(f"{c:>14}" for c in conds))
    for k in range(1, depth + 1):
        mask = mask_from_counts([k] * len(st), depth)
        print(f"  {k:2d} " + "".join(f"{score(mask, noisy):14.1f}" for noisy in conds.values()))


def split_ceiling(model, data: str, samples: int, budget: int, seed: int) -> None:
    """The ``splits`` mode (see the module docstring)."""
    st, depth = model.cfg.streams, model.cfg.vit_depth
    mods = list(st.modalities)
    n_nodes = len(st) // len(mods)
    if budget % n_nodes:
        raise SystemExit(f"--budget {budget} must be a multiple of the {n_nodes} nodes")
    per_mod = split_candidates(len(mods), budget // n_nodes, depth, model.cfg.first_block)
    counts = np.stack([[c[mods.index(st.modality_of(i))] for i in range(len(st))] for c in per_mod])
    unit = "%" if metric_key(model.cfg.task) == "acc" else "cm"
    better = np.argmax if unit == "%" else np.argmin
    pats = [tuple(m for m, on in zip(mods, pat) if on) for pat in itertools.product([0, 1], repeat=len(mods))]
    table: dict[str, np.ndarray] = {}  # split -> [patterns, splits] mean scores
    for split in ("val", "test"):
        ds = open_split(data, split)
        idx = np.arange(min(samples, len(ds)))
        res = np.zeros((len(pats), len(counts)))
        for pi, noisy in enumerate(pats):
            gen = torch.Generator().manual_seed(seed)
            sig = sigmas_for(st, noisy, len(idx))
            tot = np.zeros(len(counts))
            for s in range(0, len(idx), 64):
                x, gt = to_torch(ds.batch(idx[s:s + 64]), mods)
                x = apply_noise(x, sig[s:s + 64], st, gen)
                tot += split_losses(model, x, gt, counts)[1].sum(1).numpy()
            res[pi] = tot / len(idx)
        table[split] = res
    val, test = table["val"], table["test"]
    name = ["/".join(str(int(v)) for v in c) for c in per_mod]
    even = int(np.argmin(np.abs(per_mod - per_mod.mean(1, keepdims=True)).sum(1)))
    static = int(better(val.mean(0)))
    print(f"L={budget}: {len(per_mod)} splits of {'/'.join(mods)} (blocks per stream), {samples} windows per "
          f"split, test {unit} (the split chosen on validation in brackets)")
    print(f"  {'noisy':<18} {'even ' + name[even]:>14} {'static ' + name[static]:>16} {'best for pattern':>22}")
    oracle = []
    for pi, noisy in enumerate(pats):
        b = int(better(val[pi]))
        oracle.append(test[pi, b])
        print(f"  {'+'.join(noisy) or 'none':<18} {test[pi, even]:14.1f} {test[pi, static]:16.1f} "
              f"{test[pi, b]:14.1f} ({name[b]:>6})")
    print(f"  {'mean':<18} {test[:, even].mean():14.1f} {test[:, static].mean():16.1f} {np.mean(oracle):14.1f} "
          "(pattern oracle)")


if __name__ == "__main__":
    main()
