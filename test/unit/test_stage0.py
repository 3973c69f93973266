"""Stage 0 (MAE pretraining with LayerDrop) on a tiny rendered dataset: the reconstruction loss goes
down, resume continues, stage 1 starts from its backbones and refuses mismatched ones."""
from __future__ import annotations

import pytest
import torch

from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from admn_ros.core.train import cli
from admn_ros.core.train.config import Stage0Config, Stage1Config, TrainConfigError
from admn_ros.core.model import ADMNConfig, ADMNModel
from admn_ros.core.train.stage0 import MAEDecoder, init_backbones, mae_loss, patchify, train_stage0
from admn_ros.core.train.stage1 import train_stage1
from admn_ros.core.train.tiny import TINY_MODEL, make_tiny_dataset
from admn_ros.core.vit import AdaptiveViT

QUIET = dict(progress=False, threads=1)
MEAN_MODEL = {**TINY_MODEL, "readout": "mean"}


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "sim", n_samples=48, seed=3)


def _s0(data, out, **kw) -> Stage0Config:
    base = dict(data=str(data), out=str(out), epochs=4, batch_size=8, lr=3e-3, warmup_epochs=0.0,
                model=dict(MEAN_MODEL), **QUIET)
    base.update(kw)
    return Stage0Config(**base)


def test_patchify_matches_the_patch_embedding_order():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 16)
    # patch 1 is the top-right 4x4 block, row-major within the patch
    assert torch.equal(p[0, 1], x[0, 0, :4, 4:].reshape(-1))
    assert torch.equal(p[1, 2], x[1, 0, 4:, :4].reshape(-1))


def test_mae_loss_hides_patches_and_trains():
    torch.manual_seed(0)
    vit = AdaptiveViT(1, 32, 8, 16, 12, 2, 2.0, layerdrop=0.2, readout="mean").train()
    dec = MAEDecoder(16, 16, 64, decoder_dim=16, decoder_depth=1, heads=2)
    seen = []
    vit.blocks[0].register_forward_hook(lambda _m, a, _o: seen.append(a[0].shape[1]))
    # predictable images (ramps): masked patches follow from the visible ones
    r = torch.linspace(0, 1, 32)
    x = torch.stack([r[None, :].expand(32, 32), r[:, None].expand(32, 32), 1 - r[None, :].expand(32, 32),
                     1 - r[:, None].expand(32, 32)])[:, None]
    opt = torch.optim.Adam(list(vit.parameters()) + list(dec.parameters()), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(30):
        loss = mae_loss(vit, dec, x, 0.75, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert seen[0] == 1 + 4  # CLS + 25% of 16 patches reach the encoder
    assert losses[-1] < 0.6 * losses[0], losses


def test_stage0_then_stage1_from_its_backbones(data, tmp_path):
    s0 = train_stage0(_s0(data, tmp_path / "s0"), log=_quiet)
    ck = load_checkpoint(s0, kind="stage0")
    hist = ck.meta["history"]
    assert len(hist) == 4 and hist[-1]["loss"] < hist[0]["loss"], hist
    assert all(k.startswith("backbones.") for k in ck.tensors)
    # resume: more epochs continue from the saved one
    s0b = train_stage0(_s0(data, tmp_path / "s0", epochs=5), resume=True, log=_quiet)
    assert load_checkpoint(s0b, kind="stage0").epoch == 5
    # resuming a finished run trains nothing and reports the last epoch's loss (not NaN)
    done: list[str] = []
    train_stage0(_s0(data, tmp_path / "s0", epochs=5), resume=True, log=done.append)
    last = load_checkpoint(s0b, kind="stage0").meta["history"][-1]["loss"]
    assert f"per modality {last / 3:.3f}" in done[-1], done
    assert load_checkpoint(s0b, kind="stage0").epoch == 5

    lines: list[str] = []
    s1 = Stage1Config(data=str(data), out=str(tmp_path / "s1"), epochs=1, batch_size=8, model=dict(MEAN_MODEL),
                      init=str(s0b), **QUIET)
    res = train_stage1(s1, log=lines.append)
    assert any("initialised from stage0 checkpoint" in ln for ln in lines)
    # what stage 1 starts from is exactly stage 0's backbones
    ck0 = load_checkpoint(s0b, kind="stage0")
    fresh = ADMNModel(ADMNConfig.from_dict(ck0.model_config))
    init_backbones(fresh, s0b, log=_quiet)
    got = fresh.backbones.state_dict()
    assert got.keys() == {k[len("backbones."):] for k in ck0.tensors}
    assert all(torch.equal(got[k[len("backbones."):]], v) for k, v in ck0.tensors.items())
    assert res.model_path.is_file()
    # a stage-1 model with another readout cannot start from these backbones
    bad = Stage1Config(data=str(data), out=str(tmp_path / "s1b"), epochs=1, batch_size=8, model=dict(TINY_MODEL),
                       init=str(s0b), **QUIET)
    with pytest.raises(CheckpointError, match="readout"):
        train_stage1(bad, log=_quiet)
    # a resumable run file is neither a stage-0 nor a stage-1 model
    with pytest.raises(CheckpointError, match="kind"):
        train_stage1(Stage1Config(data=str(data), out=str(tmp_path / "s1c"), epochs=1, model=dict(MEAN_MODEL),
                                  init=str(tmp_path / "s0" / "last.safetensors"), **QUIET), log=_quiet)


def test_stage1_warm_start_from_a_stage1_model_with_another_readout(data, tmp_path):
    spatial = train_stage1(Stage1Config(data=str(data), out=str(tmp_path / "sp"), epochs=1, batch_size=8,
                                        model=dict(TINY_MODEL), **QUIET), log=_quiet).model_path
    src = load_checkpoint(spatial, kind="stage1").tensors
    torch.manual_seed(0)
    fresh = ADMNModel(ADMNConfig.from_dict({**load_checkpoint(spatial).model_config, "readout": "mean"}))
    head_before = {k: v.clone() for k, v in fresh.backbones.state_dict().items() if k.split(".")[1] == "head"}
    lines: list[str] = []
    init_backbones(fresh, spatial, log=lines.append)
    got = fresh.backbones.state_dict()
    copied = [k for k in got if k.split(".")[1] != "head"]
    assert copied and all(torch.equal(got[k], src["backbones." + k]) for k in copied)
    # the mean readout's head is not the spatial head: it keeps its own initialisation
    assert head_before and all(torch.equal(got[k], v) for k, v in head_before.items())
    assert "readout 'spatial' -> 'mean'" in lines[0], lines
    # stage 1 then trains from it
    out: list[str] = []
    res = train_stage1(Stage1Config(data=str(data), out=str(tmp_path / "warm"), epochs=1, batch_size=8,
                                    model=dict(MEAN_MODEL), init=str(spatial), **QUIET), log=out.append)
    assert res.model_path.is_file() and any("from stage1 checkpoint" in ln for ln in out)
    assert not any("whole network" in ln for ln in lines + out)  # another readout: backbones only
    # the very same network: the fusion and head come along too (a whole-network warm start)
    same = ADMNModel(ADMNConfig.from_dict(load_checkpoint(spatial).model_config))
    lines = []
    init_backbones(same, spatial, log=lines.append)
    assert "whole network" in lines[0], lines
    assert all(torch.equal(v, src[k]) for k, v in same.state_dict().items())
    # a model saved before newer config fields existed (they take their defaults) is the same network
    ck = load_checkpoint(spatial, kind="stage1")
    legacy_cfg = {k: v for k, v in ck.model_config.items() if k not in ("pos_init_std", "aux_heads", "readout")}
    legacy = save_checkpoint(tmp_path / "legacy.safetensors", kind="stage1", state_dict=src,
                             meta={"model_config": legacy_cfg, "epoch": 1})
    lines = []
    init_backbones(ADMNModel(ADMNConfig.from_dict(ck.model_config)), legacy, log=lines.append)
    assert "whole network" in lines[0], lines
    # other backbone fields must still match
    with pytest.raises(CheckpointError, match="vit_dim"):
        init_backbones(ADMNModel(ADMNConfig.from_dict({**load_checkpoint(spatial).model_config, "readout": "mean",
                                                        "vit_dim": 2 * TINY_MODEL["vit_dim"]})), spatial, log=_quiet)


def test_stage0_config_and_cli_errors(data, tmp_path, capsys):
    with pytest.raises(TrainConfigError, match="mask_ratio"):
        Stage0Config(mask_ratio=1.0)
    with pytest.raises(TrainConfigError, match="unknown keys"):
        Stage0Config.from_dict({"mask": 0.5})
    rc = cli.main(["stage0", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2 and "stage0" in capsys.readouterr().err
    rc = cli.main(["stage0", "--data", str(data), "--out", str(tmp_path / "o"), "--model", "{bad", "--no-progress"])
    assert rc == 2 and "--model: invalid JSON" in capsys.readouterr().err


def test_pipeline_spatial_stage0_trains_the_task_and_starts_a_pooled_stage1(data, tmp_path):
    """``train all --stage0 spatial``: stage 0 is the task with the spatial readout; a mean-readout
    stage 1 then starts from its backbones (its readout head fresh)."""
    from admn_ros.core.train.pipeline import PipelineConfig, _run_stage0, run_pipeline

    cfg = PipelineConfig(data=str(data), runs=str(tmp_path / "r"), stage0="spatial", stage0_epochs=1,
                         stage1_threads=1, stage1_val_samples=8, progress=False)
    lines: list[str] = []
    s0 = _run_stage0(cfg, tmp_path / "r", dict(MEAN_MODEL), lines.append)
    ck = load_checkpoint(s0, kind="stage1")
    assert ck.epoch == 1 and ck.model_config["readout"] == "spatial"
    assert ck.model_config["vit_dim"] == TINY_MODEL["vit_dim"]  # the backbone shape of the main stage 1
    assert s0.parent == tmp_path / "r" / "stage0" and any("spatial readout" in ln for ln in lines)
    out: list[str] = []
    train_stage1(Stage1Config(data=str(data), out=str(tmp_path / "s1"), epochs=1, batch_size=8,
                              model=dict(MEAN_MODEL), init=str(s0), **QUIET), log=out.append)
    assert any("readout 'spatial' -> 'mean'" in ln for ln in out), out
    # an unknown kind fails before any work
    with pytest.raises(TrainConfigError, match="unknown stage 0"):
        run_pipeline(PipelineConfig(data=str(tmp_path / "d"), runs=str(tmp_path / "r2"), stage0="imagenet",
                                    progress=False), log=_quiet)
    assert not (tmp_path / "d").exists()


def test_pipeline_finetune_warm_starts_the_whole_network_under_allocations(data, tmp_path):
    """``train all --finetune-epochs N``: the finetune starts from the whole stage-1 network
    (fusion and head too), keeps the task recipe and trains under budgeted allocations."""
    from admn_ros.core.train.pipeline import FINETUNE_STAGE1, PipelineConfig, _run_finetune

    s1 = train_stage1(Stage1Config(data=str(data), out=str(tmp_path / "s1"), epochs=1, batch_size=8,
                                   model=dict(TINY_MODEL), **QUIET), log=_quiet).model_path
    cfg = PipelineConfig(data=str(data), runs=str(tmp_path / "r"), finetune_epochs=1, stage1_threads=1,
                         stage1_val_samples=8, progress=False)
    lines: list[str] = []
    res = _run_finetune(cfg, tmp_path / "r", s1, {"modality_missing": {"rgb": 0.3}, "init": "ignored"},
                        dict(TINY_MODEL), lines.append)
    assert res.model_path == tmp_path / "r" / "finetune" / "model.safetensors"
    assert any("whole network" in ln for ln in lines), lines
    tc = load_checkpoint(res.model_path, kind="stage1").meta["train_config"]
    assert tc["init"] == str(s1) and tc["modality_missing"] == {"rgb": 0.3}
    assert tc["alloc_ramp"] == FINETUNE_STAGE1["alloc_ramp"] and tc["lr"] == FINETUNE_STAGE1["lr"]
    assert res.history[0]["alloc"] == 0.5
    # the finetuned weights moved away from the stage-1 ones
    a, b = load_checkpoint(s1).tensors, load_checkpoint(res.model_path).tensors
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("fusion."))
