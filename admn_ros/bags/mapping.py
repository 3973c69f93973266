"""Topic mapping: which bag topic feeds which ADMN stream (YAML, validated; docs/OWN_ROBOT.md).

Format (every key but ``streams`` optional)::

    slop: 0.02             # s: largest header-stamp spread inside one synchronized frame
    timeout: null          # s: a stream silent this long is missing (null: 1.5 periods)
    streams:               # stream id -> topic, in output order
      node1/rgb:   {topic: /node1/color/image_raw, encoding: rgb8}
      node1/depth: {topic: /node1/depth/image_raw, encoding: [16UC1, 32FC1]}
      node1/radar: /node1/radar/range_azimuth            # shorthand: just the topic
      node2/rgb:   {topic: /node2/zed/left/image_rect_color/compressed, optional: true}
    sensors_config: my_sensors.yaml   # radar map of PointCloud2 radar (relative to this file)
    qoi: {node1/rgb: /node1/qoi/rgb}  # admn_ros/StreamQoI topics (true noise)
    ground_truth: {topic: /tf, parent: world, child: rc_car, axes: [x, y], tolerance: 0.05}

The ground-truth topic's type decides what it is: a position (PointStamped, PoseStamped,
PoseWithCovarianceStamped, Odometry, TransformStamped, TFMessage; interpolated to the frame
stamp within ``tolerance``) or an ``admn_ros/ActivityLabel`` (nearest stamp). On ``/tf`` only
the transforms from exactly ``parent`` to ``child`` count. Topic and frame names compare
without the leading ``/``. Shipped mappings: ``default``, ``realsense_zed``, ``activity``
(config/bag_topics_*.yaml).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from admn_ros.core import paths
from admn_ros.core.streams import split_stream_id
from admn_ros.core.tasks import TASKS

#: Shipped mapping names (the RealSense + ZED rig's and every task's ``Task.mapping``) -> config file names.
SHIPPED: dict[str, str] = {name: f"bag_topics_{name}.yaml"
                           for name in ("default", "realsense_zed", *(t.mapping for t in TASKS.values()))}

_TOP_KEYS = {"slop", "timeout", "streams", "qoi", "ground_truth", "sensors_config"}
_STREAM_KEYS = {"topic", "encoding", "optional"}
_GT_KEYS = {"topic", "axes", "tolerance", "parent", "child"}
_AXES = ("x", "y", "z")


class MappingError(ValueError):
    """Invalid topic mapping; the message names the file and the key."""


def norm_topic(topic: str) -> str:
    """Topic name for comparisons: no leading/trailing ``/`` (``/a/b`` == ``a/b``)."""
    return str(topic).strip().strip("/")


@dataclass(frozen=True)
class StreamTopic:
    """One stream's source topic; ``encodings`` empty = anything the decoder supports."""

    stream_id: str
    topic: str
    encodings: tuple[str, ...] = ()
    optional: bool = False

    @property
    def modality(self) -> str:
        return split_stream_id(self.stream_id)[1]


@dataclass(frozen=True)
class TopicMapping:
    """A validated topic mapping (see the module docstring)."""

    streams: tuple[StreamTopic, ...]
    qoi: dict[str, str] = field(default_factory=dict)
    ground_truth: str | None = None
    gt_axes: tuple[str, str] = ("x", "y")
    gt_tolerance: float = 0.05
    slop: float = 0.02
    timeout: float | None = None
    source: str = "<dict>"
    gt_frames: tuple[str, str] | None = None  # (parent, child) of a transform ground truth
    sensors_config: str | None = None

    @property
    def stream_ids(self) -> list[str]:
        return [s.stream_id for s in self.streams]

    def stream(self, sid: str) -> StreamTopic:
        for s in self.streams:
            if s.stream_id == sid:
                return s
        raise KeyError(f"stream {sid!r} is not in mapping {self.source}; streams: {self.stream_ids}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the YAML format (round-trips through :func:`parse_mapping`)."""
        out: dict[str, Any] = {"slop": self.slop, "timeout": self.timeout, "streams": {
            s.stream_id: {"topic": s.topic, **({"encoding": list(s.encodings)} if s.encodings else {}),
                          **({"optional": True} if s.optional else {})} for s in self.streams}}
        if self.qoi:
            out["qoi"] = dict(self.qoi)
        if self.ground_truth:
            out["ground_truth"] = {"topic": self.ground_truth, "axes": list(self.gt_axes),
                                   "tolerance": self.gt_tolerance}
            if self.gt_frames:
                out["ground_truth"].update(parent=self.gt_frames[0], child=self.gt_frames[1])
        if self.sensors_config is not None:
            out["sensors_config"] = self.sensors_config
        return out


def _fail(source: str, key: str, msg: str) -> MappingError:
    return MappingError(f"{source}: {key}: {msg}")


def _check(ok: Any, source: str, key: str, msg: str) -> None:
    if not ok:
        raise _fail(source, key, msg)


def _no_unknown(raw: Mapping, known: set[str], source: str, key: str) -> None:
    bad = sorted(set(raw) - known)
    _check(not bad, source, f"{key}.{bad[0]}" if bad else key, f"unknown key; known: {sorted(known)}")


def _is_name(x: Any) -> bool:
    return isinstance(x, str) and bool(norm_topic(x))


def _number(raw: Any, source: str, key: str, lo: float) -> float:
    _check(not isinstance(raw, bool) and isinstance(raw, (int, float)) and math.isfinite(raw) and raw >= lo,
           source, key, f"must be a number >= {lo}, got {raw!r}")
    return float(raw)


def parse_mapping(data: Any, source: str = "<dict>") -> TopicMapping:
    """Plain data (the YAML format) -> :class:`TopicMapping`; MappingError names ``source`` and the key."""
    _check(isinstance(data, Mapping), source, "<top>",
           f"expected a mapping with keys {sorted(_TOP_KEYS)}, got {type(data).__name__}")
    unknown = set(data) - _TOP_KEYS
    _check(not unknown, source, ",".join(sorted(map(str, unknown))), f"unknown key(s); known: {sorted(_TOP_KEYS)}")
    raw_streams = data.get("streams")
    _check(isinstance(raw_streams, Mapping) and raw_streams, source, "streams",
           "must be a non-empty mapping 'stream id -> topic'")
    streams: list[StreamTopic] = []
    seen: dict[str, str] = {}  # topic -> its stream id
    for sid, raw in raw_streams.items():
        key = f"streams.{sid}"
        try:
            split_stream_id(str(sid))
        except ValueError as e:
            raise _fail(source, key, str(e)) from None
        raw = {"topic": raw} if isinstance(raw, str) else raw
        _check(isinstance(raw, Mapping), source, key,
               f"expected a topic string or a mapping with {sorted(_STREAM_KEYS)}")
        _no_unknown(raw, _STREAM_KEYS, source, key)
        topic = raw.get("topic")
        _check(_is_name(topic), source, f"{key}.topic", f"must be a non-empty topic name, got {topic!r}")
        other = seen.setdefault(norm_topic(topic), str(sid))
        _check(other == str(sid), source, f"{key}.topic", f"topic {topic!r} is also used by stream {other!r}")
        enc = (raw["encoding"],) if isinstance(raw.get("encoding"), str) else raw.get("encoding", ())
        _check(isinstance(enc, (list, tuple)) and all(isinstance(e, str) and e for e in enc), source,
               f"{key}.encoding", f"must be a string or a list of strings, got {enc!r}")
        opt = raw.get("optional", False)
        _check(isinstance(opt, bool), source, f"{key}.optional", f"must be true or false, got {opt!r}")
        streams.append(StreamTopic(str(sid), topic, tuple(enc), opt))
    ids = [s.stream_id for s in streams]

    raw_qoi = data.get("qoi") or {}
    _check(isinstance(raw_qoi, Mapping), source, "qoi", "must be a mapping 'stream id -> StreamQoI topic'")
    for sid, t in raw_qoi.items():
        _check(sid in ids, source, f"qoi.{sid}", f"not a stream of this mapping; streams: {ids}")
        _check(_is_name(t), source, f"qoi.{sid}", f"must be a topic name, got {t!r}")
    qoi = {str(sid): t for sid, t in raw_qoi.items()}

    gt_raw = data.get("ground_truth")
    gt_raw = {"topic": gt_raw} if isinstance(gt_raw, str) else gt_raw
    gt: dict[str, Any] = {}  # the ground-truth fields of TopicMapping (absent: its defaults)
    if gt_raw is not None:
        _check(isinstance(gt_raw, Mapping), source, "ground_truth",
               f"expected a topic or a mapping with {sorted(_GT_KEYS)}")
        _no_unknown(gt_raw, _GT_KEYS, source, "ground_truth")
        gt_topic = gt_raw.get("topic")
        _check(_is_name(gt_topic), source, "ground_truth.topic", f"must be a topic name, got {gt_topic!r}")
        ax = gt_raw.get("axes", ["x", "y"])
        _check(isinstance(ax, (list, tuple)) and len(ax) == 2 and all(a in _AXES for a in ax) and ax[0] != ax[1],
               source, "ground_truth.axes", f"must be two different axes of {list(_AXES)}, got {ax!r}")
        tol = _number(gt_raw.get("tolerance", 0.05), source, "ground_truth.tolerance", 0.0)
        named = [k for k in ("parent", "child") if k in gt_raw]
        for k in named:
            _check(_is_name(gt_raw[k]), source, f"ground_truth.{k}", f"must be a frame id, got {gt_raw[k]!r}")
        if len(named) == 1:
            other = ({"parent", "child"} - set(named)).pop()
            raise _fail(source, f"ground_truth.{other}", f"missing: name both parent and child "
                                                         f"(only {named[0]} is given)")
        gt = {"ground_truth": gt_topic, "gt_axes": (str(ax[0]), str(ax[1])), "gt_tolerance": tol,
              "gt_frames": (norm_topic(gt_raw["parent"]), norm_topic(gt_raw["child"])) if named else None}

    slop = _number(data.get("slop", 0.02), source, "slop", 0.0)
    timeout = None if data.get("timeout") is None else _number(data["timeout"], source, "timeout", 1e-6)
    sensors = data.get("sensors_config")
    if sensors is not None:
        _check(isinstance(sensors, str) and sensors.strip(), source, "sensors_config",
               f"must be a sensors YAML path, got {sensors!r}")
        p = Path(sensors).expanduser()
        if not p.is_absolute() and source != "<dict>":
            p = Path(source).parent / p
        _check(p.is_file(), source, "sensors_config", f"file not found: {p}")
        sensors = str(p)
    return TopicMapping(tuple(streams), qoi, slop=slop, timeout=timeout, source=source, sensors_config=sensors, **gt)


def load_mapping(spec: str | Path | Mapping[str, Any] | TopicMapping | None = None) -> TopicMapping:
    """Load a mapping: a shipped name (:data:`SHIPPED`; ``None``: ``default``), a YAML path, plain
    data or an existing :class:`TopicMapping`."""
    if isinstance(spec, TopicMapping):
        return spec
    if isinstance(spec, Mapping):
        return parse_mapping(spec)
    s = "default" if spec is None else str(spec)
    p = paths.config_path(SHIPPED[s]) if s in SHIPPED else Path(s).expanduser()
    if not p.is_file():
        raise MappingError(f"topic mapping {s!r} is neither a shipped mapping {sorted(SHIPPED)} nor an existing file")
    return parse_mapping(paths.read_yaml(p, "topic mapping", MappingError), str(p))
