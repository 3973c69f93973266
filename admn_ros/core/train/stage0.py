"""Stage 0 (optional): MAE-style pretraining of the backbones, with LayerDrop, on our own data.

The paper starts from MAE-pretrained ViTs finetuned with LayerDrop; we cannot download such
weights, so this stage pretrains every modality's backbone on the frames of the training
split (no labels used), following the masked-autoencoder recipe:

* each frame's patches are shuffled per sample; the encoder (the backbone's patch embedding,
  CLS token and blocks, with LayerDrop really skipping blocks) sees only the
  ``1 - mask_ratio`` visible patches;
* a small decoder (:class:`MAEDecoder`: projection, mask tokens, its own position
  embedding, ``decoder_depth`` blocks) predicts the pixels of the masked patches;
* loss: mean squared error on the masked patches, each target patch normalised by its own
  mean and std (MAE's ``norm_pix_loss``).

Why it is here: with a pooled backbone readout (``ADMNConfig.readout`` ``"cls"`` / ``"mean"``,
the paper's) nothing but the blocks can carry the layout of the scene into the embedding, so
backbone depth matters; trained from scratch those readouts stay at chance for epochs on
our data, and MAE pretraining is what gets them started (docs/TRAINING.md).

Outputs in ``cfg.out``: ``last.safetensors`` (backbones + decoder + optimizer, for
``--resume``), ``model.safetensors`` (kind ``stage0``: the backbone weights and the model
config; stage 1 starts from it with ``Stage1Config.init``), ``summary.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from admn_ros.core.checkpoint import check_config, check_state_dict, load_checkpoint, save_checkpoint
from admn_ros.core.model import ADMNConfig, ADMNModel
from admn_ros.core.train.common import (load_resume, Throughput, check_dataset, derive_seed, epoch_batches, fmt_duration,
                                        lr_at, make_adamw, open_split, progress, seed_everything, set_lr,
                                        start_run, subset_size, to_torch, write_json)
from admn_ros.core.train.config import Stage0Config, Stage1Config
from admn_ros.core.vit import AdaptiveViT, Block, init_linear

LAST = "last.safetensors"
FINAL = "model.safetensors"
SUMMARY = "summary.json"
#: Model-config fields that define the backbones: a stage-0 checkpoint initialises a stage-1
#: model only if they are equal.
BACKBONE_KEYS: tuple[str, ...] = ("modalities", "img_size", "patch", "vit_dim", "vit_depth", "vit_heads",
                                  "vit_mlp_ratio", "readout")
RESUME_FIXED = ("data", "batch_size", "seed", "train_samples", "model", "mask_ratio", "decoder_dim",
                "decoder_depth")


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, N, patch * patch * C]`` in the patch embedding's row-major order."""
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    return x.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, patch * patch * c)


class MAEDecoder(nn.Module):
    """Pixel decoder of one backbone: encoder tokens of the visible patches -> pixels of every patch.

    Args:
        dim: encoder width.
        n_patches: patches per image.
        patch_pixels: values per patch (``patch * patch * channels``).
        decoder_dim / decoder_depth / heads: decoder transformer shape.
    """

    def __init__(self, dim: int, n_patches: int, patch_pixels: int, decoder_dim: int = 64,
                 decoder_depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + n_patches, decoder_dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList([Block(decoder_dim, heads, 4.0) for _ in range(decoder_depth)])
        self.norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.pred = nn.Linear(decoder_dim, patch_pixels)
        self.apply(init_linear)

    def forward(self, enc: torch.Tensor, keep: torch.Tensor, n_patches: int) -> torch.Tensor:
        """``enc [B, 1 + K, D]`` (CLS + visible), ``keep [B, K]`` patch indices -> ``[B, N, pixels]``."""
        b = enc.shape[0]
        x = self.embed(enc)
        d = x.shape[-1]
        patches = self.mask_token.expand(b, n_patches, d).scatter(1, keep[..., None].expand(-1, -1, d), x[:, 1:])
        h = torch.cat([x[:, :1], patches], dim=1) + self.pos
        for blk in self.blocks:
            h = blk(h)
        return self.pred(self.norm(h[:, 1:]))


def mae_loss(vit: AdaptiveViT, decoder: MAEDecoder, x: torch.Tensor, mask_ratio: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Masked-patch reconstruction loss of one backbone on frames ``x [B, C, H, W]`` in [0, 1].

    The encoder runs :meth:`AdaptiveViT.run_blocks` (LayerDrop applies in ``train()`` mode) on
    the CLS token and ``round(N * (1 - mask_ratio))`` (at least 1) random visible patches."""
    tok = vit.embed(x)  # [B, 1 + N, D]
    b, n = tok.shape[0], tok.shape[1] - 1
    n_keep = max(1, int(round(n * (1.0 - mask_ratio))))
    keep = torch.argsort(torch.rand(b, n, generator=generator), dim=1)[:, :n_keep].to(tok.device)
    d = tok.shape[-1]
    visible = torch.cat([tok[:, :1], torch.gather(tok[:, 1:], 1, keep[..., None].expand(-1, -1, d))], dim=1)
    pred = decoder(vit.run_blocks(visible), keep, n)
    target = patchify(x, vit.patch_embed.patch)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    masked = torch.ones(b, n, device=tok.device)
    masked.scatter_(1, keep, 0.0)
    return (((pred - target) ** 2).mean(-1) * masked).sum() / masked.sum()


def build_decoders(model: ADMNModel, cfg: Stage0Config) -> nn.ModuleDict:
    """One :class:`MAEDecoder` per modality backbone of ``model``."""
    mc = model.cfg
    n = (mc.img_size // mc.patch) ** 2
    return nn.ModuleDict({m: MAEDecoder(mc.vit_dim, n, mc.patch * mc.patch * mc.channels(m), cfg.decoder_dim,
                                        cfg.decoder_depth, mc.vit_heads) for m in mc.modalities})


def frames_of(batch: torch.Tensor) -> torch.Tensor:
    """``[B, F*S, C, H, W]`` -> ``[B*F*S, C, H, W]``: every frame of every node, one image each."""
    return batch.flatten(0, 1)


def _same_config(stored: dict[str, Any], cfg: ADMNConfig) -> bool:
    """Whether a checkpoint's model config (fields added since it was saved take their
    defaults) describes exactly the network ``cfg`` does."""
    try:
        full = ADMNConfig.from_dict(stored).to_dict()
    except (TypeError, ValueError):
        return False
    return json.dumps(full, sort_keys=True) == json.dumps(cfg.to_dict(), sort_keys=True)


def init_backbones(model: ADMNModel, path: str | Path, log: Callable[[str], None] = print) -> None:
    """Load a checkpoint's backbone weights into ``model`` (stage 1's ``init``).

    ``path`` is a stage-0 checkpoint (MAE pretraining) or a stage-1 checkpoint (warm start
    from another trained network, e.g. a shipped model). A stage-1 source may use a
    different backbone readout: its patch embedding, positions, CLS token and blocks are
    copied and ``model``'s readout head keeps its fresh initialisation. A stage-1 source
    of the very same network (identical model config) also gives its fusion and head: the
    whole network is warm-started, e.g. to finetune it under budgeted allocations
    (``Stage1Config.alloc_ramp``).

    Raises:
        CheckpointError: neither kind, or its backbones differ from ``model``'s
            (:data:`BACKBONE_KEYS`; ``readout`` only for stage-0 sources).
    """
    ck = load_checkpoint(path, kind=("stage0", "stage1"), with_optimizer=False)
    kind = ck.meta.get("kind")
    stored = {"readout": "spatial", **ck.model_config}  # checkpoints older than the field are spatial
    keys = BACKBONE_KEYS if kind == "stage0" else tuple(k for k in BACKBONE_KEYS if k != "readout")
    check_config(path, stored, model.cfg.to_dict(), keys=keys)
    prefix = "backbones."
    sub = {k[len(prefix):]: v for k, v in ck.tensors.items() if k.startswith(prefix)}
    expected = model.backbones.state_dict()
    new_head = stored["readout"] != model.cfg.readout
    if new_head:  # keys are "<modality>.head.<...>": drop the source's head, keep the model's own
        sub = {k: v for k, v in sub.items() if k.split(".")[1] != "head"}
        expected = {k: v for k, v in expected.items() if k.split(".")[1] != "head"}
    check_state_dict(sub, expected, path=path, strict=True)
    model.backbones.load_state_dict(sub, strict=not new_head)
    same_net = kind == "stage1" and _same_config(stored, model.cfg)
    if same_net:
        fusion = {k[len("fusion."):]: v for k, v in ck.tensors.items() if k.startswith("fusion.")}
        check_state_dict(fusion, model.fusion.state_dict(), path=path, strict=True)
        model.fusion.load_state_dict(fusion)
    what = "whole network (same model config)" if same_net else "backbones"
    log(f"[stage1] {what} initialised from {kind} checkpoint {path} (epoch {ck.epoch}"
        + (f"; readout {stored['readout']!r} -> {model.cfg.readout!r}, head re-initialised)" if new_head else ")"))


def _model_config(cfg: Stage0Config, ds: Any) -> ADMNConfig:
    from admn_ros.core.train.stage1 import build_model_config

    return build_model_config(Stage1Config(data=cfg.data, model=dict(cfg.model)), ds)


def train_stage0(cfg: Stage0Config, resume: bool = False, force: bool = False,
                 log: Callable[[str], None] = print) -> Path:
    """Run stage 0 as configured; returns the path of ``model.safetensors``.

    Raises:
        TrainConfigError: bad config or data.
        CheckpointError: unreadable or mismatched resume checkpoint.
    """
    out = start_run(cfg.out, cfg.threads, resume, force, LAST)
    ds = open_split(cfg.data, "train")
    mcfg = _model_config(cfg, ds)
    check_dataset(ds, mcfg, f"{cfg.data}/train")
    seed_everything(cfg.seed, "stage0-init")
    model = ADMNModel(mcfg)
    decoders = build_decoders(model, cfg)
    params = list(model.backbones.parameters()) + list(decoders.parameters())
    opt = make_adamw(params, cfg.lr, cfg.weight_decay)
    start_epoch, history = 0, []
    ck = load_resume(out / LAST, "stage0-run", mcfg.to_dict(), cfg.to_dict(), RESUME_FIXED) if resume else None
    if ck is not None:
        ck.load_into(model.backbones, prefix="backbones.")
        ck.load_into(decoders, prefix="decoders.")
        opt.load_state_dict(ck.optimizer)
        start_epoch, history = ck.epoch, list(ck.meta.get("history", []))
        log(f"[stage0] resumed {out / LAST} at epoch {start_epoch}/{cfg.epochs}")

    n_all = len(ds)
    n_train = subset_size(n_all, cfg.train_samples)
    steps_per_epoch = max(1, n_train // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    frames_per_sample = mcfg.frames * len(mcfg.nodes)
    tput = Throughput()
    t_start = time.perf_counter()
    log(f"[stage0] MAE pretraining of {list(mcfg.modalities)} backbones: {n_train} samples x {frames_per_sample} "
        f"frames per epoch, {steps_per_epoch} steps x {cfg.epochs} epochs, mask ratio {cfg.mask_ratio}, "
        f"LayerDrop {cfg.layerdrop}, torch threads {torch.get_num_threads()}")
    # a finished run resumed for nothing reports its last epoch, not NaN
    loss_now = float(history[-1]["loss"]) if history else float("nan")
    rate = float(history[-1].get("samples_per_s", 0.0)) if history else 0.0
    for epoch in range(start_epoch, cfg.epochs):
        rng = seed_everything(cfg.seed, "stage0", epoch)
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "stage0-mask", epoch))
        for bb in model.backbones.values():
            bb.set_layerdrop(cfg.layerdrop, 0.0)
        model.train()
        decoders.train()
        batches = epoch_batches(n_all, cfg.batch_size, rng, limit=cfg.train_samples)
        bar = progress(len(batches), f"stage0 epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        losses: dict[str, list[float]] = {m: [] for m in mcfg.modalities}
        for i, sel in enumerate(batches):
            lr = lr_at(epoch * steps_per_epoch + i, total, cfg.lr, cfg.min_lr, warmup, "cosine")
            set_lr(opt, lr)
            inputs, _ = to_torch(ds.batch(sel), mcfg.modalities)
            tput.start()
            parts = {m: mae_loss(model.backbones[m], decoders[m], frames_of(inputs[m]), cfg.mask_ratio, gen)
                     for m in mcfg.modalities}
            loss = sum(parts.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"[stage0] non-finite loss at epoch {epoch + 1} step {i}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tput.stop(len(sel))
            for m, v in parts.items():
                losses[m].append(v.item())
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.1e}")
        bar.close()
        per_mod = {m: float(np.mean(v)) for m, v in losses.items()}
        loss_now = float(sum(per_mod.values()))
        rate = tput.rate
        history.append({"epoch": epoch + 1, "loss": loss_now, "loss_per_modality": per_mod, "lr": lr,
                        "samples_per_s": rate})
        tensors = {**{f"backbones.{k}": v for k, v in model.backbones.state_dict().items()},
                   **{f"decoders.{k}": v for k, v in decoders.state_dict().items()}}
        save_checkpoint(out / LAST, kind="stage0-run", state_dict=tensors, optimizer_state=opt.state_dict(),
                        meta={"model_config": mcfg.to_dict(), "train_config": cfg.to_dict(), "stage": 0,
                              "epoch": epoch + 1, "history": history})
        log(f"[stage0] epoch {epoch + 1}/{cfg.epochs} masked-patch loss "
            + ", ".join(f"{m} {v:.3f}" for m, v in per_mod.items())
            + f" | {tput.rate:.0f} samples/s, elapsed {fmt_duration(time.perf_counter() - t_start)}")

    epochs_done = max(start_epoch, cfg.epochs)
    final = save_checkpoint(out / FINAL, kind="stage0",
                            state_dict={f"backbones.{k}": v for k, v in model.backbones.state_dict().items()},
                            meta={"model_config": mcfg.to_dict(), "train_config": cfg.to_dict(), "stage": 0,
                                  "epoch": epochs_done, "history": history})
    seconds = time.perf_counter() - t_start
    write_json(out / SUMMARY, {"stage": 0, "model": str(final), "epochs": epochs_done, "seconds": seconds,
                               "history": history, "train_config": cfg.to_dict(), "model_config": mcfg.to_dict()})
    log(f"==== stage 0 done: {epochs_done} epochs, {fmt_duration(seconds)} this run, {rate:.0f} samples/s, "
        f"final masked-patch loss per modality {loss_now / len(mcfg.modalities):.3f} "
        f"(1.0 = predicting each patch's mean)\n     checkpoint: {final}")
    return final
