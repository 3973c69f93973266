"""Render one simulator frame of every stream into a PNG grid (a visual sanity check).

Rows are nodes; columns are RGB, depth (colour-mapped, invalid = black), radar
(colour-mapped, range grows downwards, left = +azimuth) and the 64x64 model inputs of
the three modalities (nearest-subsampled, enlarged). A top-down map of the track, the
obstacles, the nodes and the car is added on the right.

    python -m admn_ros.core.sim.preview --out /tmp/sim_preview.png --seed 0 --episode 0 --frame 30
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from admn_ros.core.preprocess import to_model_input
from admn_ros.core.sim.config import SimConfig, load_sim_config
from admn_ros.core.sim.corruptions import CorruptionSpec
from admn_ros.core.sim.simulator import GDTMSimulator, SimFrame
from admn_ros.core.streams import DEPTH_MAX_M


def _label(img: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _depth_vis(d: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if d is None:
        return np.zeros((*shape, 3), np.uint8)
    d = d.astype(np.float32) if d.dtype != np.float32 else d * 1000.0
    v = np.clip(d / (DEPTH_MAX_M * 1000.0) * 255 * 1.6, 0, 255).astype(np.uint8)
    out = cv2.applyColorMap(255 - v, cv2.COLORMAP_JET)[:, :, ::-1].copy()
    out[d == 0] = 0
    return out


def _radar_vis(r: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if r is None:
        return np.zeros((*shape, 3), np.uint8)
    v = (np.clip(r, 0, 1) * 255).astype(np.uint8)
    return cv2.resize(cv2.applyColorMap(v, cv2.COLORMAP_INFERNO)[:, :, ::-1], shape[::-1],
                      interpolation=cv2.INTER_NEAREST)


def _top_view(cfg: SimConfig, sim: GDTMSimulator, frame: SimFrame, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 40, np.uint8)
    span = max(cfg.room.size_x, cfg.room.size_y) + 0.4
    s = size / span

    def px(x: float, y: float) -> tuple[int, int]:
        return int(size / 2 + x * s), int(size / 2 - y * s)

    X, Y = cfg.room.size_x / 2, cfg.room.size_y / 2
    cv2.rectangle(img, px(-X, Y), px(X, -Y), (120, 120, 120), 1)
    x0, x1, y0, y1 = cfg.track.bounds
    cv2.rectangle(img, px(x0, y1), px(x1, y0), (220, 220, 220), 1)
    pts = np.array([px(*p) for p in sim.scene.trajectory.points[::16]], np.int32)
    cv2.polylines(img, [pts], True, (80, 160, 80), 1)
    for ob in sim.scene.obstacles:
        col = tuple(int(c * 255) for c in ob.color)
        if ob.kind == "pillar":
            cv2.circle(img, px(*ob.center), max(2, int(ob.size_x / 2 * s)), col, -1)
        else:
            c, si = math.cos(ob.yaw), math.sin(ob.yaw)
            loc = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [ob.size_x / 2, ob.size_y / 2]
            w = loc @ np.array([[c, si], [-si, c]]) + ob.center
            cv2.fillConvexPoly(img, np.array([px(*p) for p in w], np.int32), col)
    for n in cfg.nodes:
        p = px(*n.position[:2])
        q = px(n.position[0] + 0.5 * math.cos(n.yaw), n.position[1] + 0.5 * math.sin(n.yaw))
        cv2.circle(img, p, 5, (80, 200, 255), -1)
        cv2.line(img, p, q, (80, 200, 255), 2)
        cv2.putText(img, n.name, (p[0] + 6, p[1]), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
    gx, gy = frame.gt_xy
    cv2.circle(img, px(gx, gy), 5, (255, 40, 40), -1)
    cv2.line(img, px(gx, gy), px(gx + 0.3 * math.cos(frame.gt_yaw), gy + 0.3 * math.sin(frame.gt_yaw)),
             (255, 40, 40), 2)
    return _label(img, f"map t={frame.t:.2f}s {sim.scene.trajectory.kind}")


def render_preview(out: str | Path, cfg: SimConfig | None = None, seed: int = 0, episode: int = 0,
                   frame_index: int = 30, corruptions: dict[str, CorruptionSpec] | None = None) -> Path:
    """Write a PNG of frame ``frame_index`` of ``(seed, episode)``; return its path."""
    cfg = cfg or load_sim_config()
    sim = GDTMSimulator(cfg, seed=seed, episode=episode)
    for sid, spec in (corruptions or {}).items():
        sim.set_corruption(sid, spec)
    sim.skip(frame_index)
    frame = sim.step()
    rows = []
    for node in cfg.nodes:
        h, w = node.camera.height, node.camera.width
        rgb = frame.streams[f"{node.name}/rgb"]
        dep = frame.streams[f"{node.name}/depth"]
        rad = frame.streams[f"{node.name}/radar"]
        tiles = [
            _label(rgb.data.copy() if rgb.data is not None else np.zeros((h, w, 3), np.uint8),
                   f"{node.name}/rgb {rgb.corruption} vis={frame.visibility[node.name]:.2f} "
                   f"px={frame.car_pixels[node.name]}"),
            _label(_depth_vis(dep.data, (h, w)), f"depth {dep.corruption}"),
            _label(_radar_vis(rad.data, (h, h)), f"radar {rad.corruption}"),
        ]
        small = []
        for mod, sf in (("rgb", rgb), ("depth", dep), ("radar", rad)):
            if sf.data is None:
                small.append(np.zeros((h, h, 3), np.uint8))
                continue
            x = to_model_input(mod, sf.data)
            im = (np.transpose(x, (1, 2, 0)) * 255).astype(np.uint8)
            if mod == "depth":
                im = _depth_vis((x[0] * DEPTH_MAX_M * 1000).astype(np.uint16), x.shape[1:])
            elif mod == "radar":
                im = _radar_vis(x[0], x.shape[1:])
            small.append(_label(cv2.resize(im, (h, h), interpolation=cv2.INTER_NEAREST), f"{mod} 64x64"))
        rows.append(np.hstack(tiles + small))
    grid = np.vstack(rows)
    top = _top_view(cfg, sim, frame, grid.shape[0])
    img = np.hstack([grid, top])
    out = Path(out)
    cv2.imwrite(str(out), img[:, :, ::-1])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/sim_preview.png")
    ap.add_argument("--config", default=None, help="sensors YAML (default: shipped config/sensors.yaml)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episode", type=int, default=0)
    ap.add_argument("--frame", type=int, default=30)
    a = ap.parse_args(argv)
    p = render_preview(a.out, load_sim_config(a.config), a.seed, a.episode, a.frame)
    print(f"wrote {p}")


if __name__ == "__main__":
    main()
