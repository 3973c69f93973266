"""Bag I/O: record the (simulated) network to rosbag2, read bags as synchronized ADMN
frames, write pipeline outputs for RViz / Foxglove, and replay bags through a pipeline.

Main entry points (imported lazily, so ``import admn_ros.bags`` stays cheap)::

    from admn_ros.bags import BagFrames, load_mapping, OutputBagWriter, record_sim
    with BagFrames("my_bag", "realsense_zed", progress=True) as frames:
        for f in frames:            # f.stamp_ns, f.streams[sid], f.true_noise(), f.gt_xy
            ...

Modules: :mod:`~admn_ros.bags.typestore` (rosbags typestore + our msgs),
:mod:`~admn_ros.bags.mapping` (topic mapping YAML), :mod:`~admn_ros.bags.reader`
(``BagFrames``; messages decode through :mod:`admn_ros.core.image_convert`),
:mod:`~admn_ros.bags.msgs` (message builders), :mod:`~admn_ros.bags.record`
(``admn-ros record``), :mod:`~admn_ros.bags.writer` (output bags),
:mod:`~admn_ros.bags.pipeline` (``FramePipeline``, ``RuntimePipeline``, the baseline),
:mod:`~admn_ros.bags.replay` (the replay of any task), :mod:`~admn_ros.bags.report`
(methods x budgets), :mod:`~admn_ros.bags.realtime` (through the node graph),
:mod:`~admn_ros.bags.replay_cli` (``admn-ros replay``) and :mod:`~admn_ros.bags.dataset`
(``admn-ros dataset --from-bag``: a tracking dataset from recordings).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "BagFrames": "reader", "BagFrame": "reader", "BagError": "reader", "BagReadError": "reader",
    "BagContentError": "reader", "StreamQoIInfo": "reader", "bag_contents": "reader",
    "TopicMapping": "mapping", "StreamTopic": "mapping", "MappingError": "mapping",
    "load_mapping": "mapping", "default_mapping": "mapping",
    "OutputBagWriter": "writer", "output_topics": "writer",
    "record_sim": "record", "record_live": "record", "RecordSummary": "record", "replay_report": "report",
    "FramePipeline": "pipeline", "RuntimePipeline": "pipeline", "TrackCentreBaseline": "pipeline",
    "make_pipeline": "pipeline", "PIPELINES": "pipeline",
    "replay": "replay", "ReplaySummary": "replay",
    "get_admn_typestore": "typestore",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'admn_ros.bags' has no attribute {name!r}")
    return getattr(importlib.import_module(f"admn_ros.bags.{mod}"), name)
