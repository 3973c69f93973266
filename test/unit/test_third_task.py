"""A third task is one module plus its entry in ``TASKS`` (docs/ARCHITECTURE.md, "Tasks"): this
module is that module, registered by the tests only, and training, the dataset readers, the graph
and the window node find its recipe, folders, reader, target and models through it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from admn_ros.core.tasks import TASKS
from admn_ros.core.tasks.activity import ActivityTask
from admn_ros.core.train.config import TaskRecipe
from fixtures.lifecycle import state_label

FRAMES, CLASSES = 2, ("sit", "wave", "jump")
CHANNELS = {"rgb": 3, "depth": 1, "radar": 1}


def generate(out: str | Path, seed: int = 0, workers: int = 1, progress: bool = False, n_windows: int = 4) -> None:
    """The third task's dataset generator (its recipe's ``generator``): a meta.json and the splits."""
    out = Path(out)
    for split in ("train", "val", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    meta = {"task": "third", "classes": list(CLASSES), "frames": FRAMES, "sensor_node": "node1", "seed": seed,
            "modalities": list(CHANNELS), "n_windows": n_windows, "bounds": [[0.0, 6.0], [-1.0, 1.0]]}
    (out / "meta.json").write_text(json.dumps(meta))


class ThirdDataset:
    """The third task's reader: blank windows whose class is under ``kind``."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.meta = json.loads((Path(root) / "meta.json").read_text())

    def __len__(self) -> int:
        return int(self.meta["n_windows"])

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        idx = np.asarray(idx)
        return {**{m: np.zeros((len(idx), FRAMES, c, 64, 64), np.float32) for m, c in CHANNELS.items()},
                "kind": (idx % len(CLASSES)).astype(np.int16)}


class ThirdTask(ActivityTask):
    """Activity's head, loss and messages; whatever shared code looks up per task is its own."""

    name = "third"
    models_subdir = "third"
    params_file = "third.yaml"
    dataset_module = __name__
    dataset_reader = f"{__name__}:ThirdDataset"
    recipe = TaskRecipe(data="data/third_sim", runs="runs/third", generator="generate", dataset={"n_windows": 5})

    def target(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(batch["kind"], np.int64)

    def positions(self, ds: ThirdDataset) -> np.ndarray:
        return np.array([[5.5, 0.0]])


@pytest.fixture
def third(monkeypatch: pytest.MonkeyPatch) -> ThirdTask:
    task = ThirdTask()
    monkeypatch.setitem(TASKS, task.name, task)
    return task


def test_a_third_task_trains_from_its_own_recipe_reader_and_target(third, tmp_path):
    """``train all --task third`` takes the folders of its recipe and ``models_subdir`` and renders
    its dataset with its generator; a split opens with its reader, batches give its target, and the
    head's bounds are checked against its positions.

    Break tried: ``to_torch`` picking the target by data key again (``gt`` else ``label``): KeyError
    'label'; ``open_split`` choosing the reader by format: a SimDataset error; the pipeline's models
    folder from a fixed table: no default for "third"; the bounds check ignoring ``positions``: no error."""
    from admn_ros.core.train.common import open_split, to_torch
    from admn_ros.core.train.config import Stage1Config, TrainConfigError
    from admn_ros.core.train.pipeline import PipelineConfig, _make_dataset, add_pipeline_args
    from admn_ros.core.train.stage1 import build_model_config

    parser = argparse.ArgumentParser()
    add_pipeline_args(parser)
    assert parser.parse_args(["--task", "third"]).task == "third"
    cfg = PipelineConfig(task="third")
    assert (cfg.data, cfg.runs, cfg.models) == ("data/third_sim", "runs/third", "models/third")
    assert cfg.command() == "admn-ros train all --task third"
    cfg.data = str(tmp_path / "d")
    _make_dataset(cfg, lambda msg: None)
    ds = open_split(tmp_path / "d", "train")
    assert isinstance(ds, ThirdDataset) and len(ds) == 5
    _, target = to_torch(ds.batch(np.arange(4)), list(CHANNELS), third)
    assert target.dtype == torch.int64 and target.tolist() == [0, 1, 2, 0]
    mcfg = build_model_config(Stage1Config(data=cfg.data), ds)
    assert (mcfg.task, mcfg.frames, mcfg.n_classes) == ("third", FRAMES, len(CLASSES))
    assert np.allclose(mcfg.bounds, [[-0.2, 6.2], [-1.2, 1.2]])
    with pytest.raises(TrainConfigError, match="falls outside the model's mean bounds"):
        build_model_config(Stage1Config(data=cfg.data, model={"bounds": [[-1.0, 1.0], [-1.0, 1.0]]}), ds)


def test_a_third_windowed_task_gets_its_graph_and_its_window_node(third):
    """The window graph of the third task passes its name, models and parameter file, and the window
    node's ``model_dir: ''`` then means the third task's models (none are shipped: configure names them).

    Break tried: the node loading the first windowed task's models whatever its ``task`` parameter
    (``WINDOW_TASK`` in configure): it came up active on the activity models."""
    import rclpy
    from rclpy.parameter import Parameter

    from admn_ros.core.paths import config_path
    from admn_ros.ros.activity_node import ActivityNode
    from admn_ros.ros.graph import GraphOptions, build_graph

    spec = build_graph(GraphOptions(task="third", sim_sensors=False))[-1]
    assert spec.executable == "activity_node" and spec.parameters["task"] == "third"
    assert spec.parameters["model_dir"] == str(third.models_dir()) and not third.models_dir().exists()
    assert spec.params_files == [str(config_path("third.yaml"))]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = ActivityNode(context=ctx, parameter_overrides=[Parameter("task", value="third"),
                                                              Parameter("backend", value="torch")])
        try:
            assert state_label(node) != "active"
            assert f"{third.models_dir()}: no third models yet" in str(node.configure_error)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)
