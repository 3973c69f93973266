"""Accuracy of the shipped activity models (models/activity/) on a fresh, seeded simulated set.

Skipped until ``make models-activity`` has written ``models/activity/activity.safetensors``
and its 25% controller. The windows are rendered here with simulator seed 4242 (new
subjects: the shipped recipe uses seed 0) and checked clean (all blocks) and under seeded
binary per-modality noise at the 25% budget.

Thresholds are the measured values of the shipped run minus a margin for the 150-window
estimate (docs/TRAINING.md, "Activity"); chance is 10%.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from admn_ros.core.streams import budget_from_fraction, full_allocation
from admn_ros.core.tasks import get_task

#: Measured on the shipped run (update together with docs/TRAINING.md).
MIN_CLEAN_ACC = 62.0   # measured 75.3 % (session-16 finetuned models, 150 windows; session 4 also 75.3 %)
MIN_BINARY_ADMN25_ACC = 50.0  # measured 63.3 % (session 16; session-8 controllers 61.3 %)
SEED = 4242

MODELS = get_task("activity").models_dir()
STAGE1 = MODELS / "activity.safetensors"


def _controller_path():
    p = MODELS / f"controller_L{budget_from_fraction(0.25, 3)}.safetensors"
    return p if p.is_file() else MODELS / "controller_universal.safetensors"


pytestmark = pytest.mark.skipif(not STAGE1.is_file() or not _controller_path().is_file(),
                                reason=f"no trained activity model in {MODELS}; run `make models-activity`")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    from admn_ros.core.data.activity import generate_activity_dataset

    root = tmp_path_factory.mktemp("act_heldout") / "sim"
    generate_activity_dataset(root, n_subjects=5, val_subjects=1, test_subjects=1, windows_per_activity=3,
                              frames=5, seed=SEED, workers=1, progress=False)
    return root


def test_shipped_activity_model_accuracy(held_out):
    from admn_ros.core.noise import draw_stream_sigmas
    from admn_ros.core.train.common import apply_noise, check_dataset, open_split, to_torch
    from admn_ros.core.train.stage2 import load_controller, load_stage1

    torch.set_num_threads(1)
    model, wid = load_stage1(STAGE1)
    ctrl, _ = load_controller(_controller_path(), model, wid, strict_parent=True)
    ss = model.cfg.streams
    L = budget_from_fraction(0.25, len(ss), model.cfg.vit_depth)
    full = full_allocation(len(ss), model.cfg.vit_depth)
    rng = np.random.default_rng(SEED)
    gen = torch.Generator().manual_seed(SEED)
    hits = {"clean": [], "admn": []}
    n = 0
    with torch.no_grad():
        for split in ("train", "val", "test"):
            ds = open_split(held_out, split)
            check_dataset(ds, model.cfg, f"{held_out}/{split}")
            for s in range(0, len(ds), 32):
                sel = np.arange(s, min(len(ds), s + 32))
                x, y = to_torch(ds.batch(sel), ss.modalities)
                hits["clean"].append((model(x, full)["logits"].argmax(-1) == y).numpy())
                sig = np.stack([draw_stream_sigmas(ss, "binary", rng, mode="modality") for _ in sel])
                xn = apply_noise(x, sig, ss, gen)
                mask = ctrl.allocate(xn, budget=L)["mask"] > 0.5
                assert (mask.sum((1, 2)) == L).all()
                hits["admn"].append((model(xn, mask)["logits"].argmax(-1) == y).numpy())
                n += len(sel)
    acc = {k: 100.0 * float(np.concatenate(v).mean()) for k, v in hits.items()}
    msg = f"[shipped activity model, {n} held-out windows] clean {acc['clean']:.1f} %, binary ADMN@25% {acc['admn']:.1f} %"
    print(msg)
    assert acc["clean"] >= MIN_CLEAN_ACC, msg
    assert acc["admn"] >= MIN_BINARY_ADMN25_ACC, msg
