"""``admn-ros train``: stage 1 / stage 2 training, export, and the whole shipped-model pipeline.

    admn-ros train stage1 --data data/gdtm_sim --out runs/stage1 --epochs 10 --seed 0
    admn-ros train stage2 --data data/gdtm_sim --stage1 runs/stage1/model.safetensors \\
        --variant universal --out runs/ctrl_universal
    admn-ros train stage2 ... --variant budget --budget 27 --init runs/ctrl_universal/controller.safetensors
    admn-ros train stage2 ... --variant ae --out runs/ctrl_ae
    admn-ros train ship --stage1 runs/stage1/model.safetensors --controller runs/ctrl_L27/controller.safetensors \\
        --controller runs/ctrl_universal/controller.safetensors --controller runs/ctrl_ae/controller.safetensors
    admn-ros train all --data data/gdtm_sim --runs runs/shipped --models models     # everything

Every run directory keeps ``last.safetensors`` after each epoch; ``--resume`` continues
it (the checkpoint carries its config; a different model/data/seed is refused).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields
from typing import Any, Sequence

import torch

from admn_ros.core.checkpoint import CheckpointError
from admn_ros.core.train.config import VARIANTS, Stage1Config, Stage2Config, TrainConfigError, load_config_file
from admn_ros.core.train.pipeline import add_pipeline_args, run_pipeline_args
from admn_ros.core.train.ship import ship_models
from admn_ros.core.train.stage1 import train_stage1
from admn_ros.core.train.stage2 import train_stage2


def _common(p: argparse.ArgumentParser, cls: Any) -> None:
    """The flags of both stages; their help shows ``cls``'s defaults."""
    d = {f.name: f.default for f in fields(cls)}
    epochs = d["epochs"] or "the variant's"
    p.add_argument("--data", help=f"dataset root (meta.json + train/ val/ test/; default {d['data']})")
    p.add_argument("--out", help=f"run directory (default {d['out']})")
    p.add_argument("--config", help="JSON/YAML file with config fields (flags override it)")
    p.add_argument("--epochs", type=int, help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, help=f"samples per step (default {d['batch_size']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']:g}, decaying to {d['min_lr']:g})")
    p.add_argument("--seed", type=int, help=f"seed of initialisation, sample order and noise (default {d['seed']})")
    p.add_argument("--train-samples", type=int, help="training samples per epoch, random subset each epoch (0 = all; "
                   f"default {d['train_samples']})")
    p.add_argument("--val-samples", type=int, help=f"validation samples per epoch (0 = all; default "
                   f"{d['val_samples']})")
    p.add_argument("--threads", type=int, help="torch threads (default 0 = the OMP_NUM_THREADS default)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--force", action="store_true", help="start over even if OUT has a checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="admn-ros train", description=__doc__.replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s1 = sub.add_parser("stage1", help="LayerDrop training of backbones + fusion (the dataset's task)")
    _common(s1, Stage1Config)
    s1.add_argument("--noise-start-epoch", type=int, help="first epoch with noise augmentation (default "
                    f"{Stage1Config.noise_start_epoch})")
    s1.add_argument("--model", dest="model_json", help="ADMNConfig overrides as JSON, e.g. '{\"vit_dim\": 64}'")
    s1.add_argument("--init", help="stage-1 checkpoint of the same network to start from")

    s2 = sub.add_parser("stage2", help="train a controller on the frozen stage-1 network")
    _common(s2, Stage2Config)
    s2.add_argument("--stage1", help="stage-1 checkpoint (model.safetensors or models/tracking.safetensors; default "
                    f"{Stage2Config.stage1})")
    s2.add_argument("--variant", choices=list(VARIANTS), help=f"controller kind (default {Stage2Config.variant})")
    s2.add_argument("--budget", type=int, help="blocks L for --variant budget (default 0: "
                    f"{Stage2Config.budget_fraction * 100:.0f}%% of all blocks)")
    s2.add_argument("--init", help="controller checkpoint to start from (universal is folded at --budget)")
    s2.add_argument("--warmup-epochs", type=int, dest="noise_warmup_epochs",
                    help="noise-head-only (or AE reconstruction) epochs first (default: the variant's)")

    sh = sub.add_parser("ship", help="export final checkpoints into models/ (+ manifest.json)")
    sh.add_argument("--stage1", required=True, help="stage-1 checkpoint")
    sh.add_argument("--controller", action="append", default=[], help="controller checkpoint (repeatable)")
    sh.add_argument("--models", default="models", help="output directory (default models)")
    sh.add_argument("--float16", action="store_true", help="store weights as float16")

    al = sub.add_parser("all", help="dataset + stage 1 + all controllers + ship (the `make models` pipeline)")
    add_pipeline_args(al)
    return p


def _flags_config(a: argparse.Namespace, cls: Any) -> Any:
    """``cls`` from the config file, the flags over it, then ``--model`` JSON merged into ``model``."""
    d = load_config_file(a.config)
    known = {f.name for f in fields(cls)}
    d.update({k: v for k, v in vars(a).items() if k in known and v is not None})
    if getattr(a, "model_json", None):
        try:
            d["model"] = {**d.get("model", {}), **json.loads(a.model_json)}
        except json.JSONDecodeError as exc:
            raise TrainConfigError(f"--model: invalid JSON: {exc}") from exc
        except TypeError:
            raise TrainConfigError(f"--model: expected a JSON object of model fields, got {a.model_json}") from None
    if a.no_progress:
        d["progress"] = False
    return cls.from_dict(d)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``admn-ros train``; returns a process exit code (2 = bad config/data)."""
    a = build_parser().parse_args(argv)
    try:
        if a.cmd == "stage1":
            train_stage1(_flags_config(a, Stage1Config), resume=a.resume, force=a.force)
        elif a.cmd == "stage2":
            train_stage2(_flags_config(a, Stage2Config), resume=a.resume, force=a.force)
        elif a.cmd == "ship":
            man = ship_models(a.stage1, a.controller, a.models, torch.float16 if a.float16 else torch.float32,
                              command=shlex.join(["admn-ros", "train", *(argv if argv is not None else sys.argv[1:])]))
            print(f"[ship] {len(man['files'])} files, {man['total_bytes'] / 1e6:.1f} MB -> {a.models}/manifest.json")
        elif a.cmd == "all":
            run_pipeline_args(a)
    except (TrainConfigError, CheckpointError) as exc:
        print(f"admn-ros train {a.cmd}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
