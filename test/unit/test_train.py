"""Training stages on a tiny rendered dataset: loss goes down, resume is exact, budgets are honoured,
bad data/config fail early with named errors."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, read_metadata
from admn_ros.core.controller import AllocationController, ControllerConfig
from admn_ros.core.noise import draw_stream_sigmas
from admn_ros.core.streams import MODALITIES, StreamSet, budget_from_fraction
from admn_ros.core.tasks import get_task
from admn_ros.core.train import cli
from admn_ros.core.model import ADMNModel
from admn_ros.core.train.common import (NoiseSampler, apply_noise, epoch_batches, lr_at, noise_aware_masks,
                                        open_split, to_torch)
from admn_ros.core.train.config import Stage1Config, Stage2Config, TrainConfigError
from admn_ros.core.train.stage1 import train_stage1
from admn_ros.core.train.stage2 import fold_universal, load_controller, load_stage1, train_stage2
from fixtures.train import TINY_CONTROLLER, TINY_MODEL, make_tiny_dataset

QUIET = dict(progress=False, threads=1)


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "sim", n_samples=80, seed=0)


def _s1(data, out, **kw) -> Stage1Config:
    base = dict(data=str(data), out=str(out), epochs=2, batch_size=16, lr=3e-3, noise_start_epoch=1,
                layerdrop_ramp=[[0, 0.0], [1, 0.2]], model=dict(TINY_MODEL), **QUIET)
    base.update(kw)
    return Stage1Config(**base)


@pytest.fixture(scope="module")
def stage1_model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("s1")
    res = train_stage1(_s1(data, out, epochs=2), log=_quiet)
    return res.model_path


# ----------------------------------------------------------------------------- helpers
def test_noise_sampler_regimes_and_modes():
    ss = StreamSet()
    rng = np.random.default_rng(0)
    sig = NoiseSampler(ss, {"binary": 1.0}, modality_prob=1.0).draw(50, rng)
    assert sig.shape == (50, 9)
    # per-modality draws: every node shares its modality's sigma
    per = sig.reshape(50, 3, 3)
    assert (per == per[:, :1]).all()
    assert set(np.unique(sig[:, 0])) <= {0.0, 3.0}
    clean = NoiseSampler(ss, {"continuous": 1.0}, clean_prob=1.0).draw(4, rng)
    assert (clean == 0).all()


def test_apply_noise_is_seeded_and_clipped():
    ss = StreamSet()
    x = {m: torch.full((2, 3, c, 64, 64), 0.5) for m, c in (("rgb", 3), ("depth", 1), ("radar", 1))}
    sig = draw_stream_sigmas(ss, "continuous", np.random.default_rng(0))[None].repeat(2, 0)
    a = apply_noise(x, sig, ss, torch.Generator().manual_seed(3))
    b = apply_noise(x, sig, ss, torch.Generator().manual_seed(3))
    for m in a:
        assert torch.equal(a[m], b[m]) and a[m].min() >= 0 and a[m].max() <= 1
    zero = apply_noise(x, np.zeros((2, 9), np.float32), ss)
    assert all(torch.equal(zero[m], x[m]) for m in x)


def test_lr_schedule_and_batches():
    assert lr_at(0, 100, 1e-3, 0.0, warmup=10) == pytest.approx(1e-4)
    assert lr_at(10, 100, 1e-3, 0.0, warmup=10) == pytest.approx(1e-3)
    assert lr_at(100, 100, 1e-3, 1e-5, warmup=10) == pytest.approx(1e-5)
    assert lr_at(55, 100, 1e-3, 0.0, 10, "linear") == pytest.approx(5e-4)
    b = epoch_batches(10, 4, np.random.default_rng(0))
    assert len(b) == 2 and all(len(x) == 4 for x in b)
    assert len(epoch_batches(3, 4, np.random.default_rng(0))) == 1  # fewer samples than a batch


def test_stage1_config_layerdrop_ramp():
    c = Stage1Config()
    assert [c.layerdrop_at(e) for e in range(6)] == [0.0, 0.0, 0.1, 0.1, 0.2, 0.2]
    assert [c.loss_weights_at(e) for e in (0, 1, 2, 9)] == [(0.0, 1.0), (0.0, 1.0), (1.0, 0.05), (1.0, 0.05)]


def test_noise_aware_masks_honour_the_budgets_and_favour_clean_streams():
    streams = StreamSet(["node1", "node2", "node3"], ["rgb", "depth", "radar"])
    smax = np.array([MODALITIES[streams.modality_of(i)].sigma_max for i in range(9)], np.float32)
    noisy = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1], bool)
    sig = np.tile(np.where(noisy, smax, 0.0), (200, 1))
    rng = np.random.default_rng(0)
    m = noise_aware_masks(sig, streams, [27, 36], 12, True, rng)
    assert m.shape == (200, 9, 12) and m.dtype == bool
    assert set(m.sum((1, 2)).tolist()) == {27, 36}  # both budgets drawn, each exactly
    assert m[:, :, 0].all()  # first-block rule
    per_stream = m.sum(2).mean(0)
    assert per_stream[~noisy].min() > 2 * per_stream[noisy].max(), per_stream
    assert len({tuple(np.flatnonzero(r)) for r in m[:, 1]}) > 20  # which blocks run varies
    # temperature 0: the noisy streams keep only their first block while the clean ones have room
    m0 = noise_aware_masks(sig[:3], streams, [27], 12, True, rng, temperature=0.0)
    assert (m0[:, noisy].sum(2) == 1).all() and (m0.sum((1, 2)) == 27).all()
    # without the first-block rule nothing is forced; a budget below the stream count is refused
    assert not noise_aware_masks(sig[:3], streams, [5], 12, False, rng, 0.0)[:, noisy].any()
    with pytest.raises(ValueError):
        noise_aware_masks(sig[:1], streams, [5], 12, True, rng)


def test_stage1_config_alloc_ramp():
    c = Stage1Config(alloc_ramp=[[0, 0.0], [3, 0.5]])
    assert [c.alloc_at(e) for e in range(5)] == [0.0, 0.0, 0.0, 0.5, 0.5]
    assert Stage1Config().alloc_at(10) == 0.0  # off by default


# ----------------------------------------------------------------------------- stage 1
def test_stage1_alloc_batches_run_budgeted_qoi_aware_masks(data, tmp_path, monkeypatch):
    """With ``alloc_ramp`` the noisy-phase batches run noise-aware masks of the configured
    budgets (and no LayerDrop on top); before the ramp starts they run LayerDrop (mask None)."""
    seen: list = []
    real_forward = ADMNModel.forward

    def spy(self, inputs, mask=None, present=None, blend=False):
        layerdrop = [b.layerdrop for b in self.backbones.values()]
        if self.training:  # validation runs in eval mode
            seen.append((None if mask is None else np.asarray(mask), layerdrop))
        return real_forward(self, inputs, mask, present, blend)

    monkeypatch.setattr(ADMNModel, "forward", spy)
    cfg = _s1(data, tmp_path / "alloc", epochs=2, noise_start_epoch=0, alloc_ramp=[[0, 0.0], [1, 1.0]],
              alloc_fractions=[0.25, 0.5], layerdrop_ramp=[[0, 0.2]])
    res = train_stage1(cfg, log=_quiet)
    assert [h["alloc"] for h in res.history] == [0.0, 1.0]
    first, second = seen[:len(seen) // 2], seen[len(seen) // 2:]  # one half per epoch
    assert all(m is None and ld[0] == pytest.approx(0.2) for m, ld in first)
    assert second and all(m is not None and ld[0] == 0.0 for m, ld in second)
    n_streams, depth = second[0][0].shape[1:]
    budgets = {budget_from_fraction(f, n_streams, depth) for f in (0.25, 0.5)}
    assert set(np.concatenate([m.sum((1, 2)) for m, _ in second]).tolist()) <= budgets
    assert np.isfinite([h["loss"] for h in res.history]).all()
    # a budget below one block per stream cannot be allocated: refused before any training
    with pytest.raises(TrainConfigError, match="alloc_fractions"):
        train_stage1(_s1(data, tmp_path / "bad", alloc_ramp=[[0, 0.5]], alloc_fractions=[0.01]), log=_quiet)
    assert not (tmp_path / "bad" / "last.safetensors").exists()


def test_stage1_tiny_run_lowers_loss(data, tmp_path):
    """Six epochs on the tiny seeded set lower the training loss.
    Break tried: ``opt.step()`` removed from the stage-1 loop (the loss stays where it starts)."""
    cfg = _s1(data, tmp_path / "run", epochs=6, noise_start_epoch=99, layerdrop_ramp=[[0, 0.0]], full_drop=0.0,
              missing_prob=0.0, lr=5e-3, warmup_epochs=0.0, loss_ramp=[[0, 1.0, 0.05]])
    res = train_stage1(cfg, log=_quiet)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < losses[0] - 0.05, losses
    assert res.model_path.is_file() and (tmp_path / "run" / "last.safetensors").is_file()
    assert (tmp_path / "run" / "summary.json").is_file()
    meta = read_metadata(res.model_path)
    assert meta["kind"] == "stage1" and meta["epoch"] == 6 and meta["model_config"]["vit_dim"] == 16
    assert "optimizer" not in meta  # final model: weights only
    # the Gaussian head's bounds come from the dataset's track
    assert meta["model_config"]["bounds"][0][0] < 0 < meta["model_config"]["bounds"][0][1]


def test_stage1_resume_continues_from_saved_epoch_exactly(data, tmp_path):
    cfg = _s1(data, tmp_path / "ref", epochs=3)
    ref = train_stage1(cfg, log=_quiet)

    class Stop(Exception):
        pass

    def stop_after_two(msg: str) -> None:
        if msg.startswith("[stage1] epoch 2/3"):
            raise Stop

    cfg2 = _s1(data, tmp_path / "cut", epochs=3)
    with pytest.raises(Stop):
        train_stage1(cfg2, log=stop_after_two)
    assert load_checkpoint(tmp_path / "cut" / "last.safetensors").epoch == 2
    logs: list[str] = []
    res = train_stage1(cfg2, resume=True, log=logs.append)
    assert any("resumed" in m and "epoch 2/3" in m for m in logs)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    a, b = load_checkpoint(ref.model_path).tensors, load_checkpoint(res.model_path).tensors
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_stage1_refuses_to_overwrite_and_checks_resume_config(data, tmp_path):
    train_stage1(_s1(data, tmp_path / "r", epochs=1), log=_quiet)
    with pytest.raises(TrainConfigError, match="--resume"):
        train_stage1(_s1(data, tmp_path / "r", epochs=2), log=_quiet)
    other = dict(TINY_MODEL, vit_dim=8)
    with pytest.raises(CheckpointError, match=r"last.safetensors: model_config.vit_dim = 16 != expected 8"):
        train_stage1(_s1(data, tmp_path / "r", epochs=2, model=other), resume=True, log=_quiet)
    with pytest.raises(CheckpointError, match=r"train_config.seed = 0 != expected 5"):
        train_stage1(_s1(data, tmp_path / "r", epochs=2, seed=5), resume=True, log=_quiet)
    # the same dataset named by a relative path resumes (no spurious train_config.data mismatch)
    res = train_stage1(_s1(os.path.relpath(data), tmp_path / "r", epochs=2), resume=True, log=_quiet)
    assert res.epochs == 2


def test_stage1_bad_data_fails_early(data, tmp_path):
    with pytest.raises(TrainConfigError, match=r"nowhere: dataset directory not found"):
        train_stage1(_s1(tmp_path / "nowhere", tmp_path / "o"), log=_quiet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainConfigError, match="no meta.json"):
        train_stage1(_s1(tmp_path / "empty", tmp_path / "o"), log=_quiet)
    with pytest.raises(TrainConfigError, match="stream set mismatch"):
        train_stage1(_s1(data, tmp_path / "o", model=dict(TINY_MODEL, nodes=["node1", "node2"])), log=_quiet)
    with pytest.raises(TrainConfigError, match="outside the model's mean bounds"):
        train_stage1(_s1(data, tmp_path / "o", model=dict(TINY_MODEL, bounds=[[5, 6], [5, 6]])), log=_quiet)
    with pytest.raises(TrainConfigError, match="readout = 'mean' is no longer supported"):
        train_stage1(_s1(data, tmp_path / "o", model=dict(TINY_MODEL, readout="mean")), log=_quiet)


@pytest.mark.parametrize("kw,match", [
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"layerdrop_ramp": [[0, 1.5]]}, "layerdrop_ramp"),
    ({"noise_regimes": {"gaussian": 1.0}}, "unknown key 'gaussian'"),
    ({"missing_prob": 0.7}, "missing_prob"),
    ({"loss_ramp": [[0, 0.0, 0.0]]}, "loss_ramp"),
    ({"loss_ramp": [[0, 1.0]]}, "loss_ramp"),
    ({"alloc_ramp": [[0, 1.5]]}, "alloc_ramp"),
    ({"alloc_ramp": [[0]]}, "alloc_ramp"),
    ({"alloc_fractions": [0.0]}, "alloc_fractions"),
    ({"alloc_temperature": -1.0}, "alloc_temperature"),
])
def test_stage1_config_errors(kw, match):
    with pytest.raises(TrainConfigError, match=match):
        Stage1Config(**kw)
    with pytest.raises(TrainConfigError, match="unknown keys"):
        Stage1Config.from_dict({"epochz": 3})


# ----------------------------------------------------------------------------- stage 2
def _s2(data, stage1, out, **kw) -> Stage2Config:
    base = dict(data=str(data), stage1=str(stage1), out=str(out), epochs=1, noise_warmup_epochs=1, batch_size=16,
                controller=dict(TINY_CONTROLLER), **QUIET)
    base.update(kw)
    return Stage2Config(**base)


def _batch(data, n=6):
    ds = open_split(data, "val")
    ins, _ = to_torch(ds.batch(np.arange(n)), ("rgb", "depth", "radar"))
    return ins


def test_stage2_takes_blocks_from_a_deliberately_noisy_stream(data, stage1_model, tmp_path):
    """A few hundred stage-2 steps on the tiny set teach the controller to take blocks from a
    stream whose input is pure noise: each radar stream, at sigma_max with every other stream
    clean, runs at least two blocks fewer than on clean inputs. An untrained controller does not
    respond to the noise at all.
    Break tried: the controller fed the clean inputs in the stage-2 loop (``ctrl(inputs, ...)``
    instead of ``ctrl(noisy, ...)``): it never sees noise and keeps the radar's blocks."""
    res = train_stage2(_s2(data, stage1_model, tmp_path / "c", variant="budget", budget=27, epochs=29,
                           batch_size=8, k_samples=2, val_samples=8, train_samples=0), log=_quiet)
    model, wid = load_stage1(stage1_model)
    ctrl, _ = load_controller(res.model_path, model, wid)
    steps = 30 * (len(open_split(data, "train")) // 8)
    assert steps >= 200, steps
    torch.manual_seed(0)
    untrained = AllocationController(ctrl.cfg).eval()
    ds = open_split(data, "train")
    x, _ = to_torch(ds.batch(np.arange(32)), model.cfg.modalities)
    streams = model.cfg.streams
    radar = [i for i in range(len(streams)) if streams.modality_of(i) == "radar"]
    for i in radar:
        sig = np.zeros((32, len(streams)), np.float32)
        sig[:, i] = MODALITIES["radar"].sigma_max
        noisy = apply_noise(x, sig, streams, torch.Generator().manual_seed(i))
        with torch.no_grad():
            before = [c.allocate(x)["mask"][:, i].sum(-1).mean().item() for c in (ctrl, untrained)]
            after = [c.allocate(noisy)["mask"][:, i].sum(-1).mean().item() for c in (ctrl, untrained)]
        assert after[0] <= before[0] - 2.0, (streams.ids[i], before, after)
        assert abs(after[1] - before[1]) < 0.5, (streams.ids[i], before, after)


def test_stage2_budget_controller_honours_budget(data, stage1_model, tmp_path):
    res = train_stage2(_s2(data, stage1_model, tmp_path / "c27", variant="budget", budget=27), log=_quiet)
    model, wid = load_stage1(stage1_model)
    ctrl, meta = load_controller(res.model_path, model, wid)
    assert meta["variant"] == "budget" and meta["budget"] == 27 and meta["stage1_weights_id"] == wid
    assert [h["phase"] for h in res.history] == ["noise-head", "allocation"]
    mask = ctrl.allocate(_batch(data))["mask"]
    assert mask.shape == (6, 9, 12)
    assert (mask.sum((1, 2)) == 27).all() and (mask[:, :, 0] == 1).all()
    # the stage-1 network was not modified
    assert load_checkpoint(stage1_model).meta["weights_id"] == wid


def test_stage2_universal_fold_and_ae(data, stage1_model, tmp_path):
    res = train_stage2(_s2(data, stage1_model, tmp_path / "u", variant="universal", budget_range=[0.25, 0.7]),
                       log=_quiet)
    uni, meta = load_controller(res.model_path)
    assert meta["budget_range"] == [27, 76]
    x = _batch(data)
    for L in (27, 54, 72):
        m = uni.allocate(x, budget=L)["mask"]
        assert (m.sum((1, 2)) == L).all()
    per_sample = uni.allocate(x, budget=torch.tensor([27, 36, 54, 72, 30, 60]))["mask"]
    assert per_sample.sum((1, 2)).tolist() == [27, 36, 54, 72, 30, 60]
    folded = fold_universal(uni, 36)
    assert not folded.cfg.universal and folded.cfg.budget == 36
    assert torch.allclose(folded(x)["logits"], uni(x, budget=36)["logits"], atol=1e-5)
    # a per-budget controller initialised from the universal one
    r36 = train_stage2(_s2(data, stage1_model, tmp_path / "c36", variant="budget", budget=36, init=str(res.model_path),
                           noise_warmup_epochs=0), log=_quiet)
    assert (load_controller(r36.model_path)[0].allocate(x)["mask"].sum((1, 2)) == 36).all()
    # ADMN_AE: autoencoder warmup, then only the allocation head; decoder not exported
    ae = train_stage2(_s2(data, stage1_model, tmp_path / "ae", variant="ae"), log=_quiet)
    assert [h["phase"] for h in ae.history] == ["autoencoder", "allocation"]
    c, m = load_controller(ae.model_path)
    assert m["variant"] == "ae" and c.decoders is None
    assert not any(k.startswith("decoders.") for k in load_checkpoint(ae.model_path).tensors)


def test_stage2_resume(data, stage1_model, tmp_path):
    cfg = _s2(data, stage1_model, tmp_path / "c", variant="budget", budget=27, epochs=1, noise_warmup_epochs=1)
    train_stage2(cfg, log=_quiet)
    logs: list[str] = []
    cfg2 = _s2(data, stage1_model, tmp_path / "c", variant="budget", budget=27, epochs=2, noise_warmup_epochs=1)
    res = train_stage2(cfg2, resume=True, log=logs.append)
    assert any("resumed" in m for m in logs) and [h["epoch"] for h in res.history] == [1, 2, 3]
    with pytest.raises(CheckpointError, match="controller_config.budget = 27 != expected 36"):
        train_stage2(_s2(data, stage1_model, tmp_path / "c", variant="budget", budget=36), resume=True, log=_quiet)


@pytest.mark.parametrize("kw,match", [
    ({"budget": 5}, r"budget 5 out of range \[9, 108\]"),
    ({"budget": 200}, r"budget 200 out of range"),
    ({"budget_fraction": 0.01}, r"out of range \[9, 108\]"),
])
def test_stage2_budget_out_of_range(data, stage1_model, tmp_path, kw, match):
    with pytest.raises(TrainConfigError, match=match):
        train_stage2(_s2(data, stage1_model, tmp_path / "x", variant="budget", **kw), log=_quiet)


def test_stage2_config_and_input_errors(data, stage1_model, tmp_path):
    with pytest.raises(TrainConfigError, match="variant"):
        Stage2Config(variant="fancy")
    with pytest.raises(TrainConfigError, match="budget_range"):
        Stage2Config(budget_range=(0.8, 0.2))
    with pytest.raises(TrainConfigError, match="loss_weights"):
        Stage2Config(loss_weights=(0.0, 0.0))
    assert Stage2Config(loss_weights=[0, 1]).to_dict()["loss_weights"] == [0.0, 1.0]
    with pytest.raises(CheckpointError, match=r"missing.safetensors: checkpoint file not found"):
        train_stage2(_s2(data, tmp_path / "missing.safetensors", tmp_path / "x"), log=_quiet)
    with pytest.raises(TrainConfigError, match="dataset directory not found"):
        train_stage2(_s2(tmp_path / "nodata", stage1_model, tmp_path / "x"), log=_quiet)


def test_controller_stream_mismatch_is_named(stage1_model, tmp_path):
    from admn_ros.core.checkpoint import save_checkpoint

    c = AllocationController(ControllerConfig(nodes=("node1", "node2"), budget=18, **TINY_CONTROLLER))
    p = save_checkpoint(tmp_path / "c.safetensors", kind="controller", state_dict=c.state_dict(),
                        meta={"controller_config": c.cfg.to_dict(), "variant": "budget", "budget": 18})
    model, _ = load_stage1(stage1_model)
    with pytest.raises(CheckpointError, match=r"c.safetensors: controller streams/depth"):
        load_controller(p, model)


# ----------------------------------------------------------------------------- CLI
def test_cli_stage1_and_errors(data, tmp_path, capsys):
    rc = cli.main(["stage1", "--data", str(data), "--out", str(tmp_path / "s"), "--epochs", "1", "--batch-size", "16",
                   "--threads", "1", "--no-progress", "--model", '{"vit_dim": 16, "vit_heads": 2, "fusion_dim": 16, '
                   '"fusion_depth": 1, "fusion_heads": 2}'])
    assert rc == 0 and (tmp_path / "s" / "model.safetensors").is_file()
    rc = cli.main(["stage1", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "t"), "--no-progress"])
    assert rc == 2 and "dataset directory not found" in capsys.readouterr().err
    rc = cli.main(["stage2", "--data", str(data), "--stage1", str(tmp_path / "s" / "model.safetensors"),
                   "--out", str(tmp_path / "c"), "--variant", "budget", "--budget", "500", "--no-progress"])
    assert rc == 2 and "budget 500 out of range" in capsys.readouterr().err
    assert cli.build_parser().parse_args(["stage2", "--variant", "ae"]).variant == "ae"


def test_ship_models(data, stage1_model, tmp_path):
    """Shipping writes the task's files and manifest; a controller of another stage-1 network is
    refused before any shipped file is replaced. Break tried: the weights check inside the write loop
    (the new stage-1 file replaced the shipped one, then the error)."""
    from admn_ros.core.train.ship import ship_models

    c = train_stage2(_s2(data, stage1_model, tmp_path / "c", variant="budget", budget=27, epochs=0), log=_quiet)
    man = ship_models(stage1_model, [c.model_path], tmp_path / "models")
    names = sorted(e["file"] for e in man["files"])
    assert names == ["controller_L27.safetensors", "tracking.safetensors"]
    assert (tmp_path / "models" / "manifest.json").is_file() and man["total_bytes"] < 30 * 2**20
    assert read_metadata(tmp_path / "models" / "tracking.safetensors")["weights_id"] == man["stage1_weights_id"]
    other = train_stage1(_s1(data, tmp_path / "s1b", epochs=1, seed=9), log=_quiet)
    before = (tmp_path / "models" / "tracking.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="trained on stage-1 weights"):
        ship_models(other.model_path, [c.model_path], tmp_path / "models")
    assert (tmp_path / "models" / "tracking.safetensors").read_bytes() == before


# ----------------------------------------------------------------------------- the shipped recipe
def test_train_all_defaults_are_the_shipped_recipe():
    """``admn-ros train all`` with no recipe flags trains what ``make models`` ships, and
    ``--task activity`` what ``make models-activity`` ships; the manifest names that command."""
    from admn_ros.core.train.config import VARIANTS
    from admn_ros.core.train.pipeline import PipelineConfig

    track, act = PipelineConfig(), PipelineConfig(task="activity")
    assert track.command() == "admn-ros train all" and act.command() == "admn-ros train all --task activity"
    assert (track.data, track.runs, track.models) == ("data/gdtm_sim", "runs/shipped", "models")
    assert (act.data, act.runs, act.models) == ("data/activity_sim", "runs/activity", "models/activity")
    assert track.recipe.dataset == {"n_samples": 24000, "frames_per_episode": 50}
    assert act.recipe.dataset == {"n_subjects": 100, "windows_per_activity": 8, "frames": 5}
    s1t, s1a = Stage1Config(**track.stage1_fields()), Stage1Config(**act.stage1_fields())
    assert (s1t.epochs, s1a.epochs, s1t.val_samples) == (10, 14, 512)
    assert s1t.modality_missing == {"radar": 0.25} and s1a.modality_missing == dict.fromkeys(MODALITIES, 0.2)
    assert (track.recipe.finetune_epochs, act.recipe.finetune_epochs) == (0, 4)
    s2t, s2a = Stage2Config(**track.stage2_fields()), Stage2Config(**act.stage2_fields())
    assert (s2t.train_samples, s2a.train_samples, s2t.val_samples) == (4800, 2400, 512)
    assert VARIANTS == {"budget": (0, 1), "universal": (1, 4), "ae": (1, 2)}
    smaller = PipelineConfig(task="activity", dataset={"n_subjects": 12}, stage1_epochs=1)
    assert smaller.command() == "admn-ros train all --task activity --subjects 12 --stage1-epochs 1"
    with pytest.raises(TrainConfigError, match="--samples does not apply to --task activity"):
        PipelineConfig(task="activity", dataset={"n_samples": 10})


def test_train_all_runs_every_step_and_ships_one_run(tmp_path, capsys, monkeypatch):
    """A small ``train all --task activity`` (tiny networks): stage 1, the finetune under budgeted
    allocations, all controllers on the finetuned network, then ``models/`` with a manifest that
    names the command and no file from another run; the evaluation it suggests writes into the run
    directory, not over the committed report (break tried: suggesting ``task.report_dir`` always)."""
    import dataclasses
    import json

    from admn_ros.core.data.activity import generate_activity_dataset
    from admn_ros.core.train.config import VARIANTS

    recipe = get_task("activity").recipe
    monkeypatch.setattr(get_task("activity"), "recipe", dataclasses.replace(
        recipe, stage1={**recipe.stage1, "model": TINY_MODEL}, stage2={**recipe.stage2, "controller": TINY_CONTROLLER}))

    root = tmp_path / "d"
    generate_activity_dataset(root, n_subjects=4, val_subjects=1, test_subjects=1, windows_per_activity=1,
                              frames=2, seed=5, workers=1, progress=False)
    args = ["all", "--task", "activity", "--data", str(root), "--runs", str(tmp_path / "r"), "--models",
            str(tmp_path / "m"), "--stage1-epochs", "1", "--finetune-epochs", "1", "--stage2-train-samples", "16",
            "--val-samples", "8", "--no-progress"]
    assert cli.main(args) == 0, capsys.readouterr()
    assert f"--out {tmp_path / 'r' / 'table1'}" in capsys.readouterr().out
    man = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert man["command"] == "admn-ros train all " + " ".join(args[1:-1])
    assert sorted(e["file"] for e in man["files"]) == [
        "activity.safetensors", "baselines/controller_ae.safetensors", "controller_L12.safetensors",
        "controller_L18.safetensors", "controller_L24.safetensors", "controller_L9.safetensors",
        "controller_universal.safetensors"]
    shipped = read_metadata(tmp_path / "m" / "activity.safetensors")
    tc = shipped["train_config"]
    assert tc["out"] == str(tmp_path / "r" / "finetune") and tc["alloc_ramp"] == [[0, 0.5]]
    assert tc["modality_missing"] == dict.fromkeys(MODALITIES, 0.2) and tc["epochs"] == 1
    for e in man["files"][1:]:
        meta = read_metadata(tmp_path / "m" / e["file"])
        assert meta["stage1_weights_id"] == man["stage1_weights_id"] == shipped["weights_id"]
        assert meta["train_config"]["stage1"] == str(tmp_path / "r" / "finetune" / "model.safetensors")
        assert meta["train_config"]["train_samples"] == 16 and meta["train_config"]["val_samples"] == 8
        want = VARIANTS[meta["variant"]]
        assert (meta["train_config"]["noise_warmup_epochs"], meta["train_config"]["epochs"]) == want


# ----------------------------------------------------------------------------- fine-tuning shipped models
@pytest.fixture(scope="module")
def tiny_models(data, stage1_model, tmp_path_factory):
    """A ``models/`` directory of the tiny network with a universal, an L=27 and an AE controller
    (the other budgets missing, as after an interrupted ``train all``)."""
    from admn_ros.core.train.ship import ship_models

    root = tmp_path_factory.mktemp("tiny_models")
    ctrls = [train_stage2(_s2(data, stage1_model, root / v, variant=v, epochs=0, **kw), log=_quiet).model_path
             for v, kw in (("universal", {}), ("budget", {"budget": 27}), ("ae", {}))]
    ship_models(stage1_model, ctrls, root / "models")
    return root / "models"


def test_train_all_init_fine_tunes_from_the_given_models(data, tiny_models, tmp_path, capsys, monkeypatch):
    """``train all --init MODELS``: the stage-1 network's weights at its first training step are
    exactly those of MODELS, every controller with a counterpart in MODELS starts from it (and
    ends close to it after a short fine-tune), the missing budgets are folded from the fine-tuned
    universal one, and the models shipped are one consistent set.

    Break tried: the pipeline not passing ``init`` to stage 1 (``s1_fields`` without it): the
    first step ran on fresh weights and the equality failed; the lanes starting every controller
    without ``--init``: their train_config named no init and the test failed."""
    import dataclasses

    recipe = get_task("tracking").recipe
    monkeypatch.setattr(get_task("tracking"), "recipe", dataclasses.replace(
        recipe, stage1={**recipe.stage1, "model": TINY_MODEL}, stage2={**recipe.stage2, "controller": TINY_CONTROLLER}))
    first: dict[str, torch.Tensor] = {}
    forward = ADMNModel.forward

    def spy(self, *a, **kw):
        if self.training and not first:
            first.update({k: v.clone() for k, v in self.state_dict().items()})
        return forward(self, *a, **kw)

    monkeypatch.setattr(ADMNModel, "forward", spy)
    out = tmp_path / "m"
    args = ["all", "--data", str(data), "--init", str(tiny_models), "--runs", str(tmp_path / "r"), "--models",
            str(out), "--stage1-epochs", "1", "--stage2-train-samples", "16", "--val-samples", "8", "--no-progress"]
    assert cli.main(args) == 0, capsys.readouterr()
    shipped = load_checkpoint(tiny_models / "tracking.safetensors").tensors
    assert first.keys() == shipped.keys() and all(torch.equal(first[k], shipped[k]) for k in shipped)
    tuned = load_checkpoint(out / "tracking.safetensors").tensors
    assert not all(torch.equal(tuned[k], shipped[k]) for k in shipped)
    assert read_metadata(out / "tracking.safetensors")["train_config"]["lr"] == recipe.init_stage1["lr"]
    for name, init in (("controller_universal", tiny_models / "controller_universal.safetensors"),
                       ("controller_L27", tiny_models / "controller_L27.safetensors"),
                       ("baselines/controller_ae", tiny_models / "baselines" / "controller_ae.safetensors"),
                       ("controller_L36", tmp_path / "r" / "ctrl_universal" / "controller.safetensors")):
        meta = read_metadata(out / f"{name}.safetensors")
        assert meta["train_config"]["init"] == str(init), name
        assert (meta["train_config"]["noise_warmup_epochs"], meta["train_config"]["epochs"]) == (0, 1)
    for name in ("controller_universal", "controller_L27"):
        a, b = (load_checkpoint(d / f"{name}.safetensors").tensors for d in (tiny_models, out))
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 0.01, name
    man = __import__("json").loads((out / "manifest.json").read_text())
    assert man["command"].endswith(f"--init {tiny_models}") and len(man["files"]) == 7


def test_train_all_init_bad_input_names_the_file_and_the_mismatch(data, tiny_models, tmp_path, capsys):
    """Models of another task, a dataset of another stream set, a controller of another network or
    no dataset: one error line naming the file and what differs, before any training."""
    import shutil

    from admn_ros.core.data import generate_dataset

    def run(*extra: str, data_dir=data, models=tiny_models) -> str:
        rc = cli.main(["all", "--data", str(data_dir), "--init", str(models), "--runs", str(tmp_path / "r"),
                       "--models", str(tmp_path / "out"), "--no-progress", *extra])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1, err
        return err

    assert f"{tiny_models}: no activity.safetensors, so no models of --task activity (it holds " \
           "baselines/controller_ae.safetensors, controller_L27.safetensors" in run("--task", "activity")
    cfg = tmp_path / "two_nodes.yaml"
    cfg.write_text("nodes:\n  - {name: node1, position: [-2.1, -2.4, 1.5]}\n  - {name: node2, position: [2.1, -2.4, 1.5]}\n")
    two = tmp_path / "two"
    generate_dataset(two, n_samples=20, frames_per_episode=5, workers=1, progress=False, config=cfg)
    assert (f"{two}/train vs {tiny_models}/tracking.safetensors: dataset nodes ['node1', 'node2'] != model config "
            "nodes ['node1', 'node2', 'node3'] (stream set mismatch)") in run(data_dir=two)
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_models, mixed)
    other = train_stage1(_s1(data, tmp_path / "s1b", epochs=1, seed=9), log=_quiet).model_path
    shutil.copy(other, mixed / "tracking.safetensors")
    assert f"{mixed}/controller_L27.safetensors: trained on stage-1 weights" in run(models=mixed)
    assert f"{tmp_path / 'none'}: no meta.json; --init fine-tunes on a dataset you built" in run(
        data_dir=tmp_path / "none")
