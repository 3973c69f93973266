"""Sensor corruptions: the paper's Gaussian QoI noise and real-world failure modes, with their
schedules (kinds, modalities and semantics: docs/DATASET.md, "Corruptions")."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from admn_ros.core.noise import add_gaussian_noise, check_sigma
from admn_ros.core.preprocess import from_unit, to_unit
from admn_ros.core.sim.config import RadarConfig
from admn_ros.core.sim.render import radar_point_response, radar_power_to_unit, radar_unit_to_power
from admn_ros.core.streams import MODALITIES

KINDS: tuple[str, ...] = ("none", "gaussian", "low_light", "motion_blur", "frozen", "clutter", "dropout")
SCHEDULES: tuple[str, ...] = ("constant", "flicker")
#: The failures real sensors show (every kind but ``none`` and the paper's ``gaussian``).
REAL_WORLD: tuple[str, ...] = ("low_light", "motion_blur", "frozen", "clutter", "dropout")
_ALL = frozenset(MODALITIES)
#: Modalities each corruption kind applies to.
APPLIES_TO: dict[str, frozenset[str]] = {
    "none": _ALL, "gaussian": _ALL, "low_light": frozenset({"rgb"}),
    "motion_blur": frozenset({"rgb", "depth"}), "frozen": _ALL,
    "clutter": frozenset({"radar"}), "dropout": _ALL,
}


@dataclass(frozen=True)
class CorruptionSpec:
    """What to do to one stream, and when: ``sigma`` is the Gaussian std on [0, 1] data
    (``gaussian`` only; or give ``severity`` in [0, 1]); ``duty`` is the fraction of each
    flicker ``period_s`` the corruption is on."""

    kind: str = "none"
    sigma: float | None = None
    severity: float | None = None
    schedule: str = "constant"
    period_s: float = 1.0
    duty: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown corruption kind {self.kind!r}; known kinds: {list(KINDS)}")
        if self.sigma is not None:
            try:
                check_sigma(self.sigma)
            except (TypeError, ValueError):
                raise ValueError(f"corruption {self.kind!r}: sigma must be finite and >= 0, "
                                 f"got {self.sigma!r}") from None
        if self.severity is not None and not (isinstance(self.severity, (int, float))
                                              and 0.0 <= float(self.severity) <= 1.0):
            raise ValueError(f"corruption {self.kind!r}: severity must be in [0, 1], got {self.severity!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown corruption schedule {self.schedule!r}; known: {list(SCHEDULES)}")
        if not (math.isfinite(self.period_s) and self.period_s > 0):
            raise ValueError(f"corruption period_s must be > 0, got {self.period_s!r}")
        if not (math.isfinite(self.duty) and 0.0 < self.duty <= 1.0):
            raise ValueError(f"corruption duty must be in (0, 1], got {self.duty!r}")

    def resolved(self, modality: str) -> "CorruptionSpec":
        """This spec with ``sigma`` and ``severity`` filled in for ``modality``; ``ValueError`` if
        the kind does not apply to it or ``sigma`` is not for this kind or above ``sigma_max``."""
        if modality not in APPLIES_TO[self.kind]:
            raise ValueError(f"corruption {self.kind!r} does not apply to {modality!r} streams "
                             f"(it applies to {sorted(APPLIES_TO[self.kind])})")
        smax = MODALITIES[modality].sigma_max
        if self.kind == "gaussian":
            if self.sigma is None and self.severity is None:
                raise ValueError("corruption 'gaussian' needs sigma or severity")
            if self.sigma is not None:
                sigma = float(self.sigma)
                if sigma > smax + 1e-9:
                    raise ValueError(f"gaussian sigma {sigma} exceeds sigma_max {smax} of modality {modality!r}")
                sev = sigma / smax
                if self.severity is not None and abs(float(self.severity) - sev) > 1e-6:
                    raise ValueError(f"gaussian sigma {sigma} and severity {self.severity} disagree "
                                     f"(severity = sigma / sigma_max = {sev:.4g} for {modality!r})")
            else:
                sev = float(self.severity)  # type: ignore[arg-type]
                sigma = sev * smax
            return replace(self, sigma=sigma, severity=min(sev, 1.0))
        if self.sigma not in (None, 0, 0.0):
            raise ValueError(f"sigma applies to 'gaussian' only, not to {self.kind!r} (use severity)")
        sev = 1.0 if self.kind in ("frozen", "dropout") or self.severity is None else float(self.severity)
        return replace(self, sigma=0.0, severity=0.0 if self.kind == "none" else sev)

    def active(self, elapsed_s: float) -> bool:
        """Whether the corruption is on ``elapsed_s`` seconds after it was set."""
        if self.kind == "none":
            return False
        return self.schedule == "constant" or (elapsed_s + 1e-9) % self.period_s < self.duty * self.period_s


#: Option keys of a corruption string (``period`` is short for ``period_s``).
_OPTION_KEYS = {"sigma": "sigma", "severity": "severity", "schedule": "schedule", "period_s": "period_s",
                "period": "period_s", "duty": "duty"}


def parse_corruption(text: str, modality: str | None = None) -> CorruptionSpec:
    """Parse ``"<kind>[:key=value,...]"`` (separators ``,`` ``;`` ``:``; keys :data:`_OPTION_KEYS`;
    a bare ``flicker`` / ``constant`` sets the schedule) into a :class:`CorruptionSpec`, checked
    against ``modality`` if given. ``ValueError`` names the problem."""
    s = str(text).strip()
    if not s:
        raise ValueError("empty corruption string; use 'none' for a clean stream")
    kind, _, rest = s.replace(";", ",").replace(":", ",").partition(",")
    kind = kind.strip().lower()
    if kind in SCHEDULES:
        raise ValueError(f"{kind!r} is a schedule, not a corruption kind: write e.g. "
                         f"'gaussian:sigma=2.0,schedule={kind}'")
    if kind not in KINDS:
        raise ValueError(f"unknown corruption kind {kind!r}; known: {list(KINDS)}")
    fields: dict[str, object] = {"kind": kind}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        if item.lower() in SCHEDULES:  # a bare schedule name
            item = f"schedule={item}"
        key, eq, val = item.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not eq or not val:
            raise ValueError(f"corruption option {item!r} must look like key=value (or flicker / constant)")
        if key not in _OPTION_KEYS:
            raise ValueError(f"unknown corruption option {key!r}; known: {sorted(_OPTION_KEYS)}")
        if key == "schedule":
            fields["schedule"] = val.lower()
            continue
        try:
            x = float(val)
        except ValueError:
            raise ValueError(f"corruption option {key}={val!r} is not a number") from None
        if key == "sigma" and x < 0:
            raise ValueError(f"negative sigma {x}: noise sigma must be >= 0")
        fields[_OPTION_KEYS[key]] = x
    spec = CorruptionSpec(**fields)  # type: ignore[arg-type]  # validates every field
    if modality is not None:
        spec.resolved(modality)      # kind applies to the modality, sigma <= sigma_max
    return spec


def corruption_text(spec: CorruptionSpec) -> str:
    """Compact text of a spec, e.g. ``gaussian:sigma=3,schedule=flicker,period_s=2,duty=0.5``
    (read back by :func:`parse_corruption`)."""
    opts = [f"{k}={getattr(spec, k):g}" for k in ("sigma", "severity") if getattr(spec, k) is not None]
    if spec.schedule != "constant":
        opts += [f"schedule={spec.schedule}", f"period_s={spec.period_s:g}", f"duty={spec.duty:g}"]
    return spec.kind + (":" + ",".join(opts) if opts else "")


def apply_gaussian(modality: str, data: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The paper's corruption on [0, 1]-scaled data, returned in the sensor dtype."""
    if sigma == 0.0:
        return data.copy()
    return from_unit(modality, add_gaussian_noise(to_unit(modality, data), sigma, rng))


def apply_low_light(rgb: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Dim exposure with shot (Poisson) and read noise; partial auto-gain."""
    g = 1.0 - 0.9 * severity
    full_scale = 800.0 * g + 20.0  # photo-electrons at white
    lam = rgb.astype(np.float32) * np.float32(full_scale / 255.0)
    e = rng.poisson(lam).astype(np.float32) + rng.standard_normal(lam.shape, dtype=np.float32) * 3.0
    y = e * np.float32(g ** 0.4 / full_scale)
    return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@lru_cache(maxsize=64)
def _blur_kernel(length: int, angle_deg: int) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2.0
    dx, dy = math.cos(math.radians(angle_deg)) * c, math.sin(math.radians(angle_deg)) * c
    cv2.line(k, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    return k / k.sum()


def blur_length(severity: float, pixel_scale: float = 1.0) -> int:
    """Motion blur length in image pixels: ``1 + 24 severity`` sensor pixels times ``pixel_scale``."""
    return max(1, 1 + int(round((1 + 24 * severity) * pixel_scale - 1)))


def apply_motion_blur(data: np.ndarray, severity: float, angle_rad: float, pixel_scale: float = 1.0) -> np.ndarray:
    """Linear motion blur of :func:`blur_length` pixels of ``data`` along ``angle_rad``."""
    length = blur_length(severity, pixel_scale)
    if length <= 1:
        return data.copy()
    return cv2.filter2D(data, -1, _blur_kernel(length, int(round(math.degrees(angle_rad))) % 180),
                        borderType=cv2.BORDER_REPLICATE)


def apply_clutter(radar_map: np.ndarray, severity: float, rng: np.random.Generator,
                  radar: RadarConfig) -> np.ndarray:
    """Add ``1 + round(12 severity)`` spurious reflectors (in the power domain)."""
    n = 1 + int(round(12 * severity))
    half = math.radians(radar.fov_deg) / 2
    ranges = rng.uniform(0.3, radar.max_range_m, n)
    az = rng.uniform(-half, half, n)
    pw = np.exp(rng.uniform(math.log(0.05), math.log(1.5), n))
    p = radar_unit_to_power(radar_map) + radar_point_response(radar, ranges, az, pw)
    return radar_power_to_unit(p)


def apply_corruption(modality: str, data: np.ndarray, spec: CorruptionSpec, rng: np.random.Generator,
                     radar: RadarConfig | None = None, blur_angle: float = 0.0,
                     pixel_scale: float = 1.0) -> np.ndarray | None:
    """Apply a *resolved* stateless corruption (not ``frozen``) to one frame: new data in the
    sensor dtype, or ``None`` for ``dropout``; ``pixel_scale``: pixels of ``data`` per sensor pixel."""
    k = spec.kind
    if k == "none":
        return data
    if k == "dropout":
        return None
    if k == "gaussian":
        return apply_gaussian(modality, data, float(spec.sigma or 0.0), rng)
    if k == "low_light":
        return apply_low_light(data, float(spec.severity or 0.0), rng)
    if k == "motion_blur":
        return apply_motion_blur(data, float(spec.severity or 0.0), blur_angle, pixel_scale)
    if k == "clutter":
        return apply_clutter(data, float(spec.severity or 0.0), rng, radar or RadarConfig())
    raise ValueError(f"corruption {k!r} is stateful or unknown; apply it through GDTMSimulator")


def corrupt_model_input(modality: str, x: np.ndarray, spec: CorruptionSpec, rng: np.random.Generator,
                        radar: RadarConfig | None = None, blur_angle: float = 0.0,
                        pixel_scale: float = 1.0) -> np.ndarray | None:
    """:func:`apply_corruption` on one model-input image (float32 ``(C, H, W)`` in [0, 1], as
    ``from_storage`` gives it) through the sensor dtype and layout; ``radar``: the map's geometry."""
    data = from_unit(modality, np.moveaxis(x, 0, -1) if modality == "rgb" else x[0])
    out = apply_corruption(modality, data, spec, rng, radar, blur_angle, pixel_scale)
    if out is None:
        return None
    u = to_unit(modality, out)
    return np.ascontiguousarray(np.moveaxis(u, -1, 0)) if modality == "rgb" else u[None]
