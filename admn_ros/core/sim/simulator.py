"""The GDTM-style simulator: an RC car on an indoor track seen by camera/depth/radar nodes. A
``(seed, episode)`` pair fixes every random draw; corrupting a stream never changes clean data."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from admn_ros.core.sim.config import RadarConfig, SimConfig, check_index, load_sim_config
from admn_ros.core.sim.corruptions import CorruptionSpec, apply_corruption
from admn_ros.core.sim.render import CameraRenderer, RadarRenderer
from admn_ros.core.sim.scene import Scene
from admn_ros.core.streams import split_stream_id


@dataclass
class StreamFrame:
    """One stream's data in one frame: rgb ``uint8 (H, W, 3)``; depth ``uint16 (H, W)`` mm,
    0 = invalid; radar ``float32 (range_bins, azimuth_bins)`` in [0, 1]; ``None`` on dropout."""

    data: np.ndarray | None
    corruption: str = "none"            # the kind active in this frame
    sigma: float = 0.0                  # true Gaussian noise std on [0, 1]-scaled data
    severity: float = 0.0               # in [0, 1]


@dataclass
class SimFrame:
    """Everything the simulator produces at one instant (``t`` = ``index / rate_hz`` s)."""

    t: float
    gt_xy: np.ndarray                   # float32 (2,), map metres
    streams: dict[str, StreamFrame]
    index: int = 0
    #: per node, the fraction of the car's in-image area not hidden by obstacles
    visibility: dict[str, float] = field(default_factory=dict)
    car_pixels: dict[str, int] = field(default_factory=dict)


@dataclass
class _CorruptionState:
    spec: CorruptionSpec
    t_set: float
    rng: np.random.Generator
    blur_angle: float
    held: np.ndarray | None = None


class CorruptibleStreams:
    """The clock and runtime corruptions of a simulator's streams. A simulator sets ``rate_hz``,
    ``clutter_radar`` (the radar geometry of ``clutter``) and ``_error``, implements
    :meth:`_start_episode`, ends its ``__init__`` with this one's and passes every clean frame
    through :meth:`_emit`."""

    _error: type[ValueError] = ValueError
    rate_hz: float
    clutter_radar: RadarConfig
    #: the sensor config (node poses, cameras), ``None`` when the simulator has none
    cfg: SimConfig | None = None

    def __init__(self, stream_ids: list[str], seed: int, episode: int) -> None:
        self.seed = check_index("seed", seed, self._error)
        self._ids = list(stream_ids)
        self._corr: dict[str, _CorruptionState] = {}
        self.reset(episode)

    @property
    def t(self) -> float:
        """Time of the next frame, s."""
        return self.index / self.rate_hz

    def skip(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot skip a negative number of frames ({n})")
        self.index += int(n)

    @property
    def stream_ids(self) -> list[str]:
        return list(self._ids)

    def _start_episode(self) -> np.random.SeedSequence:
        """Draw the episode's world and sensor generator; return the corruptions' seed sequence."""
        raise NotImplementedError

    def reset(self, episode: int | None = None) -> None:
        """Restart at t = 0 (in ``episode``, default the current one); corruptions stay set."""
        if episode is not None:
            self.episode = check_index("episode", episode, self._error)
        corr_ss = self._start_episode()
        self.index = 0
        # one random stream per stream id; set corruptions restart their schedules
        self._corr_seeds = corr_ss.spawn(len(self._ids))
        self._last_clean = {}
        self._corr = {sid: self._new_state(sid, st.spec) for sid, st in self._corr.items()}

    def _new_state(self, sid: str, spec: CorruptionSpec) -> _CorruptionState:
        rng = np.random.default_rng(self._corr_seeds[self._ids.index(sid)])
        return _CorruptionState(spec, self.t, rng, float(rng.uniform(0, math.pi)))

    def set_corruption(self, stream_id: str, spec: CorruptionSpec | None) -> None:
        """Corrupt ``stream_id`` from the next frame on (``None`` or kind ``"none"`` clears);
        ``ValueError`` for an unknown stream or a spec that does not fit its modality."""
        if stream_id not in self._ids:
            raise ValueError(f"unknown stream {stream_id!r}; known streams: {self._ids}")
        if spec is None or spec.kind == "none":
            self._corr.pop(stream_id, None)
            return
        _, modality = split_stream_id(stream_id)
        try:
            resolved = spec.resolved(modality)
        except ValueError as e:
            raise ValueError(f"stream {stream_id!r}: {e}") from None
        self._corr[stream_id] = self._new_state(stream_id, resolved)

    def clear_corruptions(self) -> None:
        self._corr.clear()

    @property
    def corruptions(self) -> dict[str, CorruptionSpec]:
        """Currently set (resolved) corruption specs by stream id."""
        return {sid: st.spec for sid, st in self._corr.items()}

    def _emit(self, t: float, clean: dict[str, np.ndarray]) -> dict[str, StreamFrame]:
        """The frames at ``t`` of the clean ``{stream id: data}``, each through its corruption;
        keeps the clean data for ``frozen`` (a reference: frames are fresh arrays)."""
        out = {sid: self._corrupt(sid, data, t) for sid, data in clean.items()}
        self._last_clean.update(clean)
        return out

    def _corrupt(self, sid: str, clean: np.ndarray, t: float) -> StreamFrame:
        st = self._corr.get(sid)
        if st is None:
            return StreamFrame(clean)
        spec = st.spec
        if not spec.active(t - st.t_set):
            st.held = None
            return StreamFrame(clean)
        if spec.kind == "frozen":
            if st.held is None:
                st.held = self._last_clean.get(sid, clean).copy()
            return StreamFrame(st.held.copy(), "frozen", 0.0, float(spec.severity or 1.0))
        data = apply_corruption(split_stream_id(sid)[1], clean, spec, st.rng, self.clutter_radar, st.blur_angle)
        return StreamFrame(data, spec.kind, float(spec.sigma or 0.0), float(spec.severity or 0.0))


class GDTMSimulator(CorruptibleStreams):
    """Simulated sensor network of ``cfg`` (default: the shipped ``config/sensors.yaml``); the
    episode selects trajectory, lighting, background and obstacles."""

    def __init__(self, cfg: SimConfig | None = None, seed: int = 0, episode: int = 0) -> None:
        self.cfg = load_sim_config() if cfg is None else cfg
        self.rate_hz = float(self.cfg.rate_hz)
        self.clutter_radar = self.cfg.radar
        super().__init__(self.cfg.streams.ids, seed, episode)

    def _start_episode(self) -> np.random.SeedSequence:
        scene_ss, bank_ss, sensor_ss, corr_ss = np.random.SeedSequence([self.seed, self.episode]).spawn(4)
        self.scene = Scene.sample(self.cfg, np.random.default_rng(scene_ss))
        bank_rng = np.random.default_rng(bank_ss)
        self._cams = [CameraRenderer(n, self.cfg, self.scene, bank_rng) for n in self.cfg.nodes]
        self._radars = [RadarRenderer(n, self.cfg, self.scene) for n in self.cfg.nodes]
        self._sensor_rng = np.random.default_rng(sensor_ss)
        return corr_ss

    def step(self) -> SimFrame:
        """Render the frame at :attr:`t`, then advance the clock by ``1 / rate_hz``."""
        t = self.t
        pose = self.scene.trajectory.pose(t)
        clean: dict[str, np.ndarray] = {}
        vis: dict[str, float] = {}
        pix: dict[str, int] = {}
        for node, cam, radar in zip(self.cfg.nodes, self._cams, self._radars):
            rgb, depth, vis[node.name], pix[node.name] = cam.render(pose, self._sensor_rng)
            clean |= {f"{node.name}/rgb": rgb, f"{node.name}/depth": depth,
                      f"{node.name}/radar": radar.render(pose, self._sensor_rng)}
        frame = SimFrame(t, np.array(pose[:2], dtype=np.float32), self._emit(t, clean), self.index, vis, pix)
        self.index += 1
        return frame
