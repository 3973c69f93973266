"""Per-node rendering: RGB + registered z-depth (pinhole; the static world ray-cast once per
episode into a bank of noisy backgrounds, the car's box drawn per frame with a z-test) and a
range-azimuth radar map (car scatterers and speckle on a precomputed static power map).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from admn_ros.core.sim.config import NodeConfig, RadarConfig, SimConfig
from admn_ros.core.sim.scene import PALETTE, Appearance, Obstacle, Scene, shade
from admn_ros.core.streams import DEPTH_MAX_M

#: Number of precomputed noisy background copies per camera and episode.
BANK_SIZE: int = 6
#: Minimum valid depth of the simulated depth camera (metres).
DEPTH_MIN_M: float = 0.2
#: RGB sensor noise std on [0, 1] (clean frames are not noise-free).
RGB_SENSOR_SIGMA: float = 1.5 / 255.0
#: Car body bottom above the floor (wheels), metres.
CAR_CLEARANCE: float = 0.02

# Radar power <-> [0, 1] mapping: value = (10 log10(P) - FLOOR_DB) / DYN_DB, clipped.
RADAR_FLOOR_DB: float = -25.0
RADAR_DYN_DB: float = 30.0
RADAR_NOISE_POWER: float = 0.006
RADAR_BEAM_DEG: float = 9.0   # azimuth main lobe (first null) of the sinc^2 pattern
RADAR_SPECKLE_LOOKS: float = 4.0
RADAR_RANGE_RES_BINS: float = 1.5  # range resolution in bins (bins oversample it)
RADAR_OBSTACLE_ATTEN: float = 0.3  # power factor through one obstacle


def depth_sigma_m(z: np.ndarray) -> np.ndarray:
    """Depth noise std (metres) at z-depth ``z``: grows with z^2 like a stereo camera."""
    return 0.001 + 0.002 * np.square(z)


def depth_mm(z: np.ndarray) -> np.ndarray:
    """Z-depth in metres -> uint16 millimetres, clipped to [0, DEPTH_MAX_M]."""
    return np.clip(np.rint(z * 1000.0), 0, DEPTH_MAX_M * 1000).astype(np.uint16)


def radar_power_to_unit(p: np.ndarray) -> np.ndarray:
    """Radar power -> [0, 1] (float32) through the fixed dB window."""
    db = 10.0 * np.log10(np.maximum(p, 1e-12))
    return np.clip((db - RADAR_FLOOR_DB) / RADAR_DYN_DB, 0.0, 1.0).astype(np.float32)


def speckle_to_unit(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Power ``p`` with 4-look gamma speckle, mapped to [0, 1] by :func:`radar_power_to_unit`."""
    speckle = rng.gamma(RADAR_SPECKLE_LOOKS, 1.0 / RADAR_SPECKLE_LOOKS, p.shape).astype(np.float32)
    return radar_power_to_unit(p * speckle)


def radar_unit_to_power(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`radar_power_to_unit` (exact for values inside (0, 1))."""
    return np.power(10.0, (np.asarray(v, np.float32) * RADAR_DYN_DB + RADAR_FLOOR_DB) / 10.0).astype(np.float32)


def radar_point_response(radar: RadarConfig, ranges: np.ndarray, azimuths: np.ndarray,
                         powers: np.ndarray) -> np.ndarray:
    """Power map ``(range_bins, azimuth_bins)`` of point targets (slant range m, azimuth rad,
    power), each a separable sinc^2 in range and azimuth (a blob with sidelobes)."""
    rc, ac = radar.range_centers(), radar.azimuth_centers()
    ranges = np.asarray(ranges, np.float32)
    rp = np.sinc((rc[None, :] - ranges[:, None]) / (radar.range_res_m * RADAR_RANGE_RES_BINS)) ** 2
    ap = np.sinc((ac[None, :] - np.asarray(azimuths, np.float32)[:, None]) / math.radians(RADAR_BEAM_DEG)) ** 2
    return np.einsum("k,kr,ka->ra", np.asarray(powers, np.float32), rp, ap).astype(np.float32)


def _antenna_gain(az: np.ndarray) -> np.ndarray:
    return np.cos(np.clip(az, -1.4, 1.4)) ** 2


def _hit_obstacle(ob: Obstacle, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameter ``t`` (inf if missed) and outward normal of rays ``o + t d`` (3-D) vs ``ob``."""
    n = d.shape[0]
    cx, cy = ob.center
    c, s = math.cos(ob.yaw), math.sin(ob.yaw)
    ox, oy, oz = o[0] - cx, o[1] - cy, o[2]
    if ob.kind == "box":
        lo = np.array([ox * c + oy * s, -ox * s + oy * c, oz])
        ld = np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c, d[:, 2]], 1)
        lo_b = np.array([-ob.size_x / 2, -ob.size_y / 2, 0.0])
        hi_b = np.array([ob.size_x / 2, ob.size_y / 2, ob.height])
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / ld
            t1 = (lo_b - lo) * inv
            t2 = (hi_b - lo) * inv
        tmin = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
        tn, tf = tmin.max(1), np.nan_to_num(np.maximum(t1, t2), nan=np.inf).min(1)
        hit = (tn <= tf) & (tn > 1e-6)
        axis = tmin.argmax(1)
        ln = np.zeros((n, 3))
        ln[np.arange(n), axis] = -np.sign(ld[np.arange(n), axis])
        normal = np.stack([ln[:, 0] * c - ln[:, 1] * s, ln[:, 0] * s + ln[:, 1] * c, ln[:, 2]], 1)
        return np.where(hit, tn, np.inf), normal
    # pillar: vertical cylinder + top cap
    r = ob.size_x / 2
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (ox * d[:, 0] + oy * d[:, 1])
    cc = ox ** 2 + oy ** 2 - r ** 2
    disc = b * b - 4 * a * cc
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(disc)) / (2 * a)
    z_side = oz + t_side * d[:, 2]
    side_ok = (disc >= 0) & (t_side > 1e-6) & (z_side >= 0) & (z_side <= ob.height)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_top = (ob.height - oz) / d[:, 2]
    px, py = ox + t_top * d[:, 0], oy + t_top * d[:, 1]
    top_ok = (t_top > 1e-6) & (px ** 2 + py ** 2 <= r * r)
    t = np.where(side_ok, t_side, np.inf)
    t = np.where(top_ok & (t_top < t), t_top, t)
    top = t == t_top
    return t, np.stack([np.where(top, 0.0, (ox + t * d[:, 0]) / r), np.where(top, 0.0, (oy + t * d[:, 1]) / r),
                        np.where(top, 1.0, 0.0)], 1)


def _value_noise(x: np.ndarray, y: np.ndarray, scale: float, table: np.ndarray) -> np.ndarray:
    """Smooth value noise in [-1, 1] (bilinear interpolation of a random lattice)."""
    n = table.shape[0]
    gx, gy = x / scale, y / scale
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    x0, x1, y0, y1 = ix % n, (ix + 1) % n, iy % n, (iy + 1) % n
    return ((table[x0, y0] * (1 - fx) + table[x1, y0] * fx) * (1 - fy)
            + (table[x0, y1] * (1 - fx) + table[x1, y1] * fx) * fy)


def _floor_albedo(x: np.ndarray, y: np.ndarray, app: Appearance, cfg: SimConfig) -> np.ndarray:
    table = np.random.default_rng(app.texture_seed).uniform(-1, 1, (64, 64))
    s, k = app.texture_scale, app.texture_contrast
    if app.floor_texture == "tiles":
        ix, iy = np.floor(x / s).astype(np.int64), np.floor(y / s).astype(np.int64)
        tone = 0.5 * k * table[ix % 64, iy % 64]
        fx, fy = x / s - np.floor(x / s), y / s - np.floor(y / s)
        grout = (np.minimum(fx, 1 - fx) < 0.015 / s) | (np.minimum(fy, 1 - fy) < 0.015 / s)
        tone = np.where(grout, -2.5 * k, tone)
    elif app.floor_texture == "planks":
        w = s / 3
        row = np.floor(y / w).astype(np.int64)
        xs = x + table[row % 64, 0] * 2.0
        col = np.floor(xs / (4 * w)).astype(np.int64)
        tone = k * table[row % 64, col % 64] + 0.3 * k * np.sin(xs * 40.0 + row)
        fy = y / w - row
        tone = np.where(np.minimum(fy, 1 - fy) < 0.006 / w, -2.0 * k, tone)
    elif app.floor_texture == "carpet":
        tone = k * (_value_noise(x, y, s, table) + 0.5 * _value_noise(x, y, s / 5, table.T))
    else:  # plain concrete
        tone = 0.4 * k * _value_noise(x, y, s * 2, table)
    alb = np.asarray(app.floor_color)[None, :] * (1.0 + tone)[:, None]
    # track boundary tape (5 cm wide, centred on the track edge)
    x0, x1, y0, y1 = cfg.track.bounds
    hw = 0.025
    inside = (x > x0 - hw) & (x < x1 + hw) & (y > y0 - hw) & (y < y1 + hw)
    near_edge = ((np.abs(x - x0) < hw) | (np.abs(x - x1) < hw)) | ((np.abs(y - y0) < hw) | (np.abs(y - y1) < hw))
    alb[inside & near_edge] = app.tape_color
    return alb


def _wall_albedo(wall: int, u: np.ndarray, z: np.ndarray, app: Appearance) -> np.ndarray:
    alb = np.tile(np.asarray(app.wall_color), (len(u), 1))
    alb[z < 0.1] *= 0.55  # baseboard
    for w_i, cu, cz, hw, hh, ci in app.posters:
        m = (int(w_i) == wall) & (np.abs(u - cu) < hw) & (np.abs(z - cz) < hh)
        inner = m & (np.abs(u - cu) < hw * 0.8) & (np.abs(z - cz) < hh * 0.8)
        alb[m] = 0.92
        alb[inner] = PALETTE[int(ci) % len(PALETTE)] * 0.85 + 0.05
    return alb


def expose(color: np.ndarray, app: Appearance) -> np.ndarray:
    return np.clip(color * app.gain * np.asarray(app.cast), 0.0, 1.0)


class CameraRenderer:
    """RGB + registered depth of one node for one episode (``rng`` draws the noisy background bank)."""

    def __init__(self, node: NodeConfig, cfg: SimConfig, scene: Scene, rng: np.random.Generator) -> None:
        self.node, self.cfg, self.scene = node, cfg, scene
        cam = node.camera
        self.H, self.W = cam.height, cam.width
        self.R = node.rotation_optical()  # map <- optical
        self.C = np.asarray(node.position, dtype=np.float64)
        self._xs = ((np.arange(self.W) - cam.cx) / cam.fx).astype(np.float32)
        self._ys = ((np.arange(self.H) - cam.cy) / cam.fy).astype(np.float32)
        self.bg_rgb, self.bg_z = self._cast_background()
        self._bank_rgb, self._bank_depth = self._make_bank(rng)

    def _cast_background(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, app = self.cfg, self.scene.appearance
        xs, ys = np.meshgrid(self._xs, self._ys)
        dc = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size, np.float32)], 1).astype(np.float64)
        d = dc @ self.R.T  # world directions; t is z-depth
        o = self.C
        n = d.shape[0]
        t_best = np.full(n, np.inf)
        kind = np.full(n, -1, np.int64)  # 0 floor, 1 ceiling, 2..5 walls, 10+i obstacle i
        normal = np.zeros((n, 3))
        X, Y, Hc = cfg.room.size_x / 2, cfg.room.size_y / 2, cfg.room.height
        planes = [  # (axis, coordinate, kind, normal)
            (2, 0.0, 0, (0, 0, 1)), (2, Hc, 1, (0, 0, -1)),
            (0, X, 2, (-1, 0, 0)), (0, -X, 3, (1, 0, 0)), (1, Y, 4, (0, -1, 0)), (1, -Y, 5, (0, 1, 0)),
        ]
        with np.errstate(divide="ignore", invalid="ignore"):
            hits = [(k, (coord - o[axis]) / d[:, axis], np.broadcast_to(nrm, (n, 3))) for axis, coord, k, nrm in planes]
        hits += [(10 + i, *_hit_obstacle(ob, o, d)) for i, ob in enumerate(self.scene.obstacles)]
        for k, t, nrm in hits:  # the nearest hit in front of the camera wins
            ok = (t > 1e-6) & (t < t_best)
            t_best = np.where(ok, t, t_best)
            kind = np.where(ok, k, kind)
            normal[ok] = nrm[ok]
        p = o[None, :] + t_best[:, None] * d
        alb = np.zeros((n, 3))
        m = kind == 0
        alb[m] = _floor_albedo(p[m, 0], p[m, 1], app, cfg)
        alb[kind == 1] = app.ceiling_color
        for w in range(4):
            m = kind == 2 + w
            u = p[m, 1] if w < 2 else p[m, 0]
            alb[m] = _wall_albedo(w, u, p[m, 2], app)
        for i, ob in enumerate(self.scene.obstacles):
            m = kind == 10 + i
            top = normal[m, 2] > 0.5
            c = np.tile(np.asarray(ob.color), (m.sum(), 1))
            c[top] *= 1.08
            alb[m] = c
        rgb = expose(alb * shade(p, normal, app)[:, None], app)
        return rgb.reshape(self.H, self.W, 3).astype(np.float32), t_best.reshape(self.H, self.W).astype(np.float32)

    def _make_bank(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        H, W = self.H, self.W
        z = self.bg_z
        # depth discontinuities -> candidate holes (stereo shadows / flying pixels)
        zp = np.pad(z, 1, mode="edge")
        grad = np.maximum(np.abs(zp[1:-1, 2:] - zp[1:-1, :-2]), np.abs(zp[2:, 1:-1] - zp[:-2, 1:-1]))
        edges = cv2.dilate((grad / np.maximum(z, 1e-3) > 0.06).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        invalid = (z > DEPTH_MAX_M) | (z < DEPTH_MIN_M) | ~np.isfinite(z)
        sig = depth_sigma_m(np.where(np.isfinite(z), z, 0.0)).astype(np.float32)
        rgbs, depths = [], []
        for _ in range(BANK_SIZE):
            noisy = self.bg_rgb + rng.standard_normal((H, W, 3), dtype=np.float32) * RGB_SENSOR_SIGMA
            rgbs.append(np.clip(noisy * 255.0 + 0.5, 0, 255).astype(np.uint8))
            zn = np.where(invalid, 0.0, z + rng.standard_normal((H, W), dtype=np.float32) * sig)
            holes = (edges & (rng.random((H, W)) < 0.5)) | (rng.random((H, W)) < 0.003)
            depths.append(depth_mm(np.where(holes, 0.0, zn)))
        return np.stack(rgbs), np.stack(depths)

    def render(self, pose: tuple[float, float, float], rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, float, int]:
        """``(rgb, depth mm, visibility, car_pixels)`` with the car at ``pose`` (x, y, yaw);
        ``visibility`` is the unoccluded fraction of the car's in-image area."""
        k = int(rng.integers(BANK_SIZE))
        rgb, depth = self._bank_rgb[k].copy(), self._bank_depth[k].copy()
        return (rgb, depth, *self._draw_car(rgb, depth, pose, rng))

    def _draw_car(self, rgb: np.ndarray, depth: np.ndarray, pose: tuple[float, float, float],
                  rng: np.random.Generator) -> tuple[float, int]:
        car, app = self.cfg.car, self.scene.appearance
        x, y, yaw = pose
        c, s = math.cos(yaw), math.sin(yaw)
        hl, hw = car.length / 2, car.width / 2
        z0, z1 = CAR_CLEARANCE, car.height
        local = np.array([[sx * hl, sy * hw, sz] for sz in (z0, z1) for sy in (-1, 1) for sx in (-1, 1)])
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        corners = local @ rot.T + [x, y, 0.0]
        m = 0.035  # soft shadow margin around the footprint
        sh_local = np.array([[sx * (hl + m), sy * (hw + m), 0.002] for sy in (-1, 1) for sx in (-1, 1)])
        shadow = sh_local @ rot.T + [x, y, 0.0]
        uv, zc = self.node.project(np.vstack([corners, shadow]))
        if (zc < 0.05).any():
            return 0.0, 0
        u0, v0 = np.maximum(np.floor(uv.min(0)).astype(int) - 1, 0)
        u1, v1 = np.minimum(np.ceil(uv.max(0)).astype(int) + 2, (self.W, self.H))
        if u0 >= u1 or v0 >= v1:
            return 0.0, 0
        xs, ys = self._xs[u0:u1][None, :], self._ys[v0:v1][:, None]
        bgz = self.bg_z[v0:v1, u0:u1]
        off = np.array([u0, v0])

        def poly_mask(pts: np.ndarray) -> np.ndarray:
            mk = np.zeros((v1 - v0, u1 - u0), np.uint8)
            cv2.fillConvexPoly(mk, np.rint((pts - off) * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
            return mk.astype(bool)

        def plane_depth(n_w: np.ndarray, p_w: np.ndarray) -> np.ndarray:
            n_c = self.R.T @ n_w
            inv = (n_c[0] * xs + n_c[1] * ys + n_c[2]) / float(n_c @ (self.R.T @ (p_w - self.C)))
            return np.where(inv > 1e-6, 1.0 / np.maximum(inv, 1e-6), np.inf).astype(np.float32)

        # shadow on the floor (only where the floor is what the camera sees there)
        sm = poly_mask(uv[[8, 9, 11, 10]])
        zs = plane_depth(np.array([0.0, 0.0, 1.0]), shadow[0])
        sm &= np.abs(bgz - zs) < 0.03 + 0.02 * zs
        roi = rgb[v0:v1, u0:u1]
        roi[sm] = (roi[sm].astype(np.float32) * 0.55).astype(np.uint8)

        # box faces: (corner indices in polygon order, outward normal in the car frame)
        faces = [([0, 1, 3, 2], (0, 0, -1)), ([4, 5, 7, 6], (0, 0, 1)),
                 ([0, 2, 6, 4], (-1, 0, 0)), ([1, 3, 7, 5], (1, 0, 0)),
                 ([0, 1, 5, 4], (0, -1, 0)), ([2, 3, 7, 6], (0, 1, 0))]
        zcar = np.full((v1 - v0, u1 - u0), np.inf, np.float32)
        col = np.zeros((v1 - v0, u1 - u0, 3), np.float32)
        base = np.asarray(app.car_color)
        for idx, nl in faces:
            n_w = rot @ np.asarray(nl, float)
            fc = corners[idx].mean(0)
            if n_w @ (fc - self.C) >= 0:  # back face
                continue
            zf = plane_depth(n_w, fc)
            upd = poly_mask(uv[idx]) & (zf < zcar)
            zcar[upd] = zf[upd]
            lit = shade(fc[None, :], n_w[None, :], app)[0]
            col[upd] = expose(base * lit * (1.0 if nl[2] > 0 else 0.8), app)
            if nl[2] > 0:  # dark windscreen/cabin patch on the top face, towards the front
                win_local = np.array([[0.05 * hl, -0.7 * hw, z1], [0.55 * hl, -0.7 * hw, z1],
                                      [0.55 * hl, 0.7 * hw, z1], [0.05 * hl, 0.7 * hw, z1]])
                wuv, wz = self.node.project(win_local @ rot.T + [x, y, 0.0])
                if (wz > 0.05).all():
                    col[poly_mask(wuv) & upd] = expose(np.array([0.08, 0.08, 0.1]) * lit, app)
        drawn = np.isfinite(zcar)
        total = int(drawn.sum())
        if total == 0:
            return 0.0, 0
        vis = drawn & (zcar < bgz)
        nvis = int(vis.sum())
        if nvis:
            noise = rng.standard_normal((nvis, 3), dtype=np.float32) * (2.0 / 255.0)
            roi[vis] = np.clip((col[vis] + noise) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            zv = zcar[vis]
            zn = zv + rng.standard_normal(nvis, dtype=np.float32) * depth_sigma_m(zv)
            depth[v0:v1, u0:u1][vis] = np.where((zv > DEPTH_MAX_M) | (zv < DEPTH_MIN_M), 0, depth_mm(zn))
        return nvis / total, nvis


class RadarRenderer:
    """Range-azimuth heatmap of one node for one episode (see :class:`RadarConfig`)."""

    def __init__(self, node: NodeConfig, cfg: SimConfig, scene: Scene) -> None:
        self.node, self.cfg, self.scene = node, cfg, scene
        self.radar = cfg.radar
        self.xy = np.asarray(node.position[:2], dtype=np.float64)
        self.h = float(node.position[2])
        self.static = self._static_map()

    def _static_map(self) -> np.ndarray:
        rad, cfg = self.radar, self.cfg
        rc, ac = rad.range_centers(), rad.azimuth_centers()
        step = math.radians(rad.fov_deg) / rad.azimuth_bins
        subs = np.array([-0.33, 0.0, 0.33])
        th = (self.node.yaw + ac[:, None] + subs[None, :] * step).ravel()  # (A * 3,) horizontal rays
        d = np.stack([np.cos(th), np.sin(th)], 1)
        n = d.shape[0]
        # walls (the room is a box around the node: nearest positive plane)
        half = np.array([cfg.room.size_x / 2, cfg.room.size_y / 2])
        with np.errstate(divide="ignore", invalid="ignore"):
            t_xy = np.where(d > 0, (half - self.xy) / d, (-half - self.xy) / d)
        tx, ty = np.where(np.abs(d) > 1e-9, t_xy, np.inf).T
        t_wall = np.minimum(tx, ty)
        cos_wall = np.where(tx < ty, np.abs(d[:, 0]), np.abs(d[:, 1]))
        o3 = np.array([self.xy[0], self.xy[1], 0.01])
        d3 = np.concatenate([d, np.zeros((n, 1))], 1)
        # (distance, |cos incidence|, reflectivity, reflector height, diffuse part) per target kind
        returns: list[tuple] = []
        for ob in self.scene.obstacles:
            t, nrm = _hit_obstacle(ob, o3, d3)
            t = np.where(t < t_wall, t, np.inf)
            cos = np.abs((nrm[:, :2] * d).sum(1))
            returns.append((t, cos, np.full(n, 0.9 if ob.kind == "box" else 0.6),
                            min(ob.height, self.h), 0.4))
        returns.append((t_wall, cos_wall, np.ones(n), self.h, 0.3))
        pm = np.zeros((rad.range_bins, n), np.float32)
        for i, (t, cos, refl, z, floor_cos) in enumerate(returns):
            hit = np.isfinite(t)
            # attenuation by every obstacle crossed before this return
            atten = np.ones(n)
            for j, (tj, *_rest) in enumerate(returns[:-1]):
                if j != i:
                    atten = np.where(tj < t, atten * RADAR_OBSTACLE_ATTEN, atten)
            r = np.sqrt(np.where(hit, t, 0.0) ** 2 + (self.h - z) ** 2)
            p = np.where(hit, refl * (floor_cos + (1 - floor_cos) * cos) * atten
                         * (2.0 / np.maximum(r, 0.3)) ** 2 / len(subs), 0.0)
            prof = np.sinc((rc[:, None] - r[None, :]) / (rad.range_res_m * RADAR_RANGE_RES_BINS)) ** 2
            pm += (prof * p[None, :]).astype(np.float32)
        pm = pm.reshape(rad.range_bins, rad.azimuth_bins, len(subs)).sum(2)
        # angular resolution: smear along azimuth with the (sum-normalised) beam pattern
        k = np.arange(-12, 13) * step
        kern = np.sinc(k / math.radians(RADAR_BEAM_DEG)) ** 2
        kern = (kern / kern.sum()).astype(np.float32)
        pm = cv2.filter2D(pm, -1, kern[None, :], borderType=cv2.BORDER_REPLICATE)
        # diffuse floor clutter beyond the range where the beam reaches the floor, and leakage
        floor = 0.03 * (2.0 / np.maximum(rc, 0.3)) ** 2 * (rc > self.h * 0.9)
        pm += floor[:, None].astype(np.float32)
        pm[0] += 0.6
        pm[1] += 0.1
        return (pm * _antenna_gain(ac)[None, :]).astype(np.float32)

    def car_power(self, pose: tuple[float, float, float]) -> np.ndarray:
        """Power map of the car's scatterers (with obstacle attenuation) at ``pose``."""
        car = self.cfg.car
        x, y, yaw = pose
        c, s = math.cos(yaw), math.sin(yaw)
        hl, hw = car.length / 2, car.width / 2
        # (offset along, offset across, normal along, normal across, rcs); zero normal = isotropic
        pts = [(0, 0, 0, 0, 1.0), (hl, 0, 1, 0, 1.0), (-hl, 0, -1, 0, 1.0),
               (0, hw, 0, 1, 0.7), (0, -hw, 0, -1, 0.7)]
        ranges, azs, pows = [], [], []
        zc = CAR_CLEARANCE + car.height / 2
        for ax, ay, nx, ny, rcs in pts:
            p = np.array([x + ax * c - ay * s, y + ax * s + ay * c])
            v = p - self.xy
            dist = float(np.hypot(*v))
            if dist < 1e-3:
                continue
            if nx or ny:
                nw = np.array([nx * c - ny * s, nx * s + ny * c])
                rcs = rcs * max(0.0, float(-(nw @ v) / dist)) ** 2
            az = math.atan2(v[1], v[0]) - self.node.yaw
            az = (az + math.pi) % (2 * math.pi) - math.pi
            r = math.hypot(dist, self.h - zc)
            ranges.append(r)
            azs.append(az)
            pows.append(rcs * (2.0 / max(r, 0.3)) ** 2 * float(_antenna_gain(np.array(az))))
        atten = 1.0
        for ob in self.scene.obstacles:
            if ob.height > 0.05 and ob.segment_hits(self.xy, np.array([x, y])):
                atten *= RADAR_OBSTACLE_ATTEN
        half = math.radians(self.radar.fov_deg) / 2 + math.radians(RADAR_BEAM_DEG)
        keep = [i for i, a in enumerate(azs) if abs(a) <= half]
        return radar_point_response(self.radar, np.array(ranges)[keep], np.array(azs)[keep],
                                    np.array(pows)[keep] * atten)

    def render(self, pose: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
        """One heatmap (float32 [0, 1], ``(range_bins, azimuth_bins)``) with the car at ``pose``."""
        return speckle_to_unit(self.static + self.car_power(pose) + RADAR_NOISE_POWER, rng)
