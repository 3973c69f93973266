"""Per-episode scene from one generator: car trajectory (a closed smooth curve inside the track,
driven at a smoothly varying speed integrated analytically), static obstacles and appearance."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from admn_ros.core.sim.config import SimConfig

TRAJECTORY_KINDS: tuple[str, ...] = ("oval", "figure8", "spline")


@dataclass
class Trajectory:
    """A closed curve ``points (M, 2)`` (map metres, last != first) driven at speed
    ``v(t) = v0 + sum_k amps[k] sin(omegas[k] t + phases[k])`` from arc length ``s0``."""

    kind: str
    points: np.ndarray
    v0: float
    amps: np.ndarray
    omegas: np.ndarray
    phases: np.ndarray
    s0: float
    _cum: np.ndarray = field(init=False, repr=False)
    length: float = field(init=False)

    def __post_init__(self) -> None:
        self._closed = np.vstack([self.points, self.points[:1]])
        seg = np.linalg.norm(np.diff(self._closed, axis=0), axis=1)
        self._cum = np.concatenate([[0.0], np.cumsum(seg)])
        self.length = float(self._cum[-1])

    def arc_length(self, t: float) -> float:
        """Distance driven since the start of the curve at time ``t`` (exact integral of v)."""
        integ = np.sum(self.amps / self.omegas * (np.cos(self.phases) - np.cos(self.omegas * t + self.phases)))
        return float(self.s0 + self.v0 * t + integ)

    def pose(self, t: float) -> tuple[float, float, float]:
        """``(x, y, yaw)`` at time ``t``; yaw follows the velocity direction."""
        def at(u: float) -> list[float]:
            return [np.interp(u % self.length, self._cum, self._closed[:, k]) for k in (0, 1)]

        s = self.arc_length(t) % self.length
        (x, y), (xa, ya), (xb, yb) = at(s), at(s + 0.02), at(s - 0.02)  # heading: central difference
        return float(x), float(y), float(math.atan2(ya - yb, xa - xb))


def _catmull_rom_closed(wp: np.ndarray, per_seg: int) -> np.ndarray:
    i = np.arange(len(wp))
    p0, p1, p2, p3 = (wp[(i + k) % len(wp)][:, None] for k in (-1, 0, 1, 2))  # (n, 1, 2): segment i runs p1 -> p2
    u = np.linspace(0.0, 1.0, per_seg, endpoint=False)[:, None]
    pts = 0.5 * ((2 * p1) + (-p0 + p2) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u ** 2
                 + (-p0 + 3 * p1 - 3 * p2 + p3) * u ** 3)
    return pts.reshape(-1, 2)


def _curve(kind: str, rng: np.random.Generator, hx: float, hy: float) -> np.ndarray:
    """A closed curve roughly filling the half-extents (hx, hy), centred near the origin."""
    th = np.linspace(0.0, 2 * np.pi, 2048, endpoint=False)
    if kind == "oval":
        n = rng.uniform(2.0, 4.0)  # superellipse exponent: ellipse .. rounded rectangle
        a, b = hx * rng.uniform(0.55, 1.0), hy * rng.uniform(0.55, 1.0)
        c, s = np.cos(th), np.sin(th)
        pts = np.stack([a * np.sign(c) * np.abs(c) ** (2 / n), b * np.sign(s) * np.abs(s) ** (2 / n)], 1)
    elif kind == "figure8":
        a, b = rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0)
        pts = np.stack([np.sin(th), np.sin(th) * np.cos(th) * 2.0], 1)  # lemniscate of Gerono
        # long axis along y (the longer side of the track) or x
        pts = pts[:, ::-1] * [hx * b, hy * a] if rng.random() < 0.5 else pts * [hx * a, hy * b]
    else:  # spline
        n = int(rng.integers(5, 9))
        # keep waypoints well separated in angle so the curve does not self-intersect
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(-0.25, 0.25, n) * (2 * np.pi / n)
        ang += rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(0.45, 1.0, n)
        wp = np.stack([hx * rad * np.cos(ang), hy * rad * np.sin(ang)], 1)
        pts = _catmull_rom_closed(wp, 2048 // n + 1)
    rot = rng.uniform(-0.25, 0.25)
    cr, sr = math.cos(rot), math.sin(rot)
    pts = pts @ np.array([[cr, sr], [-sr, cr]])
    if rng.random() < 0.5:
        pts = pts[::-1].copy()  # drive the other way round
    return pts


def _fit_into(pts: np.ndarray, hx: float, hy: float, rng: np.random.Generator) -> np.ndarray:
    """Scale (about its centre) and shift the curve so it lies inside [-hx, hx] x [-hy, hy]."""
    lo, hi = pts.min(0), pts.max(0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    scale = min(1.0, hx / half[0], hy / half[1])
    pts = (pts - centre) * scale
    half = half * scale
    slack = np.array([hx, hy]) - half
    return pts + rng.uniform(-slack, slack)


def sample_trajectory(cfg: SimConfig, rng: np.random.Generator, margin: float = 0.25) -> Trajectory:
    """A random closed trajectory inside the track (``margin`` metres from its edges)."""
    x0, x1, y0, y1 = cfg.track.bounds
    hx, hy = (x1 - x0) / 2 - margin, (y1 - y0) / 2 - margin
    kind = TRAJECTORY_KINDS[int(rng.integers(len(TRAJECTORY_KINDS)))]
    pts = _fit_into(_curve(kind, rng, hx, hy), hx, hy, rng)
    pts = pts + [(x0 + x1) / 2, (y0 + y1) / 2]
    vmin, vmax = cfg.car.speed_min, cfg.car.speed_max
    v0 = rng.uniform(vmin + 0.3 * (vmax - vmin), vmax - 0.3 * (vmax - vmin))
    room = min(v0 - vmin, vmax - v0)
    amps = rng.dirichlet([1.0, 1.0]) * room * rng.uniform(0.6, 1.0)
    periods = rng.uniform([4.0, 1.5], [12.0, 4.0])
    traj = Trajectory(kind, pts.astype(np.float64), float(v0), amps, 2 * np.pi / periods,
                      rng.uniform(0, 2 * np.pi, 2), 0.0)
    traj.s0 = float(rng.uniform(0, traj.length))
    return traj


@dataclass(frozen=True)
class Obstacle:
    """A static obstacle on the floor: a ``box`` (``size_x`` x ``size_y`` rotated by ``yaw``) or a
    ``pillar`` (radius ``size_x / 2``), metres; ``color`` linear RGB."""

    kind: str
    center: tuple[float, float]
    size_x: float
    size_y: float
    height: float
    yaw: float
    color: tuple[float, float, float]

    @property
    def radius(self) -> float:
        """Radius of a circle enclosing the footprint."""
        return 0.5 * math.hypot(self.size_x, self.size_y) if self.kind == "box" else self.size_x / 2

    def footprint_distance(self, pts: np.ndarray) -> np.ndarray:
        """Distance from points ``(N, 2)`` to the footprint (0 inside)."""
        d = np.asarray(pts, dtype=np.float64) - self.center
        if self.kind == "pillar":
            return np.maximum(np.linalg.norm(d, axis=1) - self.size_x / 2, 0.0)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        lx, ly = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
        qx, qy = np.maximum(np.abs(lx) - self.size_x / 2, 0), np.maximum(np.abs(ly) - self.size_y / 2, 0)
        return np.hypot(qx, qy)

    def segment_hits(self, a: np.ndarray, b: np.ndarray) -> bool:
        ts = np.linspace(0.0, 1.0, 48)[:, None]
        return bool((self.footprint_distance(a + ts * (b - a)) <= 0.0).any())


def sample_obstacles(cfg: SimConfig, traj: Trajectory, rng: np.random.Generator) -> list[Obstacle]:
    """Obstacles (number from the config) near or inside the track, clear of the car's path and the nodes."""
    n = int(rng.integers(cfg.obstacles_min, cfg.obstacles_max + 1))
    x0, x1, y0, y1 = cfg.track.bounds
    car_clear = 0.5 * math.hypot(cfg.car.length, cfg.car.width) + 0.06
    path = traj.points[::8]
    nodes_xy = np.array([n_.position[:2] for n_ in cfg.nodes])
    out: list[Obstacle] = []
    for _ in range(n):
        for _attempt in range(300):
            if rng.random() < 0.6:
                kind = "box"
                sx, sy = rng.uniform(0.2, 0.55), rng.uniform(0.2, 0.55)
                height = rng.uniform(0.25, 0.8)
                grey = rng.uniform(0.35, 0.8)
                tint = rng.uniform(0.85, 1.15, 3) * [1.0, 0.92, 0.78] if rng.random() < 0.5 else np.ones(3)
                color = np.clip(grey * tint, 0, 1)
            else:
                kind = "pillar"
                sx = sy = rng.uniform(0.16, 0.32)
                height = rng.uniform(0.9, 2.0)
                color = np.clip(rng.uniform(0.55, 0.85) * rng.uniform(0.92, 1.08, 3), 0, 1)
            cx, cy = rng.uniform(x0 - 0.5, x1 + 0.5), rng.uniform(y0 - 0.5, y1 + 0.5)
            ob = Obstacle(kind, (float(cx), float(cy)), float(sx), float(sy), float(height),
                          float(rng.uniform(0, np.pi)), tuple(float(c) for c in color))
            wall = min(cfg.room.size_x / 2 - abs(cx), cfg.room.size_y / 2 - abs(cy))
            # clear of the car's path, the nodes, the other obstacles and the walls
            if (ob.footprint_distance(path).min() >= car_clear
                    and np.linalg.norm(nodes_xy - [cx, cy], axis=1).min() >= ob.radius + 0.9
                    and all(math.dist(ob.center, o.center) >= ob.radius + o.radius + 0.15 for o in out)
                    and wall >= ob.radius + 0.1):
                out.append(ob)
                break
    return out


#: Saturated car and poster colours: red, orange, yellow, blue, magenta, green.
PALETTE = np.array([[0.85, 0.05, 0.04], [0.95, 0.35, 0.02], [0.90, 0.80, 0.05], [0.05, 0.25, 0.90],
                    [0.80, 0.05, 0.65], [0.10, 0.70, 0.15]])
_FLOOR_COLORS = np.array([
    [0.50, 0.50, 0.50], [0.55, 0.47, 0.38], [0.42, 0.33, 0.24], [0.40, 0.44, 0.50],
    [0.38, 0.42, 0.36], [0.62, 0.60, 0.56], [0.30, 0.30, 0.32],
])
FLOOR_TEXTURES: tuple[str, ...] = ("plain", "tiles", "planks", "carpet")


@dataclass(frozen=True)
class Appearance:
    """Lighting and colours of one episode (linear RGB in [0, 1]); ``lights`` are ceiling point
    lights ``(K, 3)``; ``posters (P, 7)``: wall index, centre u, centre z, half width, half
    height and a colour index into ``PALETTE``."""

    gain: float
    cast: tuple[float, float, float]
    ambient: float
    lights: np.ndarray
    light_power: float
    floor_color: tuple[float, float, float]
    wall_color: tuple[float, float, float]
    ceiling_color: tuple[float, float, float]
    tape_color: tuple[float, float, float]
    floor_texture: str
    texture_scale: float
    texture_contrast: float
    texture_seed: int
    car_color: tuple[float, float, float]
    posters: np.ndarray
    light_norm: float = 1.0


def shade(points: np.ndarray, normals: np.ndarray, app: Appearance) -> np.ndarray:
    """Illumination factor at ``points`` with ``normals`` (ambient + point lights, no shadows),
    divided by ``app.light_norm`` so the track floor averages 1."""
    lit = np.full(points.shape[0], app.ambient)
    for lp in app.lights:
        v = lp[None, :] - points
        dist2 = np.maximum((v * v).sum(1), 0.05)
        cos = np.maximum((v * normals).sum(1) / np.sqrt(dist2), 0.0)
        lit = lit + app.light_power * cos / (1.0 + dist2)
    return lit / app.light_norm


def sample_appearance(cfg: SimConfig, rng: np.random.Generator) -> Appearance:
    """Random lighting, floor/wall colours and texture, car colour for one episode."""
    floor = _FLOOR_COLORS[int(rng.integers(len(_FLOOR_COLORS)))] * rng.uniform(0.85, 1.15, 3)
    wall = np.clip(rng.uniform(0.55, 0.9) * rng.uniform(0.9, 1.1, 3), 0, 1)
    tape = np.full(3, 0.92) if rng.random() < 0.6 else np.full(3, 0.12)
    car = np.clip(PALETTE[int(rng.integers(len(PALETTE)))] + rng.uniform(-0.05, 0.05, 3), 0, 1)
    light = cfg.lighting
    n_lights = int(rng.integers(light.lights[0], light.lights[1] + 1))
    lights = np.stack([rng.uniform(-cfg.room.size_x / 3, cfg.room.size_x / 3, n_lights),
                       rng.uniform(-cfg.room.size_y / 3, cfg.room.size_y / 3, n_lights),
                       np.full(n_lights, cfg.room.height - 0.05)], 1)
    n_post = int(rng.integers(0, 5))
    posters = np.stack([rng.integers(0, 4, n_post), rng.uniform(-1.8, 1.8, n_post),
                        rng.uniform(1.0, 1.9, n_post), rng.uniform(0.2, 0.5, n_post),
                        rng.uniform(0.15, 0.4, n_post), rng.integers(0, len(PALETTE), n_post)], 1)
    cast = rng.uniform(0.85, 1.15, 3)
    cast = cast / cast.mean()
    app = Appearance(
        gain=float(rng.uniform(*light.gain)),
        cast=tuple(float(c) for c in cast),
        ambient=float(rng.uniform(*light.ambient)),
        lights=lights,
        light_power=float(rng.uniform(*light.power)),
        floor_color=tuple(float(c) for c in np.clip(floor, 0, 1)),
        wall_color=tuple(float(c) for c in wall),
        ceiling_color=(0.9, 0.9, 0.9),
        tape_color=tuple(float(c) for c in tape),
        floor_texture=FLOOR_TEXTURES[int(rng.integers(len(FLOOR_TEXTURES)))],
        texture_scale=float(rng.uniform(0.2, 0.6)),
        texture_contrast=float(rng.uniform(0.04, 0.15)),
        texture_seed=int(rng.integers(2 ** 31)),
        car_color=tuple(float(c) for c in car),
        posters=posters,
    )
    # normalise the lighting so the track floor averages 1 (exposure then varies via gain)
    x0, x1, y0, y1 = cfg.track.bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, 12), np.linspace(y0, y1, 12))
    fp = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    fn = np.tile([0.0, 0.0, 1.0], (fp.shape[0], 1))
    return replace(app, light_norm=float(shade(fp, fn, app).mean()))


@dataclass
class Scene:
    trajectory: Trajectory
    obstacles: list[Obstacle]
    appearance: Appearance

    @classmethod
    def sample(cls, cfg: SimConfig, rng: np.random.Generator) -> "Scene":
        traj = sample_trajectory(cfg, rng)
        return cls(traj, sample_obstacles(cfg, traj, rng), sample_appearance(cfg, rng))
