"""Generate the simulated tracking dataset: clean :class:`~admn_ros.core.sim.GDTMSimulator` frames
through :func:`admn_ros.core.preprocess.to_storage`, whole episodes per split (docs/DATASET.md)."""
from __future__ import annotations

import argparse
import json
import math
import time
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from admn_ros.core.data.simdata import ARRAYS, SPLITS, arrays_meta, create_arrays, meta_head, split_permutation
from admn_ros.core.data.tools import WorkerPool, clear_dataset, cli_exit_code, fmt_bytes, splits_removed_on_error
from admn_ros.core.preprocess import to_storage
from admn_ros.core.sim.config import SimConfig, load_sim_config
from admn_ros.core.streams import MODALITY_NAMES


def plan_splits(n_samples: int, frames_per_episode: int, val_frac: float, test_frac: float,
                seed: int) -> dict[str, list[tuple[int, int]]]:
    """``split -> [(episode id, n_frames), ...]`` sorted by id; the last episode may be shorter.
    A split with a positive fraction gets at least one episode; train keeps at least one."""
    for name, n in (("n_samples", n_samples), ("frames_per_episode", frames_per_episode)):
        if n <= 0:
            raise ValueError(f"{name} must be > 0, got {n}")
    for name, f in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    n_ep = math.ceil(n_samples / frames_per_episode)
    lengths = [frames_per_episode] * n_ep
    lengths[-1] = n_samples - frames_per_episode * (n_ep - 1)
    n_val = max(1, round(val_frac * n_ep)) if val_frac > 0 else 0
    n_test = max(1, round(test_frac * n_ep)) if test_frac > 0 else 0
    if n_ep - n_val - n_test < 1:
        raise ValueError(f"{n_samples} samples at {frames_per_episode} frames per episode give only "
                         f"{n_ep} episodes: too few for train + val ({n_val}) + test ({n_test}); "
                         f"lower frames_per_episode")
    groups = split_permutation(n_ep, n_val, n_test, [seed, 0x5D17])
    return {s: [(e, lengths[e]) for e in groups[s]] for s in SPLITS}


def _run_task(task: tuple[str, int, int, int], out_dir: str, seed: int, cfg: SimConfig
              ) -> tuple[str, int, int, float]:
    """Render ``task = (split, episode, first row, frames)`` into the episode's rows of the split's arrays."""
    from admn_ros.core.sim.simulator import GDTMSimulator

    t0 = time.perf_counter()
    split, episode, offset, n_frames = task
    nodes = [n.name for n in cfg.nodes]
    arrs = {stem: np.load(Path(out_dir) / split / f"{stem}.npy", mmap_mode="r+") for stem in ARRAYS}
    sim = GDTMSimulator(cfg, seed=seed, episode=episode)
    for j in range(offset, offset + n_frames):
        f = sim.step()
        for k, node in enumerate(nodes):
            for m in MODALITY_NAMES:
                arrs[m][j, k] = to_storage(m, f.streams[f"{node}/{m}"].data)
            arrs["visibility"][j, k] = f.visibility[node]
        arrs["gt"][j] = f.gt_xy
        arrs["episode"][j] = episode
        arrs["t"][j] = f.t
    for a in arrs.values():
        a.flush()
    return split, episode, n_frames, time.perf_counter() - t0


def generate_dataset(out_dir: str | Path, n_samples: int = 20000, seed: int = 0,
                     frames_per_episode: int = 200, val_frac: float = 0.1, test_frac: float = 0.1,
                     workers: int = 2, progress: bool = True, config: SimConfig | str | Path | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """Render ``n_samples`` clean frames into ``out_dir``; episode ``e`` is
    ``GDTMSimulator(config, seed, e)`` and ``val_frac`` / ``test_frac`` are fractions of episodes.
    Returns the summary (also ``meta.json["generation"]``)."""
    cfg = config if isinstance(config, SimConfig) else load_sim_config(config)
    plan = plan_splits(n_samples, frames_per_episode, val_frac, test_frac, seed)
    out = Path(out_dir)
    clear_dataset(out, overwrite)
    tasks: list[tuple[str, int, int, int]] = []
    with splits_removed_on_error(out):
        for split in SPLITS:
            for a in create_arrays(out / split, sum(n for _, n in plan[split]), len(cfg.nodes)).values():  # allocate
                a.flush()
            offsets = accumulate((n for _, n in plan[split]), initial=0)  # first row of each episode
            tasks += [(split, ep, off, n) for (ep, n), off in zip(plan[split], offsets)]
        tasks.sort(key=lambda t: -t[3])  # long episodes first: better load balance

        render = partial(_run_task, out_dir=str(out), seed=seed, cfg=cfg)
        with WorkerPool(render, tasks, workers, ordered=False, progress=progress, total=n_samples,
                        unit="sample", desc=f"simdata -> {out}") as pool:
            for _split, _ep, n, sec in pool:
                pool.advance(n, sec)
    summary = pool.summary(out, n_samples)
    elapsed, sizes = summary["elapsed_s"], summary["bytes"]
    meta = {
        **meta_head(cfg.streams),
        "description": "Clean (uncorrupted) frames of the GDTM-style simulator "
                       "(admn_ros.core.sim), preprocessed with admn_ros.core.preprocess.to_storage "
                       "(nearest pixel-centre subsampling to 64x64). Splits are by episode.",
        "rate_hz": cfg.rate_hz,
        "seed": seed,
        "n_samples": n_samples,
        "frames_per_episode": frames_per_episode,
        "val_frac": val_frac,
        "test_frac": test_frac,
        "sim_config": cfg.to_dict(),
        "sim_config_source": str(cfg.source) if cfg.source else None,
        "splits": {s: {"n_samples": sum(n for _, n in plan[s]),
                       "episodes": [e for e, _ in plan[s]],
                       "episode_frames": [n for _, n in plan[s]]} for s in SPLITS},
        "arrays": arrays_meta(),
        "generation": summary,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    if progress:
        counts = ", ".join(f"{s}: {meta['splits'][s]['n_samples']} in {len(plan[s])} episodes" for s in SPLITS)
        per = ", ".join(f"{s} {fmt_bytes(sizes[s])}" for s in SPLITS)
        print(f"[simdata] {n_samples} samples ({counts})\n"
              f"[simdata] {elapsed:.1f} s with {workers} worker(s) = {summary['samples_per_s']:.0f} samples/s; "
              f"on disk {fmt_bytes(summary['total_bytes'])} ({per}) in {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="admn-ros dataset",
                                 description="Render the simulated localization dataset (docs/DATASET.md).")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--n-samples", type=int, default=20000, help="samples to render (default 20000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the scenes and the split (default 0)")
    ap.add_argument("--frames-per-episode", type=int, default=200, help="consecutive frames per episode (default 200)")
    ap.add_argument("--val-frac", type=float, default=0.1, help="share of the episodes for val (default 0.1)")
    ap.add_argument("--test-frac", type=float, default=0.1, help="share of the episodes for test (default 0.1)")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes (default 2; 0 or 1: this process)")
    ap.add_argument("--config", default=None, help="sensors YAML (default: shipped config/sensors.yaml)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    a = ap.parse_args(argv)
    return cli_exit_code(lambda: generate_dataset(a.out, a.n_samples, a.seed, a.frames_per_episode, a.val_frac,
                                                  a.test_frac, a.workers, not a.quiet, a.config, a.overwrite))
