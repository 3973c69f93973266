"""Tiny training configurations and a tiny dataset for the tests (seconds on one CPU thread).

The architecture keeps the real stream grid (3 nodes x 3 modalities), 12 blocks per
backbone and 64x64 inputs, so budgets and masks mean the same as in the shipped model;
only the widths shrink.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: ``ADMNConfig`` overrides for a tiny main network (~40 k parameters).
TINY_MODEL: dict[str, Any] = {"vit_dim": 16, "vit_heads": 2, "vit_mlp_ratio": 2.0, "fusion_dim": 16,
                              "fusion_depth": 1, "fusion_heads": 2, "fusion_mlp_ratio": 2.0}

#: ``ControllerConfig`` overrides for a tiny controller.
TINY_CONTROLLER: dict[str, Any] = {"dim": 16, "layers": 1, "heads": 2, "conv_channels": [2, 4, 8]}


def make_tiny_dataset(root: str | Path, n_samples: int = 80, seed: int = 0, frames_per_episode: int = 10) -> Path:
    """Render a small dataset with the dataset engineer's generator (one process, no progress bar)."""
    from admn_ros.core.data import generate_dataset

    root = Path(root)
    if not (root / "meta.json").is_file():
        generate_dataset(root, n_samples=n_samples, seed=seed, frames_per_episode=frames_per_episode, workers=1,
                         progress=False)
    return root
