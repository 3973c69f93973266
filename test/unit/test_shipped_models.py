"""Accuracy of the shipped models (models/) on a fresh, seeded held-out simulated set.

Skipped until ``make models`` has written
``models/tracking.safetensors`` and the 25% controller. The test set is rendered here
(200 samples, simulator seed 4242, never used for training: the shipped recipe uses
seed 0) and corrupted with seeded binary noise drawn per modality (the paper's setting).

Thresholds (cm) are absolute ceilings plus relative checks against the constant predictor
and the naive allocation on the same inputs; they must be re-derived from the measured
values of the shipped run (see docs/TRAINING.md, "Shipped-model test"), keeping a margin
of about 25% for the 200-sample estimate.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from admn_ros.core.paths import models_dir
from admn_ros.core.streams import budget_from_fraction, full_allocation, naive_allocation

#: Measured on the shipped run with margin (update together with docs/TRAINING.md).
MAX_UPPER_BOUND_CM = 25.0   # measured 19.5 cm (make models, session 2, 2026-11-22; session 1: 42.7)
MAX_ADMN25_CM = 26.0        # measured 19.8 cm (session-8 'splits' controllers; session 2: 20.3, session 1: 42.2)
#: ADMN at 25% must stay within this factor of the Upper Bound on the same inputs.
MAX_ADMN_OVER_UB = 1.15     # the target; measured 1.02 (session 2 controllers: 1.04)
N_SAMPLES = 200
SEED = 4242

MODELS = models_dir()
STAGE1 = MODELS / "tracking.safetensors"


def _controller_path():
    p = MODELS / f"controller_L{budget_from_fraction(0.25, 9)}.safetensors"
    return p if p.is_file() else MODELS / "controller_universal.safetensors"


pytestmark = pytest.mark.skipif(not STAGE1.is_file() or not _controller_path().is_file(),
                                reason=f"no trained shipped model in {MODELS} (tracking.safetensors + 25% "
                                       "controller); run `make models`")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    from admn_ros.core.data import generate_dataset

    root = tmp_path_factory.mktemp("heldout") / "sim"
    generate_dataset(root, n_samples=N_SAMPLES, seed=SEED, frames_per_episode=20, val_frac=0.0, test_frac=0.0,
                     workers=1, progress=False)
    return root


def test_shipped_models_accuracy_binary_noise(held_out):
    from admn_ros.core.noise import draw_stream_sigmas
    from admn_ros.core.train.common import apply_noise, open_split, to_torch
    from admn_ros.core.train.stage2 import load_controller, load_stage1

    torch.set_num_threads(1)
    model, wid = load_stage1(STAGE1)
    ctrl, meta = load_controller(_controller_path(), model, wid, strict_parent=True)
    ds = open_split(held_out, "train")  # the whole held-out set (val/test fractions are 0)
    ss = model.cfg.streams
    L = budget_from_fraction(0.25, len(ss), model.cfg.vit_depth)
    rng = np.random.default_rng(SEED)
    gen = torch.Generator().manual_seed(SEED)
    full = full_allocation(len(ss), model.cfg.vit_depth)
    nv = naive_allocation(len(ss), L, model.cfg.vit_depth)
    err = {"ub": [], "admn": [], "naive": [], "const": []}
    centre = torch.tensor([[float(np.mean(b)) for b in model.cfg.bounds]])
    with torch.no_grad():
        for s in range(0, len(ds), 50):
            sel = np.arange(s, min(len(ds), s + 50))
            x, gt = to_torch(ds.batch(sel), ss.modalities)
            sig = np.stack([draw_stream_sigmas(ss, "binary", rng, mode="modality") for _ in sel])
            x = apply_noise(x, sig, ss, gen)
            mask = ctrl.allocate(x, budget=L)["mask"] > 0.5
            assert (mask.sum((1, 2)) == L).all()
            for k, m in (("ub", full), ("admn", mask), ("naive", nv)):
                err[k].append(((model(x, m)["mean"] - gt).norm(dim=-1) * 100).numpy())
            err["const"].append(((centre - gt).norm(dim=-1) * 100).numpy())
    e = {k: float(np.concatenate(v).mean()) for k, v in err.items()}
    msg = ", ".join(f"{k} {v:.1f} cm" for k, v in e.items())
    print(f"[shipped models, binary noise, {len(ds)} held-out samples] {msg}")
    assert e["ub"] < MAX_UPPER_BOUND_CM, msg
    assert e["admn"] < MAX_ADMN25_CM, msg
    assert e["admn"] < MAX_ADMN_OVER_UB * e["ub"], msg
    assert e["admn"] <= e["naive"], msg  # measured 20.3 vs 21.1 cm
    assert e["ub"] < 0.3 * e["const"], msg  # measured 19.5 vs 99.0 cm
