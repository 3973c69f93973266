"""Noisy streams at their forced first block vs left out of fusion (tracking, per-stream binary noise).

    .venv/bin/python scripts/probe_absent_streams.py [MODEL] [DATA] [--samples N] [--budget L]

Per-stream binary noise (each stream at sigma_max with p = 0.5, seed 0) on the first N test
samples, scored (mean error, cm) under hand-built allocations:

* ``upper``: every block of every stream;
* ``naive``: the paper's Naive Allocation (an even split over every stream);
* ``forced``: noisy streams keep only block 0 (the first-block rule), the clean streams
  share the rest of ``L`` evenly;
* ``absent``: noisy streams are dropped from fusion (``present = False``) and the clean
  streams share all of ``L``: the first-block rule switched off at the controller;
* ``absent_even``: noisy streams absent, clean streams keep Naive's count.

A sample whose streams are all noisy runs Naive's split in every allocation but ``upper``,
all streams present (nothing clean to favour or to fuse). docs/TRAINING.md "Session 17" records the result.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from admn_ros.core.streams import MODALITIES, naive_allocation, spread_allocation
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import apply_noise, open_split, to_torch
from admn_ros.core.train.stage2 import load_stage1


KEYS = ("upper", "naive", "forced", "absent", "absent_even")


def probe_allocations(noisy: np.ndarray, budget: int, depth: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The probe's ``(streams, depth)`` masks for one sample, and which streams an
    ``absent*`` allocation keeps in fusion (all of them when every stream is noisy).

    Clean streams share blocks round-robin (:func:`spread_allocation`); when they cannot
    hold the whole budget they are full and the rest is not spent."""
    n = len(noisy)
    clean = np.flatnonzero(~noisy).tolist()
    naive = naive_allocation(n, budget, depth)
    if not clean:
        return {"upper": np.ones((n, depth), bool), "naive": naive, "forced": naive, "absent": naive,
                "absent_even": naive}, np.ones(n, bool)
    room = len(clean) * depth
    forced = spread_allocation(n, min(budget, n + room - len(clean)), clean, True, depth)
    absent = spread_allocation(n, min(budget, room), clean, False, depth)
    masks = {"upper": np.ones((n, depth), bool), "naive": naive, "forced": forced, "absent": absent,
             "absent_even": naive}
    return masks, ~noisy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="models/tracking.safetensors")
    ap.add_argument("data", nargs="?", default="data/gdtm_sim")
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--budget", type=int, default=27)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = load_stage1(a.model)
    model.eval()
    if model.cfg.task != "tracking":
        raise SystemExit(f"{a.model}: a tracking model is needed, got task {model.cfg.task!r}")
    ds = open_split(a.data, "test")
    st = model.cfg.streams
    n, depth, budget = len(st), model.cfg.vit_depth, a.budget
    if not n <= budget <= n * depth:
        raise SystemExit(f"--budget {budget} must lie in [{n}, {n * depth}] for {n} streams")
    N = min(a.samples, len(ds))
    rng = np.random.default_rng(0)
    noisy = rng.random((N, n)) < 0.5
    sig_max = np.array([MODALITIES[st.modality_of(i)].sigma_max for i in range(n)], np.float32)
    sig = np.where(noisy, sig_max[None], 0).astype(np.float32)
    res: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for s in range(0, N, 64):
            idx = np.arange(s, min(N, s + 64))
            x, gt = to_torch(ds.batch(idx), list(st.modalities))
            x = apply_noise(x, sig[idx], st, gen)
            per = [probe_allocations(noisy[i], budget, depth) for i in idx]
            present = torch.as_tensor(np.stack([p for _, p in per]))
            for k in KEYS:
                mask = torch.as_tensor(np.stack([m[k] for m, _ in per]))
                out = model(x, mask, present=present if k.startswith("absent") else None)
                res[k].append(get_task(model.cfg.task).scores(out, gt).numpy())
    print(f"{a.model}: {N} test samples, per-stream binary noise, L={budget}; mean error cm")
    for k in KEYS:
        print(f"{k:>12}: {np.concatenate(res[k]).mean():6.2f}")


if __name__ == "__main__":
    main()
