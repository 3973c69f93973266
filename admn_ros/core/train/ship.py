"""Export trained checkpoints into the shipped ``models/`` directory, weights only, with ``manifest.json``
(the files and their names: docs/TRAINING.md, "Shipped files")."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from admn_ros.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import write_json

#: Upper bound on the shipped models' total size (bytes).
MAX_TOTAL_BYTES = 30 * 1024 * 1024


def shipped_name(meta: dict[str, Any]) -> str:
    """File name of a checkpoint in ``models/`` from its metadata."""
    if meta.get("kind") == "stage1":
        return get_task((meta.get("model_config") or {}).get("task")).model_file
    v = meta.get("variant")
    if v == "budget":
        return f"controller_L{int(meta['budget'])}.safetensors"
    if v not in ("universal", "ae"):
        raise CheckpointError(f"cannot name a shipped file for kind {meta.get('kind')!r} variant {v!r}")
    return "baselines/controller_ae.safetensors" if v == "ae" else "controller_universal.safetensors"


def ship_models(stage1: str | Path, controllers: Sequence[str | Path], out_dir: str | Path = "models",
                dtype: torch.dtype = torch.float32, command: str = "") -> dict[str, Any]:
    """Copy ``stage1`` + ``controllers`` into ``out_dir`` and write the manifest naming ``command``;
    :class:`CheckpointError` if a controller was trained on another network or the total exceeds
    :data:`MAX_TOTAL_BYTES`."""
    out = Path(out_dir)
    entries = []
    s1 = load_checkpoint(stage1, kind="stage1", with_optimizer=False)
    wid = s1.meta["weights_id"]
    cks = [s1, *(load_checkpoint(p, kind="controller", with_optimizer=False) for p in controllers)]
    for ck in cks[1:]:  # every check before the first file in out is replaced
        if ck.meta.get("stage1_weights_id") != wid:
            raise CheckpointError(f"{ck.path}: trained on stage-1 weights {ck.meta.get('stage1_weights_id')}, "
                                  f"not on {stage1} ({wid})")
    names = [shipped_name(ck.meta) for ck in cks]
    out.mkdir(parents=True, exist_ok=True)
    for ck, name in zip(cks, names):
        meta = {k: v for k, v in ck.meta.items()
                if k not in ("format", "version", "kind", "weights_id", "saved_at", "torch", "optimizer")}
        dst = out / name
        save_checkpoint(dst, kind=ck.kind, state_dict=ck.tensors, meta=meta, dtype=dtype)
        entries.append({"file": str(dst.relative_to(out)), "kind": ck.kind, "variant": ck.meta.get("variant"),
                        "budget": ck.meta.get("budget"), "budget_range": ck.meta.get("budget_range"),
                        "bytes": dst.stat().st_size, "weights_id": ck.meta["weights_id"],
                        "metrics": ck.meta.get("metrics", {}), "epochs": ck.epoch})
    total = sum(e["bytes"] for e in entries)
    if total > MAX_TOTAL_BYTES:
        raise CheckpointError(f"{out}: shipped models total {total / 1e6:.1f} MB > {MAX_TOTAL_BYTES / 1e6:.0f} MB")
    manifest = {"command": command, "stage1_weights_id": wid, "total_bytes": total,
                "dtype": str(dtype).replace("torch.", ""), "files": entries}
    write_json(out / "manifest.json", manifest)
    return manifest
