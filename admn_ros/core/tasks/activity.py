"""Activity recognition: a class label per sliding window of ``F`` frames, scored against the true
label at the window's newest frame; a *pure* window (all ``F`` frames of one activity) is also scored
on its own.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from admn_ros.core.tasks.base import MessageSpec, Metric, Scorer, Task, read_rows, save_figure, set_field
from admn_ros.core.train.config import FINETUNE_STAGE1, TaskRecipe

#: Default subject of a simulated recording: an id no dataset of ours trains on (datasets
#: use ids ``0 .. subjects-1``), i.e. a person the shipped models never saw.
UNSEEN_SUBJECT = 1000


@dataclass
class _Scorer(Scorer):
    """Accuracy over windows with a truth, over *pure* windows, per class, mean confidence."""

    frames: int = 1
    truths: deque = field(default_factory=deque)
    pure: list[bool] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    per_class: dict[str, list[bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.truths = deque(maxlen=self.frames)

    def frame(self, truth: Any) -> None:
        self.truths.append(truth)

    def restart(self) -> None:
        self.truths.clear()

    def add(self, est: Mapping[str, Any], truth: Any) -> list[Any]:
        is_pure = truth is not None and len(self.truths) == self.frames and len(set(self.truths)) == 1
        hit = None
        if truth is not None:
            hit = est["class_name"] == truth
            self.scores.append(100.0 * hit)
            self.per_class.setdefault(truth, []).append(hit)
            if is_pure:
                self.pure.append(hit)
        self.conf.append(float(est["confidence"]))
        return [truth or "", est["class_name"], f"{est['confidence']:.4f}", "" if hit is None else int(hit),
                int(is_pure)]

    def summary(self) -> dict[str, Any]:
        nan = float("nan")
        return {"windows_with_gt": len(self.scores), "pure_windows": len(self.pure),
                "accuracy_pct": float(np.mean(self.scores)) if self.scores else nan,
                "pure_accuracy_pct": 100.0 * float(np.mean(self.pure)) if self.pure else nan,
                "mean_confidence": float(np.mean(self.conf)) if self.conf else nan,
                "per_class_accuracy_pct": {k: 100.0 * float(np.mean(v)) for k, v in sorted(self.per_class.items())}}

    def lines(self, s: Mapping[str, Any]) -> list[str]:
        per_class = ", ".join(f"{k} {v:.0f}" for k, v in s["per_class_accuracy_pct"].items())
        acc = (f"accuracy   {s['accuracy_pct']:.1f}% | inside one activity {s['pure_accuracy_pct']:.1f}% | "
               f"mean confidence {s['mean_confidence']:.2f}" if s["windows_with_gt"] else
               f"accuracy   n/a: no ground-truth label matched a window (topic of the mapping's ground_truth "
               f"absent?); mean confidence {s['mean_confidence']:.2f}")
        return [f"truth      {s['windows_with_gt']} windows with ground truth, {s['pure_windows']} inside one "
                "activity", acc, f"per class  {per_class or '-'}"]


class ActivityTask(Task):
    name = "activity"
    frames = 5
    metric = Metric("accuracy", "%", False, "accuracy_pct", "median_pct", "acc", "accuracy (%)", "accuracy_pct",
                    "pure_accuracy_pct")
    outputs = ("logits",)
    output = MessageSpec("admn_ros/msg/ActivityLabel", "admn/activity")
    truth = MessageSpec("admn_ros/msg/ActivityLabel", "ground_truth/activity")
    frame_id = "node1_color_optical_frame"
    model_file = "activity.safetensors"
    models_subdir = "activity"
    graph = "window"
    params_file = "activity.yaml"
    mapping = "activity"
    csv_name = "windows.csv"
    unit = "window"
    columns = ("gt_label", "est_label", "confidence", "correct", "pure")
    dataset_module = "admn_ros.core.data.activity"
    dataset_reader = "admn_ros.core.data.activity:ActivityDataset"
    # every modality sees the window, so each drops out in stage 1 (a clean backbone can replace a noisy one)
    recipe = TaskRecipe(data="data/activity_sim", runs="runs/activity", generator="generate_activity_dataset",
                        dataset={"n_subjects": 100, "windows_per_activity": 8, "frames": 5},
                        stage1={"epochs": 14, "modality_missing": {"rgb": 0.2, "depth": 0.2, "radar": 0.2}},
                        finetune_epochs=4, stage2={"train_samples": 2400}, init_stage1={**FINETUNE_STAGE1, "epochs": 3})
    report_dir = "docs/results/activity"
    table_title = "ADMN activity recognition (simulated MM-Fi-style test split)"
    table_metric = "accuracy in % over windows of {frames} frames (one allocation per window and stream)"
    report_caption = ("Accuracy in % of windows, scored against the true activity at each window's newest frame "
                      "(then: accuracy on the windows inside one activity, per-frame pipeline latency in ms, "
                      "GFLOPs per window).")

    def head(self, cfg: Any, dim: int) -> Any:
        from torch import nn

        return nn.Sequential(OrderedDict(norm=nn.LayerNorm(dim), fc=nn.Linear(dim, int(cfg.n_classes))))

    def head_forward(self, head: Any, z: Any) -> dict[str, Any]:
        return {"logits": head(z)}

    def head_flops(self, cfg: Any) -> int:
        return 2 * cfg.fusion_dim * cfg.n_classes

    def loss_per_sample(self, out: Mapping[str, Any], target: Any, nll_weight: float = 1.0,
                        dist_weight: float = 0.05) -> Any:
        import torch.nn.functional as F

        return F.cross_entropy(out["logits"], target, reduction="none")

    def scores(self, out: Mapping[str, Any], target: Any) -> Any:
        return (out["logits"].detach().argmax(-1) == target).float() * 100.0

    def check_target(self, batch: Mapping[str, Any], cfg: Any) -> str | None:
        lab = np.asarray(batch.get("label", np.zeros(0)))
        if lab.shape != (1,) or not (0 <= int(lab[0]) < cfg.n_classes):
            return f"dataset 'label' must be [B] class indices in [0, {cfg.n_classes}), got {lab.tolist()}"
        return None

    def target(self, batch: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(batch["label"], np.int64)

    def model_overrides(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        # the dataset's "nodes" are its frame slots (f0..); the model's node is the sensor node
        return {"nodes": [meta.get("sensor_node") or self.sensor_nodes[0]], "task": self.name,
                "frames": int(meta.get("frames", self.frames)), "n_classes": len(meta.get("classes", [])) or 1}

    def dataset_nodes(self, meta: Mapping[str, Any]) -> list[str] | None:
        return [meta["sensor_node"]] if meta.get("sensor_node") else None

    def labels(self, cfg: Any, meta: Mapping[str, Any]) -> list[str]:
        names = [str(c) for c in meta.get("classes") or []]
        return names if len(names) == cfg.n_classes else [f"class_{k}" for k in range(cfg.n_classes)]

    def estimate(self, out: Mapping[str, np.ndarray], labels: Sequence[str]) -> dict[str, Any]:
        z = np.asarray(out["logits"], np.float64).reshape(-1)
        e = np.exp(z - z.max())
        probs = (e / e.sum()).astype(np.float32)
        k = int(probs.argmax())
        return {"probs": probs, "class_id": k, "class_name": labels[k], "confidence": float(probs[k]),
                "classes": list(labels)}

    def check_estimate(self, est: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("class_name", "confidence"):
            if key not in est:
                raise ValueError(f"estimate lacks {key!r}")
        return dict(est)

    def score(self, est: Mapping[str, Any], truth: Any) -> float:
        return 100.0 * float(est["class_name"] == truth)

    def same(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        return a["class_name"] == b["class_name"]

    def text(self, est: Mapping[str, Any] | None, truth: Any = None) -> str:
        t = "no window yet" if est is None else f"{est['class_name']} {est['confidence']:.2f}"
        if truth is not None:
            t += f" (truth {truth})"
        return t

    def verdict(self, est: Mapping[str, Any], truth: Any) -> bool | None:
        return None if truth is None else est["class_name"] == truth

    def ranked(self, est: Mapping[str, Any], truth: Any = None) -> list[tuple[str, float, bool]]:
        p = np.asarray(est["probs"], np.float64)
        return [(est["classes"][i], float(p[i]), est["classes"][i] == truth) for i in np.argsort(-p, kind="stable")]

    def fill_output(self, msg: Any, est: Mapping[str, Any], window_frames: int = 1,
                    unknown_variance: float = 1.0e6) -> Any:
        """The top class, and every class with its score in score order (ties by class index);
        ``ValueError`` for mismatched sizes or a non-finite or negative probability."""
        names = [str(c) for c in est["classes"]]
        p = np.asarray(est["probs"], dtype=np.float64).reshape(-1)
        if p.shape != (len(names),) or not names:
            raise ValueError(f"{p.size} probabilities for {len(names)} classes")
        if not np.isfinite(p).all() or (p < 0).any():
            raise ValueError("class probabilities must be finite and >= 0")
        order = np.argsort(-p, kind="stable")
        msg.class_id, msg.class_name, msg.confidence = int(order[0]), names[int(order[0])], float(p[order[0]])
        msg.class_names = [names[int(i)] for i in order]
        set_field(msg, "scores", p[order], np.float32)
        msg.window_frames = int(window_frames)
        return msg

    def read_output(self, msg: Any) -> dict[str, Any]:
        classes, probs = [str(c) for c in msg.class_names], np.asarray(msg.scores, np.float32).reshape(-1)
        if len(classes) != probs.size:
            raise ValueError(f"ActivityLabel has {len(classes)} class_names but {probs.size} scores")
        return {"class_name": str(msg.class_name), "confidence": float(msg.confidence), "class_id": int(msg.class_id),
                "classes": classes, "probs": probs}

    def fill_truth(self, msg: Any, truth: Any, labels: Sequence[str] = ()) -> Any:
        names = [str(c) for c in labels]
        if truth not in names:
            names.append(str(truth))
        onehot = {"classes": names, "probs": [float(c == truth) for c in names]}
        return self.fill_output(msg, onehot, window_frames=1)

    def read_truth(self, msg: Any) -> str:
        return str(msg.class_name)

    def bag_truth(self, frame: Any) -> Any:
        return frame.gt_label

    def markers(self, est: Mapping[str, Any], truth: Any = None, label: str = "") -> list[Any]:
        from admn_ros.core.viz import text_marker

        text = (f"{label}: " if label else "") + f"{est['class_name']} ({est['confidence']:.2f})" + (
            f"  truth {truth}" if truth is not None else "")
        ok = truth is None or truth == est["class_name"]
        return [text_marker("activity", 0, (0.0, 0.0, 1.0), 0.12, text, (1, 1, 1, 1) if ok else (1.0, 0.35, 0.3, 1.0))]

    def scorer(self, frames: int) -> Scorer:
        return _Scorer(self, frames=int(frames))

    def plot_run(self, csv_path: Any, out_dir: Any, run: str) -> None:
        """``labels.png``: estimated vs true activity of every window over time."""
        import matplotlib.pyplot as plt

        rows = read_rows(csv_path)
        if not rows:
            return
        names = sorted({r["gt_label"] for r in rows if r["gt_label"]} | {r["est_label"] for r in rows})
        idx = {n: k for k, n in enumerate(names)}
        t = np.array([float(r["stamp_s"]) for r in rows])
        t -= t[0]
        fig, ax = plt.subplots(figsize=(9, 4))
        gt = [(tt, idx[r["gt_label"]]) for tt, r in zip(t, rows) if r["gt_label"]]
        if gt:
            ax.plot(*zip(*gt), "g-", lw=3, alpha=0.5, label="true activity")
        ok = np.array([r["correct"] == "1" for r in rows])
        est = np.array([idx[r["est_label"]] for r in rows])
        ax.plot(t[ok], est[ok], "b.", ms=4, label="estimate (right)")
        ax.plot(t[~ok], est[~ok], "rx", ms=4, label="estimate (wrong)")
        ax.set_yticks(range(len(names)), names)
        ax.set(xlabel="time (s)", title=f"{run}: activity per window")
        ax.legend(fontsize=7, loc="upper right")
        save_figure(fig, Path(out_dir) / "labels.png")

    def simulator(self, *, seed: int = 0, episode: int = 0, rate_hz: float | None = None,
                  subject_id: int | None = None, config_file: str | None = None) -> Any:
        from admn_ros.core.sim.activity import ActivitySimulator, draw_subject

        if config_file:
            raise ValueError("the activity scenario has no sensor config file (config_file is for tracking)")
        subject = UNSEEN_SUBJECT if subject_id is None else int(subject_id)
        return ActivitySimulator(draw_subject(int(seed), subject), seed=int(seed), episode=int(episode),
                                 rate_hz=float(rate_hz or 10.0))

    def sim_truth(self, frame: Any) -> str:
        return str(frame.label)

    def sim_labels(self) -> list[str]:
        from admn_ros.core.sim.activity import ACTIVITIES

        return list(ACTIVITIES)

    def describe_sim(self, sim: Any) -> str:
        return f"scenario=activity subject_id={sim.subject.subject_id}"
