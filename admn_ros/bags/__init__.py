"""Bag I/O: record the (simulated) network to rosbag2, read bags as synchronized ADMN frames
(:class:`~admn_ros.bags.reader.BagFrames`), write pipeline outputs for RViz / Foxglove and replay
bags through a pipeline. The main names are imported lazily, so ``import admn_ros.bags`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BagFrames": "reader", "BagError": "reader", "load_mapping": "mapping", "OutputBagWriter": "writer",
    "record_sim": "record", "record_live": "record", "replay": "replay", "replay_report": "report",
    "make_pipeline": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'admn_ros.bags' has no attribute {name!r}")
    return getattr(importlib.import_module(f"admn_ros.bags.{mod}"), name)
