"""Does a backbone readout train, and does its accuracy depend on depth? A one-backbone probe.

    .venv/bin/python scripts/probe_readout.py --readout spatial
    .venv/bin/python scripts/probe_readout.py --readout mean --mae-steps 1200

One modality's :class:`~admn_ros.core.vit.AdaptiveViT` (default: depth) classifies activity
windows of ``data/activity_sim`` through a linear layer over its ``F`` frame embeddings (no
fusion transformer). Optionally it is first MAE-pretrained with the stage-0 loss
(:func:`admn_ros.core.train.stage0.mae_loss`, LayerDrop 0.2), then finetuned with LayerDrop
0.2 and full-backbone dropout 0.1 as in stage 1, clean inputs. Prints the finetuning loss
every 50 steps and the validation accuracy with k every-other blocks (docs/TRAINING.md,
"How much depth matters"). Minutes on 1-2 threads.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from admn_ros.core.streams import MODALITIES, every_other_blocks
from admn_ros.core.train.common import open_split, to_torch
from admn_ros.core.train.stage0 import MAEDecoder, mae_loss
from admn_ros.core.vit import READOUTS, AdaptiveViT


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/activity_sim")
    p.add_argument("--modality", default="depth", choices=sorted(MODALITIES))
    p.add_argument("--readout", default="mean", choices=list(READOUTS))
    p.add_argument("--mae-steps", type=int, default=0, help="MAE pretraining steps first (batch 32 windows)")
    p.add_argument("--steps", type=int, default=400, help="finetuning steps (batch 64 windows)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    ds, vds = open_split(a.data, "train"), open_split(a.data, "val")
    n, frames, classes = len(ds), int(ds.meta["frames"]), len(ds.meta["classes"])
    mods = (a.modality,)
    ch = MODALITIES[a.modality].channels
    vit = AdaptiveViT(ch, 64, 16, 64, 12, 4, 4.0, layerdrop=0.2, readout=a.readout)
    t0 = time.perf_counter()
    if a.mae_steps > 0:
        dec = MAEDecoder(64, 16, 16 * 16 * ch, 64, 2, 4)
        opt = torch.optim.AdamW(list(vit.parameters()) + list(dec.parameters()), lr=1e-3, weight_decay=0.05,
                                betas=(0.9, 0.95))
        gen = torch.Generator().manual_seed(a.seed)
        vit.train()
        losses = []
        for s in range(a.mae_steps):
            for g in opt.param_groups:
                g["lr"] = 1e-3 * min(1.0, (s + 1) / 50)
            x, _ = to_torch(ds.batch(np.sort(rng.choice(n, 32, replace=False))), mods)
            loss = mae_loss(vit, dec, x[a.modality].flatten(0, 1), 0.75, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if (s + 1) % 200 == 0:
                print(f"mae step {s + 1}: masked-patch loss {np.mean(losses[-200:]):.3f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    head = nn.Linear(64 * frames, classes)
    vit.set_layerdrop(0.2, 0.1)
    opt = torch.optim.AdamW(list(vit.parameters()) + list(head.parameters()), lr=a.lr, weight_decay=0.05)
    vit.train()
    losses = []
    for s in range(a.steps):
        x, y = to_torch(ds.batch(np.sort(rng.choice(n, 64, replace=False))), mods)
        xb = x[a.modality]
        loss = nn.functional.cross_entropy(head(vit(xb.flatten(0, 1)).view(xb.shape[0], -1)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (s + 1) % 50 == 0:
            print(f"{a.readout} finetune step {s + 1}: loss {np.mean(losses[-50:]):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    vit.eval()
    with torch.no_grad():
        x, y = to_torch(vds.batch(np.arange(min(400, len(vds)))), mods)
        xb = x[a.modality]
        accs = []
        for k in (1, 2, 3, 4, 6, 9, 12):
            logits = head(vit(xb.flatten(0, 1), every_other_blocks(k, 12)).view(xb.shape[0], -1))
            accs.append(f"k={k}: {(logits.argmax(-1) == y).float().mean().item() * 100:.1f}%")
    print(f"validation accuracy ({a.modality}, {a.readout} readout, MAE steps {a.mae_steps}): " + ", ".join(accs))


if __name__ == "__main__":
    main()
