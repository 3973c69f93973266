"""Render a ``visualization_msgs/MarkerArray`` to an rgb image without RViz (tests, docs, CI).

A top-down view of the ``x``/``y`` plane with a small oblique shear (``z`` moves a point
up the image by ``shear * z``), so vertical bars keep a visible height. Supported types:
CUBE (drawn as its sheared box), SPHERE / CYLINDER (discs), LINE_STRIP / LINE_LIST /
POINTS, TEXT_VIEW_FACING; alpha is honoured; DELETE / DELETEALL actions and
orientations are ignored (the ADMN markers are axis-aligned).

    img = render_markers(msg)            # uint8 (H, W, 3) RGB
    save_png(img, "markers.png")
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

_ORDER = {Marker.LINE_STRIP: 0, Marker.LINE_LIST: 0, Marker.POINTS: 1, Marker.CYLINDER: 2,
          Marker.CUBE: 3, Marker.SPHERE: 4, Marker.TEXT_VIEW_FACING: 5}


def _extent(markers: Iterable[Marker], shear: float) -> tuple[float, float, float, float]:
    xs: list[float] = []
    ys: list[float] = []
    for m in markers:
        p = m.pose.position
        if m.type in (Marker.LINE_STRIP, Marker.LINE_LIST, Marker.POINTS):
            for q in m.points:
                xs.append(p.x + q.x)
                ys.append(p.y + q.y)
                ys.append(p.y + q.y + shear * (p.z + q.z))
        elif m.type == Marker.TEXT_VIEW_FACING:
            xs.append(p.x)
            ys.append(p.y + shear * p.z)
        else:
            xs += [p.x - m.scale.x / 2, p.x + m.scale.x / 2]
            ys += [p.y - m.scale.y / 2, p.y + m.scale.y / 2 + shear * (p.z + m.scale.z / 2)]
    if not xs:
        return (-1.0, 1.0, -1.0, 1.0)
    return (min(xs), max(xs), min(ys), max(ys))


def render_markers(msg: MarkerArray, width: int = 900, height: int = 900,
                   extent: tuple[float, float, float, float] | None = None, shear: float = 0.5,
                   margin: float = 0.4, background: tuple[int, int, int] = (24, 24, 28)) -> np.ndarray:
    """Draw ``msg`` into an rgb8 ``(height, width, 3)`` image (see the module docstring).

    ``extent`` = ``(x_min, x_max, y_min, y_max)`` metres to show (default: all markers plus
    ``margin``)."""
    markers = [m for m in msg.markers if m.action == Marker.ADD]
    x0, x1, y0, y1 = extent or _extent(markers, shear)
    x0, x1, y0, y1 = x0 - margin, x1 + margin, y0 - margin, y1 + margin
    s = min(width / max(x1 - x0, 1e-6), height / max(y1 - y0, 1e-6))
    ox = (width - s * (x1 - x0)) / 2
    oy = (height - s * (y1 - y0)) / 2
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background

    def px(x: float, y: float, z: float = 0.0) -> tuple[int, int]:
        u = ox + (x - x0) * s
        v = height - (oy + (y - y0 + shear * z) * s)
        return int(round(u)), int(round(v))

    def col(c) -> tuple[int, int, int]:
        return (int(255 * np.clip(c.r, 0, 1)), int(255 * np.clip(c.g, 0, 1)), int(255 * np.clip(c.b, 0, 1)))

    def draw(fn, alpha: float) -> None:
        if alpha >= 0.99:
            fn(img)
            return
        layer = img.copy()
        fn(layer)
        cv2.addWeighted(layer, float(np.clip(alpha, 0, 1)), img, 1.0 - float(np.clip(alpha, 0, 1)), 0, dst=img)

    for m in sorted(markers, key=lambda m: (_ORDER.get(m.type, 9), m.pose.position.z)):
        p, sc, c = m.pose.position, m.scale, m.color
        rgb = col(c)
        if m.type in (Marker.LINE_STRIP, Marker.LINE_LIST, Marker.POINTS):
            pts = np.array([px(p.x + q.x, p.y + q.y, p.z + q.z) for q in m.points], np.int32)
            if len(pts) == 0:
                continue
            w = max(1, int(round(sc.x * s)))
            if m.type == Marker.LINE_STRIP and len(pts) > 1:
                draw(lambda im: cv2.polylines(im, [pts], False, rgb, w, cv2.LINE_AA), c.a)
            elif m.type == Marker.LINE_LIST:
                for a, b in zip(pts[0::2], pts[1::2]):
                    draw(lambda im, a=a, b=b: cv2.line(im, tuple(a), tuple(b), rgb, w, cv2.LINE_AA), c.a)
            else:
                for q in pts:
                    draw(lambda im, q=q: cv2.circle(im, tuple(q), w, rgb, -1), c.a)
        elif m.type == Marker.CUBE:
            lo = px(p.x - sc.x / 2, p.y - sc.y / 2, p.z - sc.z / 2)
            hi = px(p.x + sc.x / 2, p.y + sc.y / 2, p.z + sc.z / 2)
            draw(lambda im: cv2.rectangle(im, lo, hi, rgb, -1), c.a)
            if c.a >= 0.5:
                cv2.rectangle(img, lo, hi, tuple(int(v * 0.6) for v in rgb), 1)
        elif m.type in (Marker.SPHERE, Marker.CYLINDER):
            r = max(2, int(round(sc.x / 2 * s)))
            ctr = px(p.x, p.y, p.z)
            draw(lambda im: cv2.circle(im, ctr, r, rgb, -1, cv2.LINE_AA), c.a)
        elif m.type == Marker.TEXT_VIEW_FACING and m.text:
            fs = max(0.3, sc.z * s / 28.0)
            (tw, th), _ = cv2.getTextSize(m.text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
            u, v = px(p.x, p.y, p.z)
            draw(lambda im: cv2.putText(im, m.text, (u - tw // 2, v + th // 2), cv2.FONT_HERSHEY_SIMPLEX, fs, rgb,
                                        1, cv2.LINE_AA), c.a)
    return img


def save_png(img: np.ndarray, path: str | Path) -> Path:
    """Write an rgb image as PNG (parent directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write PNG")
    return path
