"""Tracking: the target's 2-D position in the ``map`` frame as a Gaussian, one frame per window.

Head: pooled embedding -> mean bounded to ``ADMNConfig.bounds`` (sigmoid scaled to the box) and
covariance ``L L^T + eps I`` (``L`` lower-triangular, softplus diagonal). Loss: ``nll_weight`` x
Gaussian NLL + ``dist_weight`` x distance (the paper: 1 and 0.05); metric: error in cm.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from admn_ros.core.streams import DEFAULT_NODES
from admn_ros.core.tasks.base import MessageSpec, Metric, Scorer, Task, fmt, read_rows, save_figure, set_field
from admn_ros.core.train.config import TaskRecipe

_EST_RGBA = (0.1, 0.5, 1.0, 0.95)
_GT_RGBA = (0.1, 0.9, 0.2, 0.95)


def gaussian_nll(mean: Any, cov: Any, target: Any) -> Any:
    """Per-sample negative log-likelihood of ``target [B, 2]`` under ``N(mean [B, 2], cov [B, 2, 2])``:
    ``0.5 * (d^T cov^-1 d + log det cov) + log(2 pi)``. Returns ``[B]``."""
    d = target - mean
    a, b, c = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
    det = (a * c - b * b).clamp_min(1e-12)
    quad = (c * d[:, 0] ** 2 - 2.0 * b * d[:, 0] * d[:, 1] + a * d[:, 1] ** 2) / det
    return 0.5 * (quad + det.log()) + math.log(2.0 * math.pi)


def euclidean_distance(mean: Any, target: Any) -> Any:
    """Per-sample ``||mean - target||``: ``[B, 2]`` x ``[B, 2]`` -> ``[B]``."""
    import torch

    return torch.linalg.vector_norm(mean - target, dim=-1)


class _Scorer(Scorer):
    def summary(self) -> dict[str, Any]:
        e = np.asarray(self.scores, np.float64)
        stats = (e.mean(), np.median(e), np.percentile(e, 90), np.sqrt(np.mean(e ** 2))) if e.size else [np.nan] * 4
        return {"frames_with_gt": int(e.size),
                **{k: float(v) for k, v in zip(("mean_error_cm", "median_error_cm", "p90_error_cm", "rmse_cm"), stats)}}

    def lines(self, s: Mapping[str, Any]) -> list[str]:
        return [f"error      mean {s['mean_error_cm']:.1f} cm | median {s['median_error_cm']:.1f} | "
                f"p90 {s['p90_error_cm']:.1f} | rmse {s['rmse_cm']:.1f}"]


class TrackingTask(Task):
    name = "tracking"
    metric = Metric("error", "cm", True, "error_cm", "median_cm", "cm", "error (cm)", "mean_error_cm")
    outputs = ("mean", "cov")
    output = MessageSpec("geometry_msgs/msg/PoseWithCovarianceStamped", "admn/target")
    truth = MessageSpec("geometry_msgs/msg/PointStamped", "ground_truth/target")
    model_file = "tracking.safetensors"
    budget = 27
    sensor_nodes = DEFAULT_NODES
    params_file = "tracking.yaml"
    columns = ("gt_x", "gt_y", "est_x", "est_y", "error_cm", "cov_xx", "cov_xy", "cov_yy")
    dataset_module = "admn_ros.core.data.generate"
    recipe = TaskRecipe(data="data/gdtm_sim", runs="runs/shipped", generator="generate_dataset",
                        dataset={"n_samples": 24000, "frames_per_episode": 50})
    report_dir = "docs/results/table1"
    compute_targets = True
    table_title = "ADMN Table 1 (simulated GDTM-style test split)"
    table_metric = "mean Euclidean localisation error in cm"
    report_caption = "Mean localization error in cm (per-frame pipeline latency in ms, GFLOPs per frame)."

    def head(self, cfg: Any, dim: int) -> Any:
        import torch
        from torch import nn

        (x0, x1), (y0, y1) = cfg.bounds
        lo, hi = torch.tensor([float(x0), float(y0)]), torch.tensor([float(x1), float(y1)])
        if not bool((hi > lo).all()):
            raise ValueError(f"invalid bounds {cfg.bounds}: need min < max on both axes")
        head = nn.Module()
        head.fc1 = nn.Linear(dim, dim)
        head.fc2 = nn.Linear(dim, 5)
        head.register_buffer("lo", lo, persistent=False)
        head.register_buffer("span", hi - lo, persistent=False)
        head.eps = float(cfg.cov_eps)
        return head

    def head_forward(self, head: Any, z: Any) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        raw = head.fc2(F.gelu(head.fc1(z)))  # [B, 5]: mx, my, l11, l22, l21
        mean = head.lo + head.span * torch.sigmoid(raw[:, 0:2])
        l11, l22, l21 = F.softplus(raw[:, 2]), F.softplus(raw[:, 3]), raw[:, 4]
        zero = torch.zeros_like(l11)
        chol = torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)
        cov = chol @ chol.transpose(-1, -2) + head.eps * torch.eye(2, dtype=z.dtype, device=z.device)
        return {"mean": mean, "cov": cov}

    def head_flops(self, cfg: Any) -> int:
        d = cfg.fusion_dim
        return 2 * (d * d + d * 5 + 8)  # MLP + 2x2 L L^T

    def loss_per_sample(self, out: Mapping[str, Any], target: Any, nll_weight: float = 1.0,
                        dist_weight: float = 0.05) -> Any:
        loss = dist_weight * euclidean_distance(out["mean"], target)
        if nll_weight > 0:
            loss = loss + nll_weight * gaussian_nll(out["mean"], out["cov"], target)
        return loss

    def scores(self, out: Mapping[str, Any], target: Any) -> Any:
        return euclidean_distance(out["mean"].detach(), target) * 100.0

    def check_target(self, batch: Mapping[str, Any], cfg: Any) -> str | None:
        got = tuple(np.shape(batch["gt"])) if "gt" in batch else None
        return None if got == (1, 2) else f"dataset ground truth 'gt' must have shape [B, 2], got {got}"

    def target(self, batch: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(batch["gt"], np.float32)

    def positions(self, ds: Any) -> np.ndarray:
        gt = getattr(ds, "gt", None)  # SimDataset exposes the memory-mapped ground truth; else a sample's
        gt = ds.batch(np.arange(min(len(ds), 256))).get("gt") if gt is None else gt
        return np.zeros((0, 2)) if gt is None else np.asarray(gt)

    def estimate(self, out: Mapping[str, np.ndarray], labels: Sequence[str]) -> dict[str, Any]:
        return {"mean": np.asarray(out["mean"], np.float64).reshape(2),
                "cov": np.asarray(out["cov"], np.float64).reshape(2, 2)}

    def check_estimate(self, est: Mapping[str, Any]) -> dict[str, Any]:
        mean = np.asarray(est.get("mean"), np.float64).reshape(-1)
        cov = np.asarray(est.get("cov"), np.float64)
        if mean.shape != (2,):
            raise ValueError(f"estimate 'mean' must have shape (2,), got {np.shape(est.get('mean'))}")
        if cov.shape != (2, 2):
            raise ValueError(f"estimate 'cov' must have shape (2, 2), got {cov.shape}")
        return {**est, "mean": mean, "cov": cov}

    def score(self, est: Mapping[str, Any], truth: Any) -> float:
        return float(np.linalg.norm(np.asarray(est["mean"], np.float64) - np.asarray(truth, np.float64))) * 100.0

    def same(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        return bool(np.allclose(a["mean"], b["mean"], atol=1e-3))

    def text(self, est: Mapping[str, Any] | None, truth: Any = None) -> str:
        if est is None:
            return "no target yet"
        m = est["mean"]
        err = f", err {self.score(est, truth):.1f} cm" if truth is not None else ""
        return f"x {m[0]:+.2f} y {m[1]:+.2f} m{err}"

    def fill_output(self, msg: Any, est: Mapping[str, Any], window_frames: int = 1,
                    unknown_variance: float = 1.0e6) -> Any:
        p = msg.pose.pose
        p.position.x, p.position.y, p.position.z = float(est["mean"][0]), float(est["mean"][1]), 0.0
        p.orientation.x = p.orientation.y = p.orientation.z = 0.0
        p.orientation.w = 1.0
        c = np.zeros((6, 6), np.float64)
        c[:2, :2] = np.asarray(est["cov"], np.float64).reshape(2, 2)
        c[[2, 3, 4, 5], [2, 3, 4, 5]] = float(unknown_variance)
        set_field(msg.pose, "covariance", c, np.float64)
        return msg

    def read_output(self, msg: Any) -> dict[str, Any]:
        p = msg.pose.pose.position
        return {"mean": np.array([p.x, p.y], np.float64),
                "cov": np.asarray(msg.pose.covariance, np.float64).reshape(6, 6)[:2, :2].copy()}

    def fill_truth(self, msg: Any, truth: Any, labels: Sequence[str] = ()) -> Any:
        msg.point.x, msg.point.y, msg.point.z = float(truth[0]), float(truth[1]), 0.0
        return msg

    def read_truth(self, msg: Any) -> np.ndarray:
        return np.array([msg.point.x, msg.point.y], np.float64)

    def bag_truth(self, frame: Any) -> Any:
        return frame.gt_xy

    def markers(self, est: Mapping[str, Any], truth: Any = None, label: str = "") -> list[Any]:
        from admn_ros.core.viz import MarkerSpec, cov_ellipse, line_marker, text_marker

        mean, cov = np.asarray(est["mean"], np.float64), np.asarray(est["cov"], np.float64)
        out = [MarkerSpec("estimate", 0, "SPHERE", (mean[0], mean[1], 0.05), (0.1, 0.1, 0.1), _EST_RGBA)]
        if np.all(np.isfinite(cov)):
            out.append(line_marker("covariance_2sigma", 0, cov_ellipse(mean, cov), 0.02, 0.015, _EST_RGBA))
        if truth is not None:
            g = np.asarray(truth, np.float64).reshape(2)
            label = f"{label}  err {self.score(est, g):.1f} cm".strip()
            out.append(MarkerSpec("ground_truth", 0, "SPHERE", (g[0], g[1], 0.05), (0.08, 0.08, 0.08), _GT_RGBA))
            out.append(MarkerSpec("error", 0, "LINE_LIST", scale=(0.01, 0, 0), rgba=(1, 1, 1, 0.8),
                                  points=[(mean[0], mean[1], 0.05), (g[0], g[1], 0.05)]))
        if label:
            out.append(text_marker("label", 0, (mean[0], mean[1], 0.35), 0.12, label))
        return out

    def row(self, est: Mapping[str, Any], truth: Any) -> list[Any]:
        gt = (None, None) if truth is None else truth
        m, c = est["mean"], est["cov"]
        err = None if truth is None else self.score(est, truth)
        return [fmt(gt[0]), fmt(gt[1]), fmt(m[0]), fmt(m[1]), fmt(err), fmt(c[0, 0]), fmt(c[0, 1]), fmt(c[1, 1])]

    def scorer(self, frames: int) -> Scorer:
        return _Scorer(self)

    def plot_run(self, csv_path: Any, out_dir: Any, run: str) -> None:
        """``trajectory.png``: the estimates vs the ground truth in the map frame."""
        import matplotlib.pyplot as plt

        rows = read_rows(csv_path)
        col = {k: [float(r[k]) if r[k] else np.nan for r in rows] for k in ("gt_x", "gt_y", "est_x", "est_y")}
        fig, ax = plt.subplots(figsize=(5, 5.5))
        ax.plot(col["gt_x"], col["gt_y"], "g-", lw=1.5, label="ground truth")
        ax.plot(col["est_x"], col["est_y"], "r.", ms=2, label=run)
        ax.set(aspect="equal", xlabel="x (m, map)", ylabel="y (m, map)")
        ax.legend()
        save_figure(fig, Path(out_dir) / "trajectory.png")

    def simulator(self, *, seed: int = 0, episode: int = 0, rate_hz: float | None = None,
                  subject_id: int | None = None, config_file: str | None = None) -> Any:
        from admn_ros.core.sim import GDTMSimulator, load_sim_config

        if subject_id:
            raise ValueError("the tracking scenario has no subject (subject_id is for the activity scenario)")
        cfg = load_sim_config(config_file)
        if rate_hz and abs(float(rate_hz) - float(cfg.rate_hz)) > 1e-9:
            cfg = replace(cfg, rate_hz=float(rate_hz))
        return GDTMSimulator(cfg, seed=int(seed), episode=int(episode))

    def sim_truth(self, frame: Any) -> np.ndarray:
        return np.asarray(frame.gt_xy, np.float64)

    def describe_sim(self, sim: Any) -> str:
        return f"config {sim.cfg.source or 'built-in'}"
