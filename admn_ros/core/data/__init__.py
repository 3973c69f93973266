"""Datasets: on-disk formats, readers, simulated generators and converters."""
from admn_ros.core.data.generate import generate_dataset, plan_splits
from admn_ros.core.data.simdata import ARRAYS, FORMAT_VERSION, SPLITS, DatasetError, SimDataset, read_meta

__all__ = ["generate_dataset", "plan_splits", "SimDataset", "DatasetError", "read_meta", "ARRAYS", "FORMAT_VERSION",
           "SPLITS"]
