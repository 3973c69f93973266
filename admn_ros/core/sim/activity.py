"""MM-Fi-style human-activity simulator: articulated people seen by one rgb/depth/radar node
(body model, activities, subjects, axes: docs/DATASET.md). :func:`render_window` renders the
dataset's windows, :class:`ActivitySimulator` the live streams with runtime corruptions. Same
``(seed, subject_id[, episode])``, same arrays.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from admn_ros.core.sim.config import RadarConfig, check_index, check_rate
from admn_ros.core.sim.render import DEPTH_MIN_M, RGB_SENSOR_SIGMA, depth_mm, depth_sigma_m, speckle_to_unit
from admn_ros.core.sim.simulator import CorruptibleStreams, StreamFrame
from admn_ros.core.streams import DEPTH_MAX_M, MODALITY_NAMES

SENSOR_NODE: str = "node1"
STREAM_IDS: tuple[str, ...] = tuple(f"{SENSOR_NODE}/{m}" for m in MODALITY_NAMES)

#: Sensor height above the floor (m; camera and radar), camera vertical field of view (deg).
SENSOR_HEIGHT_M: float = 1.2
CAMERA_VFOV_DEG: float = 58.0
_SENSOR = np.array([0.0, 0.0, SENSOR_HEIGHT_M])   # camera and radar centre (x forward, y left, z up)
RADAR_BINS: int = 64
#: Range-Doppler axes (also the MM-Fi converter's): rows range [0, RANGE_MAX), columns Doppler [-MAX, +MAX).
RADAR_RANGE_MAX_M: float = 6.0
RADAR_DOPPLER_MAX_MPS: float = 3.0
RANGE_RES_M: float = RADAR_RANGE_MAX_M / RADAR_BINS
DOPPLER_RES_MPS: float = 2.0 * RADAR_DOPPLER_MAX_MPS / RADAR_BINS
#: Radar frame integration: sub-frame offsets (s) and the central-difference half step (s).
RADAR_SUBFRAMES_S: tuple[float, ...] = (-0.03, 0.0, 0.03)
RADAR_DIFF_S: float = 0.008
#: Body reflectivity scale, receiver noise power and static clutter levels (power units of
#: :func:`radar_power_to_unit`: 1.0 -> 0 dB -> 0.83).
RADAR_BODY_GAIN: float = 100.0
RADAR_NOISE_POWER: float = 0.004
RADAR_LEAKAGE_POWER: float = 0.6
RADAR_BLUR_RANGE_BINS: float = 0.9
RADAR_BLUR_DOPPLER_BINS: float = 0.7
#: Default live-schedule segment length (s), pose blend at a change (s), noise bank size.
SCHEDULE_SEGMENT_S: float = 4.0
BLEND_S: float = 0.5
BANK_SIZE: int = 4

#: Pose parameters (angles in radians, lengths in metres); ``l_``/``r_`` = the subject's left/right.
_SIDE_PARAMS: tuple[str, ...] = ("sh_flex", "sh_abd", "sh_horiz", "sh_twist", "elbow", "hip_flex", "hip_abd",
                                 "knee")
POSE_PARAMS: tuple[str, ...] = (("lift", "pitch", "shift_x", "sway")
                                + tuple(f"l_{p}" for p in _SIDE_PARAMS) + tuple(f"r_{p}" for p in _SIDE_PARAMS))
_PI = {name: i for i, name in enumerate(POSE_PARAMS)}
_REST_DEG = {"sh_abd": 8.0, "elbow": 12.0, "knee": 3.0}

#: Joints of the body model, in the order of :func:`forward_kinematics`' second axis.
JOINTS: tuple[str, ...] = ("pelvis", "chest", "neck", "head", "l_shoulder", "l_elbow", "l_hand", "r_shoulder",
                           "r_elbow", "r_hand", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
                           "l_toe", "r_toe")
_J = {name: i for i, name in enumerate(JOINTS)}

# anthropometric fractions of the body height
_THIGH, _SHANK, _ANKLE_H, _FOOT = 0.245, 0.246, 0.039, 0.10
_TORSO, _NECK, _HEAD = 0.288, 0.052, 0.075
_SHOULDER_W, _HIP_W = 0.112, 0.055
_UPPER_ARM, _FOREARM = 0.186, 0.205   # forearm includes the hand
_R_UPPER_ARM, _R_FOREARM, _R_THIGH, _R_SHANK, _R_FOOT = 0.027, 0.021, 0.038, 0.028, 0.02
_R_NECK, _R_HEAD, _R_HAND, _TORSO_DEPTH = 0.028, 0.062, 0.026, 0.06


class ActivityError(ValueError):
    """Bad activity-simulator input (unknown activity, bad schedule, bad geometry)."""


def activity_index(name: str) -> int:
    try:
        return ACTIVITIES.index(name)
    except ValueError:
        raise ActivityError(f"unknown activity {name!r}; known: {list(ACTIVITIES)}") from None


_SKIN = ((0.96, 0.80, 0.69), (0.90, 0.72, 0.58), (0.78, 0.57, 0.42), (0.62, 0.43, 0.30), (0.42, 0.28, 0.19),
         (0.30, 0.20, 0.14))
_HAIR = ((0.08, 0.06, 0.05), (0.25, 0.16, 0.09), (0.45, 0.30, 0.15), (0.80, 0.68, 0.42), (0.62, 0.60, 0.58))
_PANTS = ((0.12, 0.16, 0.30), (0.20, 0.22, 0.25), (0.08, 0.08, 0.09), (0.55, 0.48, 0.35), (0.30, 0.34, 0.42),
          (0.35, 0.20, 0.15))
_SHOES = ((0.08, 0.08, 0.08), (0.90, 0.90, 0.88), (0.35, 0.22, 0.12), (0.20, 0.25, 0.45))
_FLOORS = ((0.55, 0.40, 0.25), (0.60, 0.60, 0.58), (0.78, 0.72, 0.60), (0.40, 0.42, 0.45), (0.70, 0.55, 0.40))


@dataclass(frozen=True)
class Subject:
    """One simulated person and the room behind them (colours RGB in [0, 1])."""

    seed: int
    subject_id: int
    height_m: float                     # segment lengths are fractions of it
    build: float                        # limb-thickness factor
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shirt: tuple[float, float, float]
    pants: tuple[float, float, float]
    shoes: tuple[float, float, float]
    long_sleeves: bool
    handedness: int                     # +1 left-handed, -1 right-handed
    speed: float                        # periods are divided by it
    amplitude: float                    # scales the deviation from the rest pose
    phase: float                        # cycle-phase offset in [0, 1)
    distance_m: float                   # stance along the sensor axis
    lateral_m: float                    # to the sensor's left (+)
    yaw_deg: float                      # away from facing the sensor, counter-clockwise
    wall_m: float
    wall: tuple[float, float, float]
    floor: tuple[float, float, float]
    floor_pattern: int                  # 0 tiles, 1 planks, 2 plain
    exposure: float
    cast: tuple[float, float, float]
    light_side: float                   # -1 light from the sensor's right .. +1 from its left
    wall_reflectivity: float            # radar power of the wall clutter
    decor_seed: int

    def to_dict(self) -> dict[str, object]:
        return {k: [round(x, 4) for x in v] if isinstance(v, tuple) else round(v, 4) if isinstance(v, float) else v
                for k, v in asdict(self).items()}


def _colour(rng: np.random.Generator, base: tuple[float, float, float], jitter: float = 0.08
            ) -> tuple[float, float, float]:
    c = np.clip(np.asarray(base) * rng.uniform(1 - jitter, 1 + jitter, 3), 0.0, 1.0)
    return (float(c[0]), float(c[1]), float(c[2]))


def draw_subject(seed: int, subject_id: int) -> Subject:
    """The subject ``subject_id`` of dataset seed ``seed`` (deterministic; see :class:`Subject`)."""
    seed, subject_id = check_index("seed", seed, ActivityError), check_index("subject_id", subject_id, ActivityError)
    rng = np.random.default_rng(np.random.SeedSequence([seed, subject_id, 0xAC7]))
    pick = lambda pal: pal[int(rng.integers(len(pal)))]  # noqa: E731
    hue = rng.uniform(0, 180)
    hsv = np.array([[[hue, rng.uniform(60, 230), rng.uniform(70, 235)]]], np.uint8)
    shirt = tuple(float(x) / 255.0 for x in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    distance = float(rng.uniform(2.3, 3.5))
    return Subject(
        seed=seed, subject_id=subject_id,
        height_m=float(rng.uniform(1.5, 1.95)), build=float(rng.uniform(0.85, 1.2)),
        skin=_colour(rng, pick(_SKIN), 0.05), hair=_colour(rng, pick(_HAIR)), shirt=shirt,  # type: ignore[arg-type]
        pants=_colour(rng, pick(_PANTS)), shoes=_colour(rng, pick(_SHOES)),
        long_sleeves=bool(rng.random() < 0.5), handedness=1 if rng.random() < 0.15 else -1,
        speed=float(rng.uniform(0.7, 1.3)), amplitude=float(rng.uniform(0.8, 1.2)), phase=float(rng.random()),
        distance_m=distance, lateral_m=float(rng.uniform(-0.5, 0.5)), yaw_deg=float(rng.uniform(-30, 30)),
        wall_m=float(max(rng.uniform(4.0, 5.0), distance + 0.8)),
        wall=_colour(rng, tuple(np.full(3, rng.uniform(0.55, 0.92))), 0.1),  # type: ignore[arg-type]
        floor=_colour(rng, pick(_FLOORS), 0.12), floor_pattern=int(rng.integers(3)),
        exposure=float(rng.uniform(0.65, 1.15)),
        cast=tuple(float(c) for c in rng.uniform(0.93, 1.07, 3)),  # type: ignore[arg-type]
        light_side=float(rng.uniform(-1, 1)), wall_reflectivity=float(rng.uniform(0.08, 0.35)),
        decor_seed=int(rng.integers(2 ** 31)),
    )


def _keys(phi: np.ndarray, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Smoothstep curve through ``(phase, value)`` keys from phase 0 to 1."""
    xs, vs = np.array(points, np.float64).T
    i = np.clip(np.searchsorted(xs, phi, side="right") - 1, 0, len(xs) - 2)
    u = np.clip((phi - xs[i]) / (xs[i + 1] - xs[i]), 0.0, 1.0)
    s = u * u * (3.0 - 2.0 * u)
    return vs[i] + (vs[i + 1] - vs[i]) * s


def _cos_cycle(phi: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * phi))


# Each activity: phi -> {param: value}; angles in DEGREES, "d_" = dominant side, "o_" = other,
# "b_" = both sides. Missing parameters stay at rest; a number holds for the whole cycle.
def _wave(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    s = np.sin(2 * np.pi * phi)
    return {"d_sh_abd": 100 + 6 * s, "d_sh_flex": 15, "d_sh_twist": 90, "d_elbow": 85 + 40 * s, "pitch": 2}


def _squat(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    d = _cos_cycle(phi)
    return {"b_hip_flex": 100 * d, "b_knee": 120 * d, "pitch": 35 * d, "b_sh_flex": 90 * d, "b_elbow": 12,
            "b_sh_abd": 8}


def _jump(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    c = _keys(phi, [(0, 0), (0.22, 1), (0.32, 0), (0.72, 0), (0.82, 0.6), (1, 0)])
    u = np.clip((phi - 0.32) / 0.4, 0.0, 1.0)
    return {"lift": 4.0 * 0.22 * u * (1 - u), "b_hip_flex": 55 * c, "b_knee": 85 * c, "pitch": 22 * c,
            "b_sh_flex": _keys(phi, [(0, 0), (0.22, -40), (0.42, 150), (0.6, 150), (0.82, 15), (1, 0)]), "b_elbow": 15}


def _walk(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    s = np.sin(2 * np.pi * phi)
    up, down = np.maximum(s, 0), np.maximum(-s, 0)
    return {"l_hip_flex": 50 * up, "l_knee": 80 * up, "r_hip_flex": 50 * down, "r_knee": 80 * down,
            "l_sh_flex": -25 * s, "r_sh_flex": 25 * s, "b_elbow": 30, "pitch": 3}


def _raise_arms(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    d = _cos_cycle(phi)
    return {"b_sh_abd": 10 + 160 * d, "b_sh_flex": 10 * d, "b_elbow": 10 + 8 * d}


def _sit_down(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    d = _keys(phi, [(0, 0), (0.22, 1), (0.55, 1), (0.77, 0), (1, 0)])
    b = _keys(phi, [(0, 0), (0.11, 1), (0.22, 0), (0.55, 0), (0.66, 1), (0.77, 0), (1, 0)])
    return {"b_hip_flex": 92 * d, "b_knee": 92 * d, "pitch": 10 * d + 32 * b, "b_sh_flex": 28 * d + 50 * b,
            "b_elbow": 12 + 45 * d * (1 - b), "shift_x": -0.04 * b}


def _bend(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    d = _keys(phi, [(0, 0), (0.3, 1), (0.5, 1), (0.8, 0), (1, 0)])
    return {"pitch": 80 * d, "b_knee": 15 * d, "b_hip_flex": 8 * d, "shift_x": -0.12 * d, "b_sh_flex": 12 * d,
            "b_elbow": 12}


def _kick(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    k = _keys(phi, [(0, 0), (0.2, 1), (0.5, 1), (0.7, 0), (1, 0)])
    return {"d_hip_flex": _keys(phi, [(0, 0), (0.18, 45), (0.32, 85), (0.46, 45), (0.62, 0), (1, 0)]),
            "d_knee": _keys(phi, [(0, 0), (0.18, 85), (0.32, 5), (0.46, 85), (0.62, 0), (1, 0)]),
            "pitch": _keys(phi, [(0, 0), (0.32, -10), (0.62, 0), (1, 0)]),
            "b_sh_abd": 10 + 25 * k, "o_sh_flex": 30 * k, "d_sh_flex": -15 * k, "o_knee": 8 * k}


def _punch(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    out: dict[str, np.ndarray | float] = {"pitch": 5, "b_knee": 12, "b_hip_flex": 6, "b_sh_abd": 10}
    for side, keys in (("d", [(0, 0), (0.2, 1), (0.4, 0), (1, 0)]),
                       ("o", [(0, 0), (0.5, 0), (0.7, 1), (0.9, 0), (1, 0)])):
        e = _keys(phi, keys)
        out |= {f"{side}_sh_flex": 35 + 53 * e, f"{side}_sh_horiz": -15 + 7 * e, f"{side}_elbow": 125 - 120 * e}
    return out


def _clap(phi: np.ndarray) -> dict[str, np.ndarray | float]:
    return {"b_sh_flex": 80, "b_elbow": 25, "b_sh_horiz": _keys(phi, [(0, 50), (0.45, -17), (0.55, -17), (1, 50)])}


#: activity -> (pose function of the phase, period in seconds at speed 1)
_ACTIVITY_FUNCS: dict[str, tuple[Callable[[np.ndarray], dict[str, np.ndarray | float]], float]] = {
    "wave": (_wave, 1.0), "squat": (_squat, 2.4), "jump": (_jump, 1.1), "walk_in_place": (_walk, 1.1),
    "raise_arms": (_raise_arms, 2.8), "sit_down": (_sit_down, 5.0), "bend": (_bend, 4.0), "kick": (_kick, 1.8),
    "punch": (_punch, 1.5), "clap": (_clap, 0.8),
}
#: The simulated activities, in class-index order.
ACTIVITIES: tuple[str, ...] = tuple(_ACTIVITY_FUNCS)


_REST = np.array([math.radians(_REST_DEG.get(name[2:], 0.0)) if name[:2] in ("l_", "r_") else 0.0
                  for name in POSE_PARAMS])
_ANGLE = np.array([name not in ("lift", "shift_x", "sway") for name in POSE_PARAMS])


def activity_params(subject: Subject, activity: str, times: np.ndarray) -> np.ndarray:
    """Pose parameters ``(K, len(POSE_PARAMS))`` of ``subject`` performing ``activity``
    continuously since t = 0, at ``times`` (seconds, shape ``(K,)``)."""
    k = activity_index(activity)
    fn, period = _ACTIVITY_FUNCS[activity]
    # the subject's style of this activity: period factor, amplitude factor, phase offset
    rng = np.random.default_rng(np.random.SeedSequence([subject.seed, subject.subject_id, 0x57E, k]))
    pf, af, ph = float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.9, 1.1)), float(rng.random())
    t = np.asarray(times, np.float64).reshape(-1)
    phi = np.mod(t * subject.speed / (period * pf) + subject.phase + ph, 1.0)
    out = np.tile(_REST, (t.size, 1))
    dom, oth = ("l", "r") if subject.handedness > 0 else ("r", "l")
    sides = {"d": (dom,), "o": (oth,), "b": ("l", "r"), "l": ("l",), "r": ("r",)}
    for key, val in fn(phi).items():
        v = np.broadcast_to(np.asarray(val, np.float64), t.shape)
        pre, _, name = key.partition("_")
        if pre in sides and name in _SIDE_PARAMS:
            for s in sides[pre]:
                out[:, _PI[f"{s}_{name}"]] = np.radians(v)
        else:
            out[:, _PI[key]] = np.radians(v) if _ANGLE[_PI[key]] else v
    out = _REST + subject.amplitude * af * (out - _REST)
    # idle motion: slow sway and breathing-like pitch
    out[:, _PI["sway"]] += 0.012 * np.sin(2 * np.pi * t / 3.7 + 6.0 * subject.phase)
    out[:, _PI["pitch"]] += math.radians(1.5) * np.sin(2 * np.pi * t / 4.3 + 3.0 * subject.phase)
    return out


def _rot(axis: int, a: np.ndarray) -> np.ndarray:
    """Batched rotation matrices ``(K, 3, 3)`` about axis 0 (x), 1 (y) or 2 (z)."""
    c, s = np.cos(a), np.sin(a)
    R = np.zeros((a.size, 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[:, axis, axis] = 1.0
    R[:, i, i] = R[:, j, j] = c
    R[:, i, j], R[:, j, i] = -s, s
    return R


def _apply(R: np.ndarray, v: Sequence[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return np.einsum("kij,kj->ki", R, np.broadcast_to(v, (R.shape[0], 3)))


def forward_kinematics(subject: Subject, params: np.ndarray) -> np.ndarray:
    """World joint positions ``(K, len(JOINTS), 3)`` (metres; x forward from the sensor, y left,
    z up) for pose parameters ``(K, len(POSE_PARAMS))``."""
    P = np.atleast_2d(np.asarray(params, np.float64))
    K = P.shape[0]
    H = subject.height_m
    col = lambda name: P[:, _PI[name]]  # noqa: E731
    down = (0.0, 0.0, -1.0)
    J = np.zeros((K, len(JOINTS), 3))
    Rt = _rot(1, col("pitch"))
    spine = _apply(Rt, (0.0, 0.0, 1.0))
    J[:, _J["chest"]] = _TORSO * H * spine
    J[:, _J["neck"]] = J[:, _J["chest"]] + _NECK * H * spine
    J[:, _J["head"]] = J[:, _J["neck"]] + _HEAD * H * spine
    for side, s in (("l", 1.0), ("r", -1.0)):
        p = lambda name: col(f"{side}_{name}")  # noqa: E731
        sh = J[:, _J["chest"]] + np.array([0.0, s * _SHOULDER_W * H, 0.0])
        R_arm = (_rot(2, s * p("sh_horiz")) @ _rot(0, s * p("sh_abd")) @ _rot(1, -p("sh_flex"))
                 @ _rot(2, s * p("sh_twist")))
        e = p("elbow")
        fore_local = np.stack([np.sin(e), np.zeros(K), -np.cos(e)], 1)
        elbow = sh + _UPPER_ARM * H * _apply(R_arm, down)
        hand = elbow + _FOREARM * H * np.einsum("kij,kj->ki", R_arm, fore_local)
        hip = np.tile([0.0, s * _HIP_W * H, 0.0], (K, 1))
        R_leg = _rot(0, s * p("hip_abd")) @ _rot(1, -p("hip_flex"))
        k = p("knee")
        shank_local = np.stack([-np.sin(k), np.zeros(K), -np.cos(k)], 1)
        knee = hip + _THIGH * H * _apply(R_leg, down)
        ankle = knee + _SHANK * H * np.einsum("kij,kj->ki", R_leg, shank_local)
        toe = ankle + np.array([_FOOT * H, 0.0, -0.6 * _ANKLE_H * H])
        for name, v in (("shoulder", sh), ("elbow", elbow), ("hand", hand), ("hip", hip), ("knee", knee),
                        ("ankle", ankle), ("toe", toe)):
            J[:, _J[f"{side}_{name}"]] = v
    # stand on the lower foot: pelvis height and fore-aft position from the ankles
    az = J[:, [_J["l_ankle"], _J["r_ankle"]], 2]
    ax = J[:, [_J["l_ankle"], _J["r_ankle"]], 0]
    zmin = az.min(1)
    w = np.exp(-(az - zmin[:, None]) / 0.02)
    offset = np.stack([-(w * ax).sum(1) / w.sum(1) + col("shift_x"), col("sway"),
                       _ANKLE_H * H - zmin + np.maximum(col("lift"), 0.0)], 1)
    J += offset[:, None, :]
    # body -> world: facing the sensor (body +x = world -x), yawed, at the stance position
    yaw = math.pi + math.radians(subject.yaw_deg)
    c, s = math.cos(yaw), math.sin(yaw)
    Rw = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return J @ Rw.T + np.array([subject.distance_m, subject.lateral_m, 0.0])


class Performance:
    """A schedule of ``(activity, seconds)`` segments cycled forever, with :data:`BLEND_S` pose
    blends at the changes."""

    def __init__(self, subject: Subject, schedule: Sequence[tuple[str, float]]) -> None:
        if not schedule:
            raise ActivityError("schedule must hold at least one (activity, seconds) entry")
        self.subject, self.activities, durs = subject, [], []
        for entry in schedule:
            try:
                act, sec = entry
                sec = float(sec)
            except (TypeError, ValueError):
                raise ActivityError(f"schedule entries must be (activity, seconds), got {entry!r}") from None
            activity_index(act)
            if not (math.isfinite(sec) and sec > 0):
                raise ActivityError(f"schedule entry {entry!r}: seconds must be > 0")
            self.activities.append(str(act))
            durs.append(sec)
        self.durations = np.array(durs)
        self.starts = np.concatenate([[0.0], np.cumsum(self.durations)[:-1]])
        self.cycle_s = float(self.durations.sum())

    def segment(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Segment index and time into it at ``t``."""
        tc = np.mod(np.asarray(t, np.float64), self.cycle_s)
        i = np.clip(np.searchsorted(self.starts, tc, side="right") - 1, 0, len(self.starts) - 1)
        return i, tc - self.starts[i]

    def label(self, t: float) -> str:
        return self.activities[int(self.segment(t)[0])]

    def params(self, times: np.ndarray) -> np.ndarray:
        t = np.asarray(times, np.float64).reshape(-1)
        if len(set(self.activities)) == 1:
            return activity_params(self.subject, self.activities[0], t)
        seg, into = self.segment(t)
        n = len(self.activities)
        prev = (seg - 1) % n
        need = sorted({self.activities[int(i)] for i in np.concatenate([seg, prev])})
        table = {a: activity_params(self.subject, a, t) for a in need}
        cur = np.stack([table[self.activities[int(i)]][k] for k, i in enumerate(seg)])
        old = np.stack([table[self.activities[int(i)]][k] for k, i in enumerate(prev)])
        u = np.clip(into / BLEND_S, 0.0, 1.0)
        w = (u * u * (3 - 2 * u))[:, None]
        return old + (cur - old) * w


def default_schedule(seed: int, episode: int, seconds: float = SCHEDULE_SEGMENT_S) -> list[tuple[str, float]]:
    """Every activity for ``seconds`` in an order drawn from ``(seed, episode)``."""
    order = np.random.default_rng(np.random.SeedSequence([seed, episode, 0x5C4E])).permutation(len(ACTIVITIES))
    return [(ACTIVITIES[int(i)], float(seconds)) for i in order]


def _limbs(build: float) -> list[tuple[str, str, float, float]]:
    """The body's capsules: (joint, joint, radius, length) as fractions of the height; neck
    first, then per side upper arm, forearm, thigh, shank, foot."""
    out = [("neck", "head", _R_NECK, _NECK + _HEAD)]
    for s in ("l", "r"):
        out += [(f"{s}_shoulder", f"{s}_elbow", _R_UPPER_ARM * build, _UPPER_ARM),
                (f"{s}_elbow", f"{s}_hand", _R_FOREARM * build, _FOREARM),
                (f"{s}_hip", f"{s}_knee", _R_THIGH * build, _THIGH),
                (f"{s}_knee", f"{s}_ankle", _R_SHANK * build, _SHANK), (f"{s}_ankle", f"{s}_toe", _R_FOOT, _FOOT)]
    return out


def _radar_points(subject: Subject) -> tuple[np.ndarray, np.ndarray]:
    """Radar scatter points as ``M (Np, J)`` (points = M @ joints) and weights ``(Np,)`` ~ area."""
    H = subject.height_m
    rows: list[np.ndarray] = []
    wts: list[float] = []
    for a, c, r, length in _limbs(subject.build):
        n = max(2, int(math.ceil(length * H / 0.06)))
        f = (np.arange(n) + 0.5) / n
        m = np.zeros((n, len(JOINTS)))
        m[:, _J[a]] += 1 - f
        m[:, _J[c]] += f
        rows += list(m)
        wts += [2 * r * H * length * H / n] * n
    # torso: a 4 x 3 grid between the shoulders and the hips
    tw = 2 * _SHOULDER_W * H * _TORSO * H
    for u in np.linspace(0.1, 0.9, 4):
        for v in np.linspace(0.15, 0.85, 3):
            m = np.zeros(len(JOINTS))
            for side, wl in (("l", v), ("r", 1 - v)):
                m[_J[f"{side}_shoulder"]] += wl * (1 - u)
                m[_J[f"{side}_hip"]] += wl * u
            rows.append(m)
            wts.append(1.3 * tw / 12)
    rows.append(np.eye(len(JOINTS))[_J["head"]])
    wts.append(math.pi * (_R_HEAD * H) ** 2)
    return np.stack(rows), np.array(wts)


_SH = 4   # sub-pixel bits of the cv2 drawing calls


def _ipt(p: np.ndarray) -> tuple[int, int]:
    """Pixel coordinates in cv2's fixed point (:data:`_SH` fractional bits)."""
    return int(round(p[0] * 16.0)), int(round(p[1] * 16.0))


def _paint(colour: Sequence[float], light: float, gain: np.ndarray) -> tuple[float, ...]:
    """A [0, 1] RGB ``colour`` lit by ``light``, through the per-channel ``gain`` to 0..255."""
    return tuple(float(c) for c in np.clip(np.asarray(colour) * light * gain, 0, 255))


def _disc(img: np.ndarray, z: np.ndarray, mask: np.ndarray, centre: np.ndarray, rad: int,
          colour: tuple[float, ...], depth: float) -> None:
    """A filled disc of ``rad`` pixels: anti-aliased ``colour`` in ``img``, ``depth`` in ``z``, ``mask`` set."""
    c = _ipt(centre)
    cv2.circle(img, c, rad * 16, colour, -1, cv2.LINE_AA, _SH)
    cv2.circle(z, c, rad * 16, depth, -1, cv2.LINE_8, _SH)
    cv2.circle(mask, c, rad * 16, 255, -1, cv2.LINE_8, _SH)


class ActivityRenderer:
    """Renders one subject's rgb / depth / radar frames (the room is precomputed)."""

    def __init__(self, subject: Subject, width: int = 160, height: int = 120) -> None:
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 16 <= int(v) <= 4096:
                raise ActivityError(f"camera {name} must be an integer in [16, 4096], got {v!r}")
        self.subject = subject
        self.W, self.H = int(width), int(height)
        self.f = (self.H / 2.0) / math.tan(math.radians(CAMERA_VFOV_DEG) / 2.0)
        self.cx, self.cy = (self.W - 1) / 2.0, (self.H - 1) / 2.0
        L = np.array([-0.55, 0.6 * subject.light_side, 0.65])
        self.light = L / np.linalg.norm(L)
        bank_rng = np.random.default_rng(np.random.SeedSequence([subject.seed, subject.subject_id, 0xBA4C]))
        self.bg_rgb, self.bg_z = self._background(np.random.default_rng(subject.decor_seed))
        self._rgb_noise = (bank_rng.standard_normal((BANK_SIZE, self.H, self.W, 3), dtype=np.float32)
                           * np.float32(RGB_SENSOR_SIGMA * 255.0))
        self._z_noise = bank_rng.standard_normal((BANK_SIZE, self.H, self.W), dtype=np.float32)
        self._holes = bank_rng.random((BANK_SIZE, self.H, self.W)) < 0.003
        self._edge_keep = bank_rng.random((BANK_SIZE, self.H, self.W)) < 0.5
        self.radar_M, self.radar_w = _radar_points(subject)
        self.radar_static = self._radar_static()
        H = subject.height_m
        sleeve = subject.shirt if subject.long_sleeves else subject.skin
        colours = [subject.skin] + [subject.shirt, sleeve, subject.pants, subject.pants, subject.shoes] * 2
        self._caps = [(a, c, r * H, col) for (a, c, r, _), col in zip(_limbs(subject.build), colours)]

    def _background(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sj = self.subject
        W, H, f = self.W, self.H, self.f
        u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        dy = -(u - self.cx) / f        # world y per unit depth
        dz = -(v - self.cy) / f        # world z per unit depth
        t_floor = np.where(dz < -1e-6, SENSOR_HEIGHT_M / np.maximum(-dz, 1e-9), np.inf)
        z = np.minimum(t_floor, sj.wall_m)
        floor = t_floor < sj.wall_m
        X, Y, Zh = z, z * dy, SENSOR_HEIGHT_M + z * dz
        # wall: colour, light gradient, baseboard, decorations
        wall = np.asarray(sj.wall) * (1.0 + 0.12 * sj.light_side * np.clip(Y / 3.0, -1, 1))[..., None]
        wall = wall * (1.0 - 0.06 * np.clip(Zh - 1.5, 0, 2))[..., None]
        for _ in range(int(rng.integers(0, 3))):
            yc, zc = rng.uniform(-2.5, 2.5), rng.uniform(1.0, 2.0)
            hw, hh = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5)
            col = np.clip(rng.uniform(0.15, 0.95, 3), 0, 1)
            inside = (np.abs(Y - yc) < hw) & (np.abs(Zh - zc) < hh) & ~floor
            wall[inside] = col
        if rng.random() < 0.5:   # a door
            yc = rng.choice([-1, 1]) * rng.uniform(1.2, 2.6)
            door = (np.abs(Y - yc) < 0.45) & (Zh < 2.05) & ~floor
            wall[door] = np.clip(np.asarray(sj.wall) * rng.uniform(0.45, 0.8), 0, 1)
        wall[(Zh < 0.09) & ~floor] *= 0.6
        # floor: pattern, brighter near the light side, contact shadow under the subject
        fc = np.asarray(sj.floor)
        if sj.floor_pattern == 0:      # tiles
            tile = ((np.floor(X / 0.5) + np.floor(Y / 0.5)) % 2) * 0.08 - 0.04
            grout = (np.minimum(np.abs(X / 0.5 - np.round(X / 0.5)), np.abs(Y / 0.5 - np.round(Y / 0.5))) < 0.03)
            mod = 1.0 + tile - 0.18 * grout
        elif sj.floor_pattern == 1:    # planks along x
            plank = np.floor(Y / 0.18)
            mod = 1.0 + 0.07 * np.sin(plank * 12.9898 + 0.37 * X) + 0.04 * np.sin(X * 9.0 + plank)
        else:
            mod = np.ones_like(X)
        fl = fc * mod[..., None] * (1.0 + 0.1 * sj.light_side * np.clip(Y / 3.0, -1, 1))[..., None]
        r2 = (X - sj.distance_m) ** 2 + (Y - sj.lateral_m) ** 2
        fl = fl * (1.0 - 0.35 * np.exp(-r2 / (2 * 0.28 ** 2)))[..., None]
        rgb = np.where(floor[..., None], fl, wall)
        small = rng.standard_normal((max(2, int(H / 12.0)), max(2, int(W / 12.0)))).astype(np.float32)
        rgb = rgb * (1.0 + 0.04 * cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC))[..., None]  # smooth shading
        rgb = np.clip(rgb * sj.exposure * np.asarray(sj.cast), 0.0, 1.0)
        return (rgb * 255.0 + 0.5).astype(np.uint8), z.astype(np.float32)

    def _radar_static(self) -> np.ndarray:
        """Zero-Doppler clutter power (64, 64): TX leakage, back wall, floor."""
        sj = self.subject
        rc = (np.arange(RADAR_BINS) + 0.5) * RANGE_RES_M
        prof = np.zeros(RADAR_BINS)
        prof[:2] = RADAR_LEAKAGE_POWER * np.array([1.0, 0.3])
        d = math.hypot(sj.wall_m, SENSOR_HEIGHT_M * 0.3)
        ramp = np.clip((rc - d) / RANGE_RES_M + 1.0, 0.0, 1.0)
        prof += sj.wall_reflectivity * ramp * np.exp(-np.maximum(rc - d, 0.0) / 0.12)
        prof += 0.004 * np.exp(-((rc - 2.0) / 1.8) ** 2)
        cols = (np.arange(RADAR_BINS) + 0.5) * DOPPLER_RES_MPS - RADAR_DOPPLER_MAX_MPS
        dop = np.exp(-0.5 * (cols / (0.55 * DOPPLER_RES_MPS)) ** 2)
        static = prof[:, None] * dop[None, :]
        return cv2.GaussianBlur(static.astype(np.float32), (0, 0), sigmaX=0.3, sigmaY=RADAR_BLUR_RANGE_BINS)

    def _camera(self, Jw: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sj = self.subject
        H = sj.height_m
        f, cx, cy = self.f, self.cx, self.cy
        x = Jw[:, 0]
        uv = np.stack([cx - f * Jw[:, 1] / x, cy - f * (Jw[:, 2] - SENSOR_HEIGHT_M) / x], 1)
        img = self.bg_rgb.copy()
        z = self.bg_z.copy()
        mask = np.zeros((self.H, self.W), np.uint8)
        gain = sj.exposure * np.asarray(sj.cast) * 255.0
        # painter's order, far to near: 1 limb capsule, 2 hand, 3 head, 0 torso
        prims: list[tuple[float, int, tuple]] = [(0.5 * (Jw[_J[c[0]], 0] + Jw[_J[c[1]], 0]) - 0.03, 1, c)
                                                 for c in self._caps]
        prims += [(Jw[_J[f"{s}_hand"], 0] - 0.03, 2, (f"{s}_hand", _R_HAND * H, sj.skin)) for s in ("l", "r")]
        prims += [(Jw[_J["head"], 0] - 0.03, 3, ()),
                  (float(np.mean(Jw[[_J["l_shoulder"], _J["r_shoulder"], _J["l_hip"], _J["r_hip"]], 0])), 0, ())]
        prims.sort(key=lambda p: -p[0])
        for _, kind, data in prims:
            if kind == 1:
                a, b, r, colr = data
                ia, ib = _J[a], _J[b]
                pa, pb = Jw[ia], Jw[ib]
                axis = pb - pa
                n = float(np.linalg.norm(axis))
                ax = axis / n if n > 1e-9 else np.array([0.0, 0.0, 1.0])
                view = _SENSOR - 0.5 * (pa + pb)
                view -= ax * float(view @ ax)
                view /= max(float(np.linalg.norm(view)), 1e-9)
                lam = 0.5 * (math.sqrt(max(0.0, 1 - float(ax @ self.light) ** 2)) + max(0.0, float(view @ self.light)))
                th = max(1, int(round(2 * r * f / (0.5 * (pa[0] + pb[0])))))
                cv2.line(img, _ipt(uv[ia]), _ipt(uv[ib]), _paint(colr, 0.5 + 0.6 * lam, gain), th, cv2.LINE_AA, _SH)
                mid = 0.5 * (uv[ia] + uv[ib])
                halves = ((uv[ia], mid, 0.75 * pa[0] + 0.25 * pb[0]), (mid, uv[ib], 0.25 * pa[0] + 0.75 * pb[0]))
                for q0, q1, zz in halves:
                    cv2.line(z, _ipt(q0), _ipt(q1), float(zz - 0.6 * r), th, cv2.LINE_8, _SH)
                cv2.line(mask, _ipt(uv[ia]), _ipt(uv[ib]), 255, th, cv2.LINE_8, _SH)
            elif kind == 2:
                j, r, colr = data
                ij = _J[j]
                _disc(img, z, mask, uv[ij], max(1, int(round(r * f / Jw[ij, 0]))), _paint(colr, 0.9, gain),
                      float(Jw[ij, 0] - 0.6 * r))
            elif kind == 3:
                self._draw_head(img, z, mask, Jw, uv, gain)
            else:
                self._draw_torso(img, z, mask, Jw, gain)
        # sensor noise (bank entry), depth noise and holes
        k = int(rng.integers(BANK_SIZE))
        rgb = np.clip(img.astype(np.float32) + self._rgb_noise[k] + 0.5, 0, 255).astype(np.uint8)
        zn = z + self._z_noise[k] * depth_sigma_m(z).astype(np.float32)
        edges = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        holes = self._holes[k] | (edges & self._edge_keep[k]) | (z > DEPTH_MAX_M) | (z < DEPTH_MIN_M)
        return rgb, np.where(holes, 0, depth_mm(zn))

    def _draw_head(self, img: np.ndarray, z: np.ndarray, mask: np.ndarray, Jw: np.ndarray, uv: np.ndarray,
                   gain: np.ndarray) -> None:
        sj = self.subject
        r = _R_HEAD * sj.height_m
        ph = Jw[_J["head"]]
        rad = max(2, int(round(r * self.f / ph[0])))
        _disc(img, z, mask, uv[_J["head"]], rad, _paint(sj.hair, 0.9, gain), float(ph[0] - 0.7 * r))
        # face: toward the facing direction (body forward = world -x rotated by the yaw)
        off = np.array([self.f * math.sin(math.radians(sj.yaw_deg)) * 0.35 * r / ph[0], 0.25 * rad])
        skin = _paint(sj.skin, 0.8 + 0.25 * max(0.0, -self.light[0]), gain)
        cv2.circle(img, _ipt(uv[_J["head"]] + off), int(0.78 * rad * 16), skin, -1, cv2.LINE_AA, _SH)

    def _draw_torso(self, img: np.ndarray, z: np.ndarray, mask: np.ndarray, Jw: np.ndarray, gain: np.ndarray) -> None:
        sj = self.subject
        H, b = sj.height_m, sj.build
        lsh, rsh, lhp, rhp = (Jw[_J[n]] for n in ("l_shoulder", "r_shoulder", "l_hip", "r_hip"))
        lat = lsh - rsh
        lat /= max(float(np.linalg.norm(lat)), 1e-9)
        up = Jw[_J["neck"]] - Jw[_J["chest"]]
        up /= max(float(np.linalg.norm(up)), 1e-9)
        ru, rt = _R_UPPER_ARM * b * H, _R_THIGH * b * H
        lw, rw = lhp + 0.38 * (lsh - lhp), rhp + 0.38 * (rsh - rhp)
        shirt = [lsh + lat * ru + up * 0.015 * H, rsh - lat * ru + up * 0.015 * H, rw - lat * 0.7 * rt,
                 lw + lat * 0.7 * rt]
        pants = [lw + lat * 0.7 * rt, rw - lat * 0.7 * rt, rhp - lat * rt - up * 0.03 * H,
                 lhp + lat * rt - up * 0.03 * H]
        for quad, colr in ((shirt, sj.shirt), (pants, sj.pants)):
            P = np.stack(quad)
            n = np.cross(P[1] - P[0], P[3] - P[0])
            n /= max(float(np.linalg.norm(n)), 1e-9)
            if float(n @ (_SENSOR - P.mean(0))) < 0:
                n = -n
            lam = max(0.0, float(n @ self.light))
            pts = np.stack([self.cx - self.f * P[:, 1] / P[:, 0],
                            self.cy - self.f * (P[:, 2] - SENSOR_HEIGHT_M) / P[:, 0]], 1)
            ip = np.array([_ipt(p) for p in pts], np.int32)
            cv2.fillConvexPoly(img, ip, _paint(colr, 0.5 + 0.6 * lam, gain), cv2.LINE_AA, _SH)
            # depth: the front surface plane (TORSO_DEPTH / 2 ahead of the joint plane)
            x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 1, 0)
            x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 2, (self.W, self.H))
            if x1 <= x0 or y1 <= y0:
                continue
            m = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillConvexPoly(m, ip - np.array([x0 << _SH, y0 << _SH], np.int32), 1, cv2.LINE_8, _SH)
            sel = m.astype(bool)
            p0 = P.mean(0) + n * 0.5 * _TORSO_DEPTH * H * b
            uu, vv = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
            ray = np.stack([np.ones_like(uu), -(uu - self.cx) / self.f, -(vv - self.cy) / self.f], -1)
            den = ray @ n
            num = float(n @ (p0 - _SENSOR))
            with np.errstate(divide="ignore", invalid="ignore"):
                tz = np.where(np.abs(den) > 0.05, num / den, p0[0])
            tz = np.clip(tz, P[:, 0].min() - 0.15, P[:, 0].max() + 0.15)
            z[y0:y1, x0:x1][sel] = tz[sel].astype(np.float32)
            mask[y0:y1, x0:x1][sel] = 255

    def _radar(self, Jr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pts = np.einsum("pj,kjd->kpd", self.radar_M, Jr)          # (2S, Np, 3)
        minus, plus = pts[0::2], pts[1::2]
        pos = 0.5 * (minus + plus)
        vel = (plus - minus) / (2 * RADAR_DIFF_S)
        rel = pos - _SENSOR
        r = np.linalg.norm(rel, axis=-1)
        vr = (vel * rel).sum(-1) / r
        cos_az = np.abs(rel[..., 0]) / np.maximum(np.hypot(rel[..., 0], rel[..., 1]), 1e-9)
        cos_el = np.hypot(rel[..., 0], rel[..., 1]) / r
        power = (RADAR_BODY_GAIN / len(RADAR_SUBFRAMES_S)) * self.radar_w[None] * (cos_az * cos_el) ** 2 / r ** 2
        rf = (r / RANGE_RES_M - 0.5).ravel()
        # radial velocities beyond +-3 m/s alias (wrap around) like an FFT's Doppler axis
        vw = np.mod(vr + RADAR_DOPPLER_MAX_MPS, 2 * RADAR_DOPPLER_MAX_MPS)
        cf = (vw / DOPPLER_RES_MPS - 0.5).ravel()
        pw = power.ravel()
        r0, c0 = np.floor(rf).astype(np.int64), np.floor(cf).astype(np.int64)
        fr, fc = rf - r0, cf - c0
        acc = np.zeros(RADAR_BINS * RADAR_BINS)
        for dr, dc, wgt in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
            rr, cc = r0 + dr, np.mod(c0 + dc, RADAR_BINS)
            ok = (rr >= 0) & (rr < RADAR_BINS)
            acc += np.bincount(rr[ok] * RADAR_BINS + cc[ok], weights=(pw * wgt)[ok], minlength=RADAR_BINS ** 2)
        body = cv2.GaussianBlur(acc.reshape(RADAR_BINS, RADAR_BINS).astype(np.float32), (0, 0),
                                sigmaX=RADAR_BLUR_DOPPLER_BINS, sigmaY=RADAR_BLUR_RANGE_BINS,
                                borderType=cv2.BORDER_CONSTANT)
        return speckle_to_unit(body + self.radar_static + RADAR_NOISE_POWER, rng)

    def render_times(self, performance: Performance, times: Sequence[float] | np.ndarray,
                     rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Frames ``(rgb, depth, radar)`` at ``times`` of ``performance`` (one FK call): the camera
        sees the joints at each time, the radar at the sub-frame pairs ``tau -+ RADAR_DIFF_S``."""
        offs = [0.0] + [s + d for s in RADAR_SUBFRAMES_S for d in (-RADAR_DIFF_S, RADAR_DIFF_S)]
        tt = np.asarray(times, np.float64).reshape(-1, 1) + np.array(offs)[None, :]
        Jall = forward_kinematics(self.subject, performance.params(tt.ravel())).reshape(*tt.shape, len(JOINTS), 3)
        return [(*self._camera(Jall[i, 0], rng), self._radar(Jall[i, 1:], rng)) for i in range(tt.shape[0])]


def render_window(renderer: ActivityRenderer, activity: str, start_s: float, frames: int, rate_hz: float = 10.0,
                  seed: int | np.random.Generator | np.random.SeedSequence = 0) -> dict[str, np.ndarray]:
    """``frames`` frames at ``rate_hz`` from ``start_s`` of the renderer's subject performing
    ``activity`` since t = 0: ``{"rgb": uint8 (F, H, W, 3), "depth": uint16 (F, H, W) mm, "radar":
    float32 (F, 64, 64)}``. ``seed`` is the noise seed."""
    check_index("frames", frames, ActivityError, lo=1)
    check_rate(rate_hz, ActivityError)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    times = float(start_s) + np.arange(int(frames)) / float(rate_hz)
    out = renderer.render_times(Performance(renderer.subject, [(activity, 1.0)]), times, rng)
    return {k: np.stack([o[i] for o in out]) for i, k in enumerate(MODALITY_NAMES)}


@dataclass
class ActivityFrame:
    """One instant of the activity simulator (``t`` = ``index / rate_hz`` s)."""

    t: float
    label: str
    streams: dict[str, StreamFrame]
    index: int = 0
    label_index: int = 0
    subject_id: int = 0


class ActivitySimulator(CorruptibleStreams):
    """A subject performing ``schedule`` (``[(activity, seconds), ...]``, cycled; default: every
    activity for :data:`SCHEDULE_SEGMENT_S` s in an order drawn from ``(seed, episode)``) in front
    of ``node1``."""

    _error = ActivityError
    #: the ``clutter`` corruption's ghosts, on the range-Doppler map's bins
    clutter_radar = RadarConfig(range_bins=RADAR_BINS, range_res_m=RANGE_RES_M, azimuth_bins=RADAR_BINS, fov_deg=120.0)

    def __init__(self, subject: Subject, seed: int = 0, episode: int = 0, rate_hz: float = 10.0,
                 schedule: Sequence[tuple[str, float]] | None = None) -> None:
        self.subject = subject
        self.rate_hz = check_rate(rate_hz, ActivityError)
        self.renderer = ActivityRenderer(subject)
        self._schedule_arg = None if schedule is None else list(schedule)
        super().__init__(list(STREAM_IDS), seed, episode)

    def _start_episode(self) -> np.random.SeedSequence:
        sched = self._schedule_arg or default_schedule(self.seed, self.episode)
        self.schedule = [(a, float(s)) for a, s in sched]
        self.performance = Performance(self.subject, self.schedule)
        sensor_ss, corr_ss = np.random.SeedSequence([self.seed, self.subject.subject_id, self.episode, 0xAC75]).spawn(2)
        self._sensor_rng = np.random.default_rng(sensor_ss)
        return corr_ss

    def step(self) -> ActivityFrame:
        """Render the frame at :attr:`t`, then advance the clock by ``1 / rate_hz``."""
        t = self.t
        clean = self.renderer.render_times(self.performance, [t], self._sensor_rng)[0]
        label = self.performance.label(t)
        frame = ActivityFrame(t, label, self._emit(t, dict(zip(STREAM_IDS, clean))), self.index,
                              ACTIVITIES.index(label), self.subject.subject_id)
        self.index += 1
        return frame


def _tile(kind: str, x: np.ndarray, tile_w: int, tile_h: int) -> np.ndarray:
    """One preview tile (uint8 RGB ``(tile_h, tile_w, 3)``) of a frame of modality ``kind``."""
    if kind == "rgb":
        return cv2.resize(x, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
    if kind == "depth":   # jet, near = red, 0 (no depth) = black
        v = np.clip(x.astype(np.float32) / 5500.0 * 255.0, 0, 255).astype(np.uint8)
        c = cv2.applyColorMap(255 - v, cv2.COLORMAP_JET)[:, :, ::-1].copy()
        c[x == 0] = 0
        return cv2.resize(c, (tile_w, tile_h), interpolation=cv2.INTER_NEAREST)
    q = np.round(np.clip(x, 0, 1) * 23) / 23   # 24 levels: keeps the PNG small
    c = cv2.applyColorMap((q * 255 + 0.5).astype(np.uint8), cv2.COLORMAP_INFERNO)[:, :, ::-1]
    left = (tile_w - tile_h) // 2
    square = cv2.resize(c, (tile_h, tile_h), interpolation=cv2.INTER_NEAREST)
    return np.pad(square, ((0, 0), (left, tile_w - tile_h - left), (0, 0)))


def preview_activity(path: str | Path) -> Path:
    """The PNG grid of docs/DATASET.md: a row per activity, a window of rgb, depth and radar frames each."""
    frames, rate_hz, tile_w, label_w, white = 5, 10.0, 72, 92, (255, 255, 255)
    subject = draw_subject(0, 1)
    renderer = ActivityRenderer(subject)
    tile_h = int(round(tile_w * renderer.H / renderer.W))
    rows = []
    for k, act in enumerate(ACTIVITIES):
        w = render_window(renderer, act, 1.0, frames, rate_hz, seed=k)
        cells = []
        for kind in MODALITY_NAMES:
            cells += [np.pad(_tile(kind, x, tile_w, tile_h), ((1, 1), (1, 1), (0, 0))) for x in w[kind]]
            cells.append(np.zeros((tile_h + 2, 4, 3), np.uint8))
        lab = np.full((tile_h + 2, label_w, 3), 30, np.uint8)
        cv2.putText(lab, act, (4, tile_h // 2 + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, white, 1, cv2.LINE_AA)
        rows.append(np.concatenate([lab, *cells], 1))
    grid = np.concatenate(rows, 0)
    head = np.full((16, grid.shape[1], 3), 30, np.uint8)
    for j, txt in enumerate((f"rgb, {frames} frames at {rate_hz:g} Hz", "depth (mm, 0 = black)",
                             "radar range-Doppler (range down, -3..+3 m/s)")):
        cv2.putText(head, txt, (label_w + j * (frames * (tile_w + 2) + 4) + 4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    white, 1, cv2.LINE_AA)
    img = np.concatenate([head, grid], 0)
    img = (img >> 3) << 3   # 5 bits per channel: invisible here, keeps the PNG small despite sensor noise
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m admn_ros.core.sim.activity",
                                 description="Write a preview grid of the simulated activities (PNG).")
    ap.add_argument("--out", default="docs/img/activity_preview.png")
    p = preview_activity(ap.parse_args(argv).out)
    print(f"wrote {p} ({p.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
