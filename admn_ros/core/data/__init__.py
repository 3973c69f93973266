"""Datasets: the simulated GDTM-style localization set (generator + memory-mapped reader).

    from admn_ros.core.data import generate_dataset, SimDataset
    generate_dataset("data/sim", n_samples=20000, workers=2)
    ds = SimDataset("data/sim", "train"); b = ds.batch([0, 1, 2])   # float32 [0, 1] arrays

CLI: ``python -m admn_ros.core.data generate --out DIR [--n-samples N] [--workers W]``.
"""
from admn_ros.core.data.generate import generate_dataset, plan_splits
from admn_ros.core.data.simdata import (ARRAYS, FORMAT_NAME, FORMAT_VERSION, SPLITS, DatasetError,
                                        SimDataset, read_meta)

__all__ = ["generate_dataset", "plan_splits", "SimDataset", "DatasetError", "read_meta",
           "ARRAYS", "FORMAT_NAME", "FORMAT_VERSION", "SPLITS"]
