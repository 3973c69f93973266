"""The :class:`Task` interface: everything after the fused embedding that differs between tasks
(docs/ARCHITECTURE.md, "Tasks": what each member does).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from admn_ros.core import paths


@dataclass(frozen=True)
class Metric:
    """A task's per-sample metric."""

    name: str                           # error / accuracy
    unit: str                           # cm / %
    lower_is_better: bool
    column: str                         # report CSV columns of a cell's mean and median
    median_column: str
    key: str                            # suffix of validation metric names (val_<key>)
    axis: str                           # plot axis label
    summary: str                        # headline field of a replay summary
    secondary: str = ""                 # another summary field shown next to it

    def fmt(self, value: float) -> str:
        """``4.2 cm`` / ``72.5%``."""
        return f"{value:.1f}{'' if self.unit == '%' else ' '}{self.unit}"

    def describe(self, scores: Sequence[float]) -> str:
        """``mean 4.2 cm, median 3.9 cm, p90 7.0 cm`` (a lower-is-better metric) or ``mean 72.5%``."""
        a = np.asarray(scores, np.float64)
        if not self.lower_is_better:
            return f"mean {self.fmt(a.mean())}"
        return (f"mean {self.fmt(a.mean())}, median {self.fmt(float(np.median(a)))}, "
                f"p90 {self.fmt(float(np.percentile(a, 90)))}")

    def better(self, a: float, b: float) -> bool:
        return a < b if self.lower_is_better else a > b


@dataclass(frozen=True)
class MessageSpec:
    """A ROS message of the graph: ``type`` (``pkg/msg/Name``) on ``topic`` (relative)."""

    type: str
    topic: str


@dataclass
class Scorer:
    """Accumulates per-sample scores of a replay or a live run: :meth:`frame` sees every input
    frame's truth, :meth:`restart` a restarted window, :meth:`add` one output (returns its CSV
    values); :meth:`summary` and :meth:`lines` report."""

    task: "Task"
    scores: list[float] = field(default_factory=list)

    def frame(self, truth: Any) -> None:
        pass

    def restart(self) -> None:
        pass

    def add(self, est: Mapping[str, Any], truth: Any) -> list[Any]:
        if truth is not None:
            self.scores.append(self.task.score(est, truth))
        return self.task.row(est, truth)

    def summary(self) -> dict[str, Any]:
        return {}

    def lines(self, summary: Mapping[str, Any]) -> list[str]:
        return []


class KeysAsAttributes:
    """Mixin: the keys of the dict attribute named ``_KEYS_OF`` read as attributes too
    (``res.mean`` for ``res.estimate["mean"]``)."""

    _KEYS_OF: ClassVar[str] = ""

    def __getattr__(self, name: str) -> Any:
        keys = self.__dict__.get(self._KEYS_OF)
        if keys is not None and name in keys:
            return keys[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or {self._KEYS_OF} key {name!r}")


def fmt(x: Any) -> str:
    """A CSV cell: '' for None / non-finite, else ``%.6g``."""
    if x is None:
        return ""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{v:.6g}" if math.isfinite(v) else ""


class Task:
    """One task: subclass, set the attributes, implement the methods, register an instance
    in :mod:`admn_ros.core.tasks`. Estimates are dicts of numpy values (the keys are the
    task's, e.g. ``mean``/``cov`` or ``probs``/``class_name``); a truth is whatever
    :meth:`read_truth` returns (a position, a label)."""

    name: ClassVar[str] = ""                     # registry name (ADMNConfig.task, --task)
    frames: ClassVar[int] = 1                    # default window length F of a new model
    metric: ClassVar[Metric]
    outputs: ClassVar[tuple[str, ...]] = ()      # fused model outputs, in export order (engine, ONNX)
    output: ClassVar[MessageSpec]                # the estimate as published ...
    truth: ClassVar[MessageSpec]                 # ... and the ground truth it is scored against
    frame_id: ClassVar[str] = "map"              # of the estimate ('' = first sensor node's colour camera)
    model_file: ClassVar[str] = ""               # stage-1 model file in models/<models_subdir>
    models_subdir: ClassVar[str] = ""
    graph: ClassVar[str] = "split"               # "split" (F must be 1) or "window" (one node runs the window)
    budget: ClassVar[int] = 0                    # graph default (0 = 25% of the model's blocks)
    sensor_nodes: ClassVar[tuple[str, ...]] = ("node1",)
    params_file: ClassVar[str] = ""
    mapping: ClassVar[str] = "default"           # bag topic mapping of a replay
    csv_name: ClassVar[str] = "frames.csv"       # per-output replay CSV, and what one output is called
    unit: ClassVar[str] = "frame"
    columns: ClassVar[tuple[str, ...]] = ()      # per-output CSV columns (:meth:`row`)
    dataset_module: ClassVar[str] = ""           # dataset generator (module with main(argv))
    dataset_reader: ClassVar[str] = "admn_ros.core.data:SimDataset"  # a split's reader (module:class(root, split))
    recipe: ClassVar[Any]                        # shipped training recipe (train.config.TaskRecipe)
    report_dir: ClassVar[str] = ""
    compute_targets: ClassVar[bool] = False      # evaluate also checks FLOPs / controller share
    table_title: ClassVar[str] = ""              # evaluation report title; metric text ({frames})
    table_metric: ClassVar[str] = ""
    report_caption: ClassVar[str] = ""           # first line of a replay report

    def models_dir(self) -> Any:
        return paths.models_dir() / self.models_subdir if self.models_subdir else paths.models_dir()

    # The members (docs/ARCHITECTURE.md, "Tasks"); torch only inside the methods.
    def head(self, cfg: Any, dim: int) -> Any:
        """The head module on the pooled fusion embedding ``[B, dim]``."""
        raise NotImplementedError

    def head_forward(self, head: Any, z: Any) -> dict[str, Any]:
        """``{output name: tensor}`` of the head on ``z``."""
        raise NotImplementedError

    def head_flops(self, cfg: Any) -> int:
        raise NotImplementedError

    def loss_per_sample(self, out: Mapping[str, Any], target: Any, nll_weight: float = 1.0,
                        dist_weight: float = 0.05) -> Any:
        """Training loss per sample ``[B]`` (torch)."""
        raise NotImplementedError

    def loss(self, out: Mapping[str, Any], target: Any, nll_weight: float = 1.0, dist_weight: float = 0.05) -> Any:
        return self.loss_per_sample(out, target, nll_weight, dist_weight).mean()

    def scores(self, out: Mapping[str, Any], target: Any) -> Any:
        """Per-sample metric ``[B]`` (torch) in :attr:`metric` units."""
        raise NotImplementedError

    def check_target(self, batch: Mapping[str, Any], cfg: Any) -> str | None:
        """What is wrong with one sample's target (``None`` = fine)."""
        raise NotImplementedError

    def target(self, batch: Mapping[str, Any]) -> np.ndarray:
        """The training targets of a dataset batch (what :meth:`loss_per_sample` compares to)."""
        raise NotImplementedError

    def positions(self, ds: Any) -> np.ndarray:
        """Positions ``[N, 2]`` of a dataset the head's mean bounds (``ADMNConfig.bounds``) must hold."""
        return np.zeros((0, 2))

    def model_overrides(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        """``ADMNConfig`` fields a dataset of this task sets (from its metadata)."""
        return {}

    def dataset_nodes(self, meta: Mapping[str, Any]) -> list[str] | None:
        """The sensor nodes a dataset's metadata declares (``None`` = does not say)."""
        got = meta.get("nodes")
        return None if got is None else list(got)

    def labels(self, cfg: Any, meta: Mapping[str, Any]) -> list[str]:
        return []

    def estimate(self, out: Mapping[str, np.ndarray], labels: Sequence[str]) -> dict[str, Any]:
        """The estimate from one sample's model outputs (numpy, batch axis removed)."""
        raise NotImplementedError

    def check_estimate(self, est: Mapping[str, Any]) -> dict[str, Any]:
        """``est`` with shapes checked and dtypes normalised (``ValueError`` naming the key)."""
        return dict(est)

    def score(self, est: Mapping[str, Any], truth: Any) -> float:
        raise NotImplementedError

    def same(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        """Two estimates agree (real-time vs offline replay)."""
        raise NotImplementedError

    def text(self, est: Mapping[str, Any] | None, truth: Any = None) -> str:
        raise NotImplementedError

    def verdict(self, est: Mapping[str, Any], truth: Any) -> bool | None:
        """Right / wrong against ``truth``; ``None`` without a truth or when the task only scores."""
        return None

    def ranked(self, est: Mapping[str, Any], truth: Any = None) -> list[tuple[str, float, bool]]:
        """Bars to show, highest first: ``(name, value in [0, 1], is the truth)``."""
        return []

    def fill_output(self, msg: Any, est: Mapping[str, Any], window_frames: int = 1,
                    unknown_variance: float = 1.0e6) -> Any:
        """Fill the payload fields of an :attr:`output` message (not the header); returns it."""
        raise NotImplementedError

    def read_output(self, msg: Any) -> dict[str, Any]:
        raise NotImplementedError

    def fill_truth(self, msg: Any, truth: Any, labels: Sequence[str] = ()) -> Any:
        raise NotImplementedError

    def read_truth(self, msg: Any) -> Any:
        raise NotImplementedError

    def bag_truth(self, frame: Any) -> Any:
        """The truth of a :class:`~admn_ros.bags.reader.BagFrame` (``None`` = none)."""
        raise NotImplementedError

    def markers(self, est: Mapping[str, Any], truth: Any = None, label: str = "") -> list[Any]:
        return []

    def row(self, est: Mapping[str, Any], truth: Any) -> list[Any]:
        """Values of :attr:`columns` for one output."""
        raise NotImplementedError

    def scorer(self, frames: int) -> Scorer:
        return Scorer(self)

    def plot_run(self, csv_path: Any, out_dir: Any, run: str) -> None:
        """Write the task's plot of one replay run (its CSV) into ``out_dir``."""

    def simulator(self, *, seed: int = 0, episode: int = 0, rate_hz: float | None = None,
                  subject_id: int | None = None, config_file: str | None = None) -> Any:
        """The simulated scenario: an object with ``stream_ids``, ``rate_hz``, ``step()``,
        ``skip(n)``, ``set_corruption(sid, spec)`` and ``cfg`` (sensor config or ``None``)."""
        raise NotImplementedError

    def sim_truth(self, frame: Any) -> Any:
        raise NotImplementedError

    def sim_labels(self) -> list[str]:
        """Labels the simulator's truths are drawn from (``fill_truth``'s ``labels``)."""
        return []

    def describe_sim(self, sim: Any) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def read_rows(path: Any) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: figures go to files, never to a display."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Any, rect: Sequence[float] | None = None) -> None:
    """Lay out (inside ``rect``, figure fractions; ``None`` = all of it), write (110 dpi) and close a
    matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def set_field(msg: Any, name: str, values: Any, dtype: Any) -> None:
    """Assign a numeric array field as a numpy array of ``dtype`` (what rosbags needs and
    rclpy accepts)."""
    setattr(msg, name, np.ascontiguousarray(np.asarray(values, dtype=dtype).reshape(-1)))
