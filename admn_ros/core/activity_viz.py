"""What the activity node shows (rclpy-free): the label, per-class scores, per-stream
layer use and which (frame, stream) tokens of the window had data.

:class:`ActivityView` is filled from an :class:`~admn_ros.core.activity_runtime.ActivityResult`
(plus the ground truth when known); the ROS node turns it into RViz markers and
:func:`render_activity_dashboard` draws the same content as an rgb image, so RViz and an
image viewer show one description (as :mod:`admn_ros.core.viz` does for tracking).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from admn_ros.core.streams import DEPTH, split_stream_id
from admn_ros.core.viz import MODALITY_COLOR, qoi_color

_SHORT = {"rgb": "C", "depth": "D", "radar": "R"}


@dataclass
class ActivityView:
    """One window's result as displayed.

    Attributes:
        classes: class names (model index order).
        probs: float ``[K]`` class probabilities, or ``None`` before the first window.
        class_name / confidence: the top class and its probability.
        truth: the ground-truth activity at the window's newest frame (``None`` = unknown).
        stream_ids: the streams, in allocation order.
        mask: bool ``[n, depth]`` allocation of the window.
        est_noise: float ``[n]`` estimated noise per stream (NaN = unknown).
        present: bool ``[n]`` stream had data in the window (allocation).
        tokens: bool ``[F, n]`` (frame, stream) tokens with data and blocks.
        budget / controller: of the allocation.
        accuracy: running fraction of windows whose label matched the truth (``None`` = no truth).
        title: extra text (e.g. the node name).
    """

    classes: list[str]
    stream_ids: list[str]
    probs: np.ndarray | None = None
    class_name: str = ""
    confidence: float = float("nan")
    truth: str | None = None
    mask: np.ndarray | None = None
    est_noise: np.ndarray | None = None
    present: np.ndarray | None = None
    tokens: np.ndarray | None = None
    budget: int = 0
    controller: str = ""
    accuracy: float | None = None
    title: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_result(cls, res: Any, stream_ids: Sequence[str], truth: str | None = None,
                    accuracy: float | None = None, title: str = "") -> "ActivityView":
        """From an :class:`~admn_ros.core.activity_runtime.ActivityResult`."""
        a = res.allocation
        return cls(list(res.classes), list(stream_ids), np.asarray(res.probs, np.float64), res.class_name,
                   float(res.confidence), truth, np.asarray(a.mask, bool), np.asarray(a.est_noise, np.float64),
                   np.asarray(a.present, bool), np.asarray(res.present, bool), int(a.budget), str(a.controller),
                   accuracy, title)

    @property
    def blocks(self) -> np.ndarray:
        """Active blocks per stream, int ``[n]`` (zeros before the first window)."""
        if self.mask is None:
            return np.zeros(len(self.stream_ids), int)
        return np.asarray(self.mask, bool).sum(axis=1)

    @property
    def depth(self) -> int:
        return int(self.mask.shape[1]) if self.mask is not None else DEPTH

    def ranked(self, top: int | None = None) -> list[tuple[str, float]]:
        """``(class, probability)`` in score order (highest first; ties by class index)."""
        if self.probs is None:
            return []
        order = np.argsort(-np.asarray(self.probs), kind="stable")
        out = [(self.classes[i], float(self.probs[i])) for i in order]
        return out[:top] if top else out

    def label_text(self) -> str:
        """``walking 0.87`` (+ ``| truth sitting``), or ``no window yet``."""
        if self.probs is None:
            t = "no window yet"
        else:
            t = f"{self.class_name} {self.confidence:.2f}"
        if self.truth is not None:
            t += f"  | truth {self.truth}" + ("" if self.probs is None or self.truth != self.class_name else " (ok)")
        return t

    def status_text(self) -> str:
        t = f"L={self.budget} [{self.controller}]" if self.mask is not None else ""
        if self.accuracy is not None:
            t += f"  acc {100 * self.accuracy:.0f}%"
        return (self.title + "  " + t).strip()

    def stream_label(self, i: int) -> str:
        """``rgb 5/12 s=0.30`` (``MISSING`` when the stream had no data in the window)."""
        _, mod = split_stream_id(self.stream_ids[i])
        b = int(self.blocks[i])
        sigma = float(self.est_noise[i]) if self.est_noise is not None else float("nan")
        alive = True if self.present is None else bool(self.present[i])
        return (f"{mod} {b}/{self.depth}" + (f" s={sigma:.2f}" if np.isfinite(sigma) else "")
                + ("" if alive else " MISSING"))

    def stream_color(self, i: int) -> tuple[float, float, float, float]:
        """QoI colour (green clean -> red noisy), grey when the stream was missing."""
        _, mod = split_stream_id(self.stream_ids[i])
        alive = True if self.present is None else bool(self.present[i])
        if not alive:
            return (0.3, 0.3, 0.3, 0.9)
        sigma = float(self.est_noise[i]) if self.est_noise is not None else float("nan")
        return qoi_color(sigma, mod)


def _rgb255(rgba: Sequence[float]) -> tuple[int, int, int]:
    # images here are rgb8 arrays: channel order r, g, b
    return (int(255 * rgba[0]), int(255 * rgba[1]), int(255 * rgba[2]))


def render_activity_dashboard(view: ActivityView, width: int = 640, height: int = 480,
                              top_classes: int = 8) -> np.ndarray:
    """rgb8 ``(height, width, 3)``: the label (and truth), the top class scores, per-stream
    blocks coloured by QoI, and the window's (frame x stream) tokens with data."""
    img = np.full((height, width, 3), 32, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    ok = view.truth is not None and view.probs is not None and view.truth == view.class_name
    head = (120, 230, 120) if ok else ((250, 140, 120) if view.truth is not None and view.probs is not None
                                       else (255, 255, 255))
    cv2.putText(img, view.label_text(), (12, 34), font, 0.8, head, 2, cv2.LINE_AA)
    cv2.putText(img, view.status_text(), (12, 60), font, 0.45, (210, 210, 210), 1, cv2.LINE_AA)

    # scores (left half)
    x0, y0, bar_h = 12, 84, 20
    sw = int(width * 0.5) - 24
    for k, (name, p) in enumerate(view.ranked(top_classes)):
        y = y0 + k * (bar_h + 8)
        if y + bar_h > height - 8:
            break
        col = (255, 150, 40) if name == view.class_name else (110, 150, 220)
        if view.truth is not None and name == view.truth:
            cv2.rectangle(img, (x0 - 3, y - 3), (x0 + sw + 3, y + bar_h + 3), (120, 230, 120), 1)
        cv2.rectangle(img, (x0, y), (x0 + sw, y + bar_h), (60, 60, 60), -1)
        cv2.rectangle(img, (x0, y), (x0 + int(sw * float(np.clip(p, 0, 1))), y + bar_h), col, -1)
        cv2.putText(img, f"{name} {p:.2f}", (x0 + 4, y + bar_h - 6), font, 0.42, (255, 255, 255), 1, cv2.LINE_AA)

    # per-stream blocks (right half)
    n = len(view.stream_ids)
    bx0, by0, by1 = int(width * 0.5) + 12, 96, height - 150
    if n:
        bw = max(6, (width - bx0 - 12) // n - 10)
        depth = max(view.depth, 1)
        for i, sid in enumerate(view.stream_ids):
            x = bx0 + i * (bw + 10)
            h = int((by1 - by0) * int(view.blocks[i]) / depth)
            cv2.rectangle(img, (x, by0), (x + bw, by1), (80, 80, 80), 1)
            cv2.rectangle(img, (x, by1 - h), (x + bw, by1), _rgb255(view.stream_color(i)), -1)
            cv2.putText(img, f"{int(view.blocks[i])}/{depth}", (x, by0 - 6), font, 0.4, (230, 230, 230), 1,
                        cv2.LINE_AA)
            node, mod = split_stream_id(sid)
            cv2.putText(img, f"{node[-1]}{_SHORT.get(mod, mod)}", (x, by1 + 16), font, 0.45,
                        _rgb255(MODALITY_COLOR.get(mod, (0.9, 0.9, 0.9)) + (1.0,)), 1, cv2.LINE_AA)
        cv2.putText(img, "blocks per stream", (bx0, 78), font, 0.42, (200, 200, 200), 1, cv2.LINE_AA)

    # window tokens: a grid of F frames x n streams (green = data, dark = none)
    if view.tokens is not None and n:
        tok = np.asarray(view.tokens, bool)
        f = tok.shape[0]
        gy0 = height - 110
        cell = max(6, min(22, (width - bx0 - 12) // max(f, 1) - 2, 80 // max(n, 1) - 2))
        cv2.putText(img, f"window: {f} frames (old -> new)", (bx0, gy0 - 8), font, 0.42, (200, 200, 200), 1,
                    cv2.LINE_AA)
        for k in range(f):
            for i in range(n):
                x, y = bx0 + k * (cell + 2), gy0 + i * (cell + 2)
                cv2.rectangle(img, (x, y), (x + cell, y + cell), (60, 200, 90) if tok[k, i] else (70, 70, 70), -1)
    return img


__all__ = ["ActivityView", "render_activity_dashboard"]
