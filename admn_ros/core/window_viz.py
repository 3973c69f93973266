"""What the window node (``activity_node``) shows (rclpy-free): :func:`window_markers` (RViz) and
:func:`render_window_dashboard` (rgb image) draw the same :class:`WindowView`, as :mod:`admn_ros.core.viz`
does for the map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from admn_ros.core.streams import split_stream_id
from admn_ros.core.viz import (_SHORT, MODALITY_COLOR, Bar, MarkerSpec, _rgb255, allocation_bars, bar_markers,
                               text_marker)


@dataclass
class WindowView:
    """One window's result as displayed, for any task: ``label`` / ``ok`` / ``ranked`` are the task's
    ``text`` / ``verdict`` / ``ranked``; ``allocation`` the window's
    :class:`~admn_ros.core.runtime.Allocation` (``None`` before the first window); ``tokens`` bool
    ``[F, n]`` (frame, stream) tokens with data and blocks; ``metric`` the running metric as text
    ('' = no truth yet)."""

    stream_ids: list[str]
    title: str = ""
    label: str = "no window yet"
    ok: bool | None = None
    ranked: list[tuple[str, float, bool]] = field(default_factory=list)
    allocation: Any = None
    tokens: np.ndarray | None = None
    metric: str = ""

    @classmethod
    def from_result(cls, task: Any, res: Any, stream_ids: Sequence[str], truth: Any = None, metric: str = "",
                    title: str = "") -> "WindowView":
        """From a :class:`~admn_ros.core.runtime.Result` of ``task`` (a :class:`~admn_ros.core.tasks.base.Task`)."""
        return cls(list(stream_ids), title, task.text(res.estimate, truth), task.verdict(res.estimate, truth),
                   task.ranked(res.estimate, truth), res.allocation, np.asarray(res.present, bool), metric)

    def status_text(self) -> str:
        a = self.allocation
        t = f"L={a.budget} [{a.controller}]" if a is not None else "waiting for a full window"
        return f"{self.title}  {t}  {self.metric}".strip()

    def bars(self, at: tuple[float, float] = (0.0, 0.0)) -> list[Bar]:
        """The streams' allocation bars side by side around ``at`` (empty before the first window)."""
        a = self.allocation
        node_xy = {split_stream_id(s)[0]: at for s in self.stream_ids}
        return [] if a is None else allocation_bars(self.stream_ids, a.mask, a.est_noise, node_xy, 0.14, a.present)


def window_markers(view: WindowView) -> list[MarkerSpec]:
    """The window node's markers in the ``x``/``y`` plane around the origin: ``activity_label``,
    ``activity_status``, ``activity_scores`` (+ ``activity_score_text``, the top 6), the map view's
    allocation bars and ``window_tokens`` (an ``F x n`` grid, green = the token had data)."""
    out = [text_marker("activity_label", 0, (0.6, 1.25, 0.05), 0.22, view.label, verdict_rgb(view.ok)),
           text_marker("activity_status", 0, (0.6, 0.98, 0.05), 0.12, view.status_text(), (0.85, 0.85, 0.85, 1.0))]
    for k, (name, p, is_truth) in enumerate(view.ranked[:6]):   # bars to the right of the streams
        y, length = 0.6 - 0.16 * k, max(float(p) * 1.2, 0.005)
        out += [MarkerSpec("activity_scores", k, "CUBE", (0.9 + length / 2, y, 0.02), (length, 0.1, 0.04),
                           (1.0, 0.6, 0.15, 0.95) if k == 0 else (0.45, 0.6, 0.9, 0.9)),
                text_marker("activity_score_text", k, (0.5, y, 0.06), 0.08,
                            f"{name} {p:.2f}" + (" *" if is_truth else ""))]
    at = (-0.4, 0.0)
    out += bar_markers(view.bars(at), {split_stream_id(s)[0]: at for s in view.stream_ids})
    if view.tokens is not None:
        tok, cell = np.asarray(view.tokens, bool), 0.07
        out += [MarkerSpec("window_tokens", k * tok.shape[1] + i, "CUBE",
                           (0.9 + k * (cell + 0.02), -0.45 - i * (cell + 0.02), 0.01), (cell, cell, 0.02),
                           (0.25, 0.8, 0.35, 0.95) if tok[k, i] else (0.3, 0.3, 0.3, 0.9))
                for k in range(tok.shape[0]) for i in range(tok.shape[1])]
        out.append(text_marker("window_tokens", 10_000, (0.9 + (tok.shape[0] - 1) * (cell + 0.02) / 2, -0.35, 0.02),
                               0.08, f"window {tok.shape[0]} frames (old -> new)", (0.85, 0.85, 0.85, 1.0)))
    return out


def verdict_rgb(ok: bool | None) -> tuple[float, float, float, float]:
    """Colour of a label: green right, red wrong, white unknown."""
    return (0.5, 1.0, 0.5, 1.0) if ok else ((1.0, 0.6, 0.5, 1.0) if ok is False else (1.0, 1.0, 1.0, 1.0))


def render_window_dashboard(view: WindowView, width: int = 640, height: int = 480) -> np.ndarray:
    """rgb8 ``(height, width, 3)``: the label (and truth), the top 8 ranked entries, per-stream
    blocks coloured by QoI, and the window's (frame x stream) tokens with data."""
    img = np.full((height, width, 3), 32, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, view.label, (12, 34), font, 0.8, _rgb255(verdict_rgb(view.ok)), 2, cv2.LINE_AA)
    cv2.putText(img, view.status_text(), (12, 60), font, 0.45, (210, 210, 210), 1, cv2.LINE_AA)
    # scores (left half)
    x0, y0, bar_h = 12, 84, 20
    sw = int(width * 0.5) - 24
    for k, (name, p, is_truth) in enumerate(view.ranked[:8]):
        y = y0 + k * (bar_h + 8)
        if y + bar_h > height - 8:
            break
        col = (255, 150, 40) if k == 0 else (110, 150, 220)
        if is_truth:
            cv2.rectangle(img, (x0 - 3, y - 3), (x0 + sw + 3, y + bar_h + 3), (120, 230, 120), 1)
        cv2.rectangle(img, (x0, y), (x0 + sw, y + bar_h), (60, 60, 60), -1)
        cv2.rectangle(img, (x0, y), (x0 + int(sw * float(np.clip(p, 0, 1))), y + bar_h), col, -1)
        cv2.putText(img, f"{name} {p:.2f}", (x0 + 4, y + bar_h - 6), font, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    # per-stream blocks (right half)
    n = len(view.stream_ids)
    bx0, by0, by1 = int(width * 0.5) + 12, 96, height - 150
    if n and view.allocation is not None:
        bw = max(6, (width - bx0 - 12) // n - 10)
        for i, b in enumerate(view.bars()):
            x = bx0 + i * (bw + 10)
            h = int((by1 - by0) * b.blocks / max(b.depth, 1))
            cv2.rectangle(img, (x, by0), (x + bw, by1), (80, 80, 80), 1)
            cv2.rectangle(img, (x, by1 - h), (x + bw, by1), _rgb255(b.color), -1)
            cv2.putText(img, f"{b.blocks}/{b.depth}", (x, by0 - 6), font, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
            node, mod = split_stream_id(b.stream_id)
            cv2.putText(img, f"{node[-1]}{_SHORT.get(mod, mod)}", (x, by1 + 16), font, 0.45,
                        _rgb255(MODALITY_COLOR.get(mod, (0.9, 0.9, 0.9))), 1, cv2.LINE_AA)
        cv2.putText(img, "blocks per stream", (bx0, 78), font, 0.42, (200, 200, 200), 1, cv2.LINE_AA)
    # window tokens: a grid of F frames x n streams (green = data, dark = none)
    if view.tokens is not None and n:
        tok = np.asarray(view.tokens, bool)
        f = tok.shape[0]
        gy0 = height - 110
        cell = max(6, min(22, (width - bx0 - 12) // max(f, 1) - 2, 80 // max(n, 1) - 2))
        cv2.putText(img, f"window: {f} frames (old -> new)", (bx0, gy0 - 8), font, 0.42, (200, 200, 200), 1,
                    cv2.LINE_AA)
        for (k, i), on in np.ndenumerate(tok):
            x, y = bx0 + k * (cell + 2), gy0 + i * (cell + 2)
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (60, 200, 90) if on else (70, 70, 70), -1)
    return img
