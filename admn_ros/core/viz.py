"""Visual geometry for RViz markers and the dashboard image (rclpy-free): the viz node turns these
primitives into ``visualization_msgs/Marker``s and the dashboard draws the same ones with OpenCV.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from admn_ros.core.streams import MODALITIES, split_stream_id

RGBA = tuple[float, float, float, float]
_SHORT = {"rgb": "C", "depth": "D", "radar": "R"}  # colour camera, depth, radar

#: Base colour per modality for labels (RGB in [0, 1]).
MODALITY_COLOR: dict[str, tuple[float, float, float]] = {
    "rgb": (0.95, 0.75, 0.1), "depth": (0.2, 0.6, 1.0), "radar": (0.8, 0.3, 0.9)}


def _rgb255(rgb: Sequence[float]) -> tuple[int, int, int]:
    return (int(255 * rgb[0]), int(255 * rgb[1]), int(255 * rgb[2]))


def qoi_color(sigma: float, modality: str, alpha: float = 0.9) -> RGBA:
    """Green for a clean stream, through yellow, to red at the modality's ``sigma_max``;
    grey when the noise is unknown (NaN)."""
    if sigma is None or not np.isfinite(sigma):
        return (0.6, 0.6, 0.6, alpha)
    q = float(np.clip(sigma / MODALITIES[modality].sigma_max, 0.0, 1.0))
    return (min(1.0, 2 * q), min(1.0, 2 * (1 - q)), 0.1, alpha)


def cov_ellipse(mean: Sequence[float], cov: np.ndarray, n_std: float = 2.0, n: int = 48) -> np.ndarray:
    """Points ``(n, 2)`` of the ``n_std`` ellipse of a 2-D Gaussian (metres)."""
    cov = np.asarray(cov, dtype=np.float64).reshape(2, 2)
    cov = 0.5 * (cov + cov.T)
    w, v = np.linalg.eigh(cov)
    w = np.sqrt(np.clip(w, 0.0, None)) * n_std
    t = np.linspace(0, 2 * np.pi, n, endpoint=True)
    circle = np.stack([np.cos(t) * w[0], np.sin(t) * w[1]], axis=1)
    return circle @ v.T + np.asarray(mean, dtype=np.float64).reshape(1, 2)


@dataclass
class MarkerSpec:
    """One RViz marker, independent of the message library (the ROS nodes and the bag writer make
    it a ``visualization_msgs/Marker``, action ADD, identity orientation); ``kind`` is a Marker
    type name (``SPHERE``, ``LINE_STRIP``, ...); ``points`` ``(x, y, z)`` in the marker's frame."""

    ns: str
    id: int
    kind: str
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rgba: RGBA = (1.0, 1.0, 1.0, 1.0)
    points: Sequence[tuple[float, float, float]] = ()
    text: str = ""
    persistent: bool = False     # kept until replaced (no lifetime), e.g. the static scene


def line_marker(ns: str, mid: int, pts: Sequence[Sequence[float]], z: float, width: float, rgba: RGBA,
                persistent: bool = False) -> MarkerSpec:
    """A LINE_STRIP through ``pts`` (``(x, y)``) at height ``z``."""
    return MarkerSpec(ns, mid, "LINE_STRIP", scale=(float(width), 0.0, 0.0), rgba=rgba,
                      points=[(float(p[0]), float(p[1]), float(z)) for p in pts], persistent=persistent)


def text_marker(ns: str, mid: int, xyz: Sequence[float], size: float, text: str,
                rgba: RGBA = (1.0, 1.0, 1.0, 1.0)) -> MarkerSpec:
    return MarkerSpec(ns, mid, "TEXT_VIEW_FACING", tuple(map(float, xyz)), (0.0, 0.0, float(size)), rgba, text=text)


def bar_markers(bars: Sequence["Bar"], node_xy: dict[str, tuple[float, float]], bar_height: float = 0.6,
                bar_width: float = 0.09) -> list[MarkerSpec]:
    """Per stream its allocation bar (``allocation_bars``: height = active blocks / depth x
    ``bar_height``, QoI colour), a faint full-height bar behind it (``allocation_capacity``)
    and its label in a list under its node (``allocation_text``)."""
    out: list[MarkerSpec] = []
    per_node: dict[str, int] = {}
    for k, b in enumerate(bars):
        h = max(b.blocks / max(b.depth, 1) * bar_height, 0.005)
        node = split_stream_id(b.stream_id)[0]
        j = per_node[node] = per_node.get(node, -1) + 1
        nx, ny = node_xy.get(node, b.xy)
        out += [MarkerSpec("allocation_capacity", k, "CUBE", (b.xy[0], b.xy[1], bar_height / 2),
                           (bar_width, bar_width, bar_height), (0.8, 0.8, 0.8, 0.15)),
                MarkerSpec("allocation_bars", k, "CUBE", (b.xy[0], b.xy[1], h / 2), (bar_width, bar_width, h), b.color),
                text_marker("allocation_text", k, (nx, ny - 0.36 - 0.13 * j, 0.02), 0.1, b.label)]
    return out


@dataclass
class Bar:
    """A vertical bar standing at ``xy`` (map frame): one stream's active blocks."""

    stream_id: str
    xy: tuple[float, float]
    blocks: int
    depth: int
    color: RGBA
    label: str


def allocation_bars(stream_ids: Sequence[str], mask: np.ndarray, est_noise: Sequence[float] | None,
                    node_xy: dict[str, tuple[float, float]], spacing: float = 0.12,
                    present: Sequence[bool] | None = None) -> list[Bar]:
    """One bar per stream, grouped at its sensor node's position (modalities side by side),
    coloured by estimated QoI, labelled ``rgb 5/12 s=0.3``."""
    mask = np.asarray(mask, dtype=bool)
    bars: list[Bar] = []
    by_node: dict[str, list[int]] = {}
    for i, sid in enumerate(stream_ids):
        by_node.setdefault(split_stream_id(sid)[0], []).append(i)
    for node, idx in by_node.items():
        cx, cy = node_xy.get(node, (0.0, 0.0))
        for j, i in enumerate(idx):
            _, mod = split_stream_id(stream_ids[i])
            sigma = float(est_noise[i]) if est_noise is not None and len(est_noise) > i else float("nan")
            alive = True if present is None else bool(present[i])
            off = (j - (len(idx) - 1) / 2) * spacing
            label = f"{mod} {int(mask[i].sum())}/{mask.shape[1]}" + (
                f" s={sigma:.2f}" if np.isfinite(sigma) else "") + ("" if alive else " MISSING")
            bars.append(Bar(stream_ids[i], (cx + off, cy), int(mask[i].sum()), mask.shape[1],
                            qoi_color(sigma, mod) if alive else (0.3, 0.3, 0.3, 0.9), label))
    return bars


@dataclass
class VizState:
    """What the map view shows (markers and dashboard); ``allocation`` is a decoded
    ``LayerAllocation`` (``stream_ids``, ``mask``, ``estimated_noise``, ``present``, ``budget``,
    ``controller``)."""

    track_bounds: tuple[float, float, float, float]            # x_min, x_max, y_min, y_max
    node_xy: dict[str, tuple[float, float]]
    allocation: Any = None
    estimate: tuple[float, float] | None = None
    cov: np.ndarray | None = None
    trail: deque = field(default_factory=lambda: deque(maxlen=150))
    ground_truth: tuple[float, float] | None = None
    gt_trail: deque = field(default_factory=lambda: deque(maxlen=150))
    error_m: float | None = None

    def bars(self, spacing: float = 0.12) -> list[Bar]:
        a = self.allocation
        return [] if a is None else allocation_bars(a.stream_ids, a.mask, a.estimated_noise, self.node_xy, spacing,
                                                    a.present)

    def title(self) -> str:
        a = self.allocation
        t = f"L={a.budget} [{a.controller}]" if a is not None else "no allocation yet"
        if self.error_m is not None:
            t += f"  err {100 * self.error_m:.1f} cm"
        return t


def scene_markers(state: VizState, bar_height: float = 0.6) -> list[MarkerSpec]:
    """The map scene of ``state``: track, sensor nodes, allocation bars, estimate, ground truth, status."""
    x0, x1, y0, y1 = state.track_bounds
    out = [line_marker("track", 0, [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], 0.0, 0.03,
                       (0.7, 0.7, 0.7, 1.0), persistent=True)]
    for k, (node, (x, y)) in enumerate(sorted(state.node_xy.items())):
        out += [MarkerSpec("sensor_nodes", k, "CYLINDER", (x, y, 0.01), (0.5, 0.5, 0.02), (0.35, 0.35, 0.4, 0.8),
                           persistent=True),
                MarkerSpec("sensor_nodes", 100 + k, "TEXT_VIEW_FACING", (x, y + 0.36, 0.05), (0, 0, 0.14),
                           (0.9, 0.9, 0.9, 1.0), text=node, persistent=True)]
    out += bar_markers(state.bars(spacing=0.09 * 1.4), state.node_xy, bar_height)
    if state.estimate is not None:
        mx, my = state.estimate
        out.append(MarkerSpec("estimate", 0, "SPHERE", (mx, my, 0.06), (0.12, 0.12, 0.12), (1.0, 0.55, 0.0, 1.0)))
        if state.cov is not None:
            out.append(line_marker("estimate_cov", 0, cov_ellipse((mx, my), state.cov, n_std=2.0), 0.02, 0.02,
                                   (1.0, 0.7, 0.1, 0.9)))
    if len(state.trail) > 1:
        out.append(line_marker("estimate_trail", 0, state.trail, 0.01, 0.015, (1.0, 0.55, 0.0, 0.6)))
    if state.ground_truth is not None:
        gx, gy = state.ground_truth
        out.append(MarkerSpec("ground_truth", 0, "SPHERE", (gx, gy, 0.06), (0.1, 0.1, 0.1), (0.1, 0.9, 0.2, 1.0)))
    if len(state.gt_trail) > 1:
        out.append(line_marker("ground_truth_trail", 0, state.gt_trail, 0.005, 0.01, (0.1, 0.9, 0.2, 0.5)))
    y_low = min([y0] + [xy[1] for xy in state.node_xy.values()])
    out.append(text_marker("status", 0, ((x0 + x1) / 2, y_low - 0.9, 0.0), 0.16, state.title()))
    return out


def render_dashboard(state: VizState, width: int = 640, height: int = 480) -> np.ndarray:
    """Top-down rgb8 image: track, sensors, estimate with 2-sigma ellipse and trail,
    ground truth, and a bar chart of per-stream blocks coloured by QoI."""
    img = np.full((height, width, 3), 32, np.uint8)
    map_w = int(width * 0.55)
    x0, x1, y0, y1 = state.track_bounds
    scale = min((map_w - 40) / (x1 - x0 + 1.0), (height - 60) / (y1 - y0 + 1.0))
    ox, oy = 20 + 0.5 * scale, height - 20 - 0.5 * scale

    def px(xy) -> tuple[int, int]:
        return int(round(ox + (xy[0] - x0) * scale)), int(round(oy - (xy[1] - y0) * scale))

    cv2.rectangle(img, px((x0, y0)), px((x1, y1)), (90, 90, 90), 2)
    for node, xy in (state.node_xy or {}).items():
        cv2.circle(img, px(xy), 6, (200, 200, 200), -1)
        cv2.putText(img, node, (px(xy)[0] + 8, px(xy)[1] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1)
    if len(state.trail) > 1:
        cv2.polylines(img, [np.array([px(p) for p in state.trail], np.int32)], False, (0, 140, 255), 1)
    if state.ground_truth is not None:
        cv2.drawMarker(img, px(state.ground_truth), (0, 255, 0), cv2.MARKER_CROSS, 14, 2)
    if state.estimate is not None:
        if state.cov is not None:
            ell = np.array([px(p) for p in cov_ellipse(state.estimate, state.cov)], np.int32)
            cv2.polylines(img, [ell], True, (255, 160, 0), 1)
        cv2.circle(img, px(state.estimate), 5, (255, 120, 0), -1)
    bars = state.bars()
    x0, y0, y1 = map_w + 10, 40, height - 30
    if bars:
        bw = max(4, (width - x0 - 10) // len(bars) - 4)
        depth = max(b.depth for b in bars)
        for k, b in enumerate(bars):
            x = x0 + k * (bw + 4)
            h = int((y1 - y0) * b.blocks / max(depth, 1))
            cv2.rectangle(img, (x, y1 - h), (x + bw, y1), _rgb255(b.color), -1)
            cv2.rectangle(img, (x, y0), (x + bw, y1), (80, 80, 80), 1)
            cv2.putText(img, str(b.blocks), (x, y1 - h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (230, 230, 230), 1)
            node, mod = split_stream_id(b.stream_id)
            cv2.putText(img, f"{node[-1]}{_SHORT[mod]}", (x, y1 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        _rgb255(MODALITY_COLOR[mod]), 1)
    cv2.putText(img, state.title(), (10, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return img
