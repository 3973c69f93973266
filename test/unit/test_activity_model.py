"""Space-time ADMN (activity): windows of F frames, one allocation per window stream,
the runtime's sliding window with a missing frame, and the activity targets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from admn_ros.core.evaluate.report import check_targets
from admn_ros.core.evaluate.table import EvalSettings, Record
from admn_ros.core.flops import allocation_flops
from admn_ros.core.model import ADMNConfig, ADMNModel, random_inputs
from admn_ros.core.runtime import FrameWindow, Runtime
from admn_ros.core.streams import naive_allocation
from admn_ros.core.train.common import apply_noise
from fixtures import write_random_activity_models

F = 4


@pytest.fixture(scope="module")
def model() -> ADMNModel:
    torch.manual_seed(0)
    return ADMNModel(ADMNConfig(nodes=("node1",), frames=F, task="activity", n_classes=10)).eval()


def test_window_allocation_is_shared_by_frames_and_skipping_equals_blending(model: ADMNModel) -> None:
    cfg = model.cfg
    assert (cfg.n_streams, cfg.n_tokens, cfg.n_streams * cfg.vit_depth) == (3, 3 * F, 36)
    x = random_inputs(cfg, 2, torch.Generator().manual_seed(1))
    mask = torch.from_numpy(naive_allocation(3, 9, 12))
    with torch.no_grad():
        a = model(x, mask)
        b = model(x, mask, blend=True)
    assert a["logits"].shape == (2, 10) and a["emb"].shape == (2, 3 * F, cfg.vit_dim)
    assert torch.allclose(a["logits"], b["logits"], atol=1e-5)
    # token f*n + i of the embeddings is frame f of stream i, run with stream i's blocks
    with torch.no_grad():
        e = model.embed("depth", x["depth"][:, 2], mask[1][None].expand(2, -1))
    assert torch.allclose(a["emb"][:, 2 * 3 + 1], e, atol=1e-5)


def test_missing_frame_tokens_cannot_change_the_output(model: ADMNModel) -> None:
    cfg = model.cfg
    x = random_inputs(cfg, 1, torch.Generator().manual_seed(2))
    present = torch.ones(1, cfg.n_tokens, dtype=torch.bool)
    present[0, 1 * 3 + 0] = False  # frame 1 of node1/rgb missing
    y = {m: v.clone() for m, v in x.items()}
    y["rgb"][0, 1] = torch.rand_like(y["rgb"][0, 1])
    with torch.no_grad():
        a = model(x, None, present)["logits"]
        b = model(y, None, present)["logits"]
        c = model(y, None, None)["logits"]
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_noise_is_applied_to_every_frame_of_a_stream(model: ADMNModel) -> None:
    cfg = model.cfg
    x = {m: torch.full_like(v, 0.5) for m, v in random_inputs(cfg, 2).items()}
    sig = np.array([[0.0, 0.3, 0.0], [0.0, 0.0, 0.0]], np.float32)  # sample 0: depth noisy
    out = apply_noise(x, sig, cfg.streams, torch.Generator().manual_seed(0))
    assert all(float(out["depth"][0, f].std()) > 0.2 for f in range(F))
    assert torch.equal(out["rgb"], x["rgb"]) and torch.equal(out["depth"][1], x["depth"][1])


def test_flops_scale_with_the_window(model: ADMNModel) -> None:
    one = ADMNConfig(nodes=("node1",), frames=1, task="activity", n_classes=10)
    m = naive_allocation(3, 9, 12)
    assert allocation_flops(model.cfg, m) > 3 * allocation_flops(one, m)


def test_frame_window_and_runtime_cache(tmp_path: Path) -> None:
    write_random_activity_models(tmp_path, frames=F, classes=[f"a{k}" for k in range(10)])
    rt = Runtime.load(tmp_path, backend="torch")
    assert rt.frames == F and rt.labels[3] == "a3"
    win = FrameWindow(F, rt.stream_ids)
    with pytest.raises(ValueError, match="unknown stream"):
        win.push(0, {"node2/rgb": np.zeros((3, 64, 64), np.float32)})
    rng = np.random.default_rng(0)

    def frame() -> dict[str, np.ndarray]:
        return {s: rng.random((rt.cfg.channels(s.split("/")[1]), 64, 64), dtype=np.float32) for s in rt.stream_ids}

    frames = [frame() for _ in range(F + 1)]
    del frames[F]["node1/depth"]  # the newest frame lacks depth (a dropped message)
    for k in range(F):
        win.push(k, frames[k])
    r1 = rt.infer(win, 9)
    assert r1.computed == F * 3 and r1.allocation.mask.sum() == 9 and r1.present.all()
    win.push(F, frames[F])
    with pytest.raises(ValueError, match="older"):
        win.push(1, frames[0])
    r2 = rt.infer(win, 9)
    assert not r2.present[-1, 1] and r2.present[:-1].all()
    if np.array_equal(r1.allocation.mask, r2.allocation.mask):
        assert r2.computed == 2  # only the new frame's two streams; the rest is cached
    # the result equals the model on the same window, allocation and presence
    x = {m: torch.zeros(1, F, rt.cfg.channels(m), 64, 64) for m in rt.cfg.modalities}
    for f, fr in enumerate(frames[1:]):
        for sid, a in fr.items():
            x[sid.split("/")[1]][0, f] = torch.from_numpy(a)
    with torch.no_grad():
        ref = rt.model(x, torch.from_numpy(r2.allocation.mask)[None], torch.from_numpy(r2.present.reshape(1, -1)))
    assert np.allclose(torch.softmax(ref["logits"][0], -1).numpy(), r2.probs, atol=1e-5)
    assert r2.class_name == rt.labels[int(ref["logits"][0].argmax())]


def test_activity_targets_use_accuracy_points() -> None:
    s = EvalSettings(regimes=("binary", "continuous"), draws=("modality",), fractions=(0.25, 0.5))
    rows = [("binary", "ADMN", 9, 80.0), ("binary", "Naive Allocation", 9, 60.0), ("binary", "Upper Bound", 36, 84.0),
            ("continuous", "ADMN", 9, 70.0), ("continuous", "Naive Allocation", 9, 65.0),
            ("continuous", "ADMN", 18, 75.0), ("continuous", "Naive Allocation", 18, 76.0)]
    recs = [Record(r, "modality", m, m, L, L / 36, v, v, 10) for r, m, L, v in rows]
    t = {x.name: x for x in check_targets(recs, [], [9, 18], s, task="activity")}
    assert t["binary per modality, 25% (L=9): Upper Bound - ADMN <= 5 points"].passed is True
    assert t["binary per modality, 25% (L=9): ADMN - Naive >= 15 points"].passed is True
    assert t["continuous per modality: ADMN > Naive at every budget"].passed is False
