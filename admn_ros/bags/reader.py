"""Read a bag as synchronized ADMN frames: ``BagFrames(path, mapping)``.

rosbag2 (directory, ``.db3``, ``.mcap``) and ROS 1 ``.bag`` through rosbags' ``AnyReader``; a cut-off storage
file is read up to its last intact message (:mod:`admn_ros.bags.salvage`). Frames form as in the live nodes, log
time as the clock (docs/ARCHITECTURE.md, "Synchronization policy"); an undecodable message leaves its stream
missing in that frame. A bad bag raises :class:`BagReadError` or :class:`BagContentError`.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection
from tqdm import tqdm

from admn_ros.bags.mapping import StreamTopic, TopicMapping, load_mapping, norm_topic
from admn_ros.bags.salvage import bag_loss, open_salvaged, storage_file
from admn_ros.bags.typestore import get_admn_typestore, short_type
from admn_ros.core.image_convert import (MESSAGE_KINDS, ConversionError, check_supported, decode_stream,
                                         message_encoding, supported_text)
from admn_ros.core.health import HEALTH_OFF, MISSING, HealthConfig, content_signature
from admn_ros.core.preprocess import to_model_input
from admn_ros.core.radar_cloud import CloudToRangeAzimuth
from admn_ros.core.sim.config import load_sim_config
from admn_ros.core.sync import StreamSync, SyncedSet, SyncStats, header_stamp_ns

#: Field of the ground-truth types that carry a class label (activity) instead of a position.
LABEL_FIELD = "class_name"
#: Ground-truth message types -> the field holding the position (or the label).
GT_TYPES: dict[str, str] = {
    "geometry_msgs/PointStamped": "point",
    "geometry_msgs/PoseStamped": "pose.position",
    "geometry_msgs/PoseWithCovarianceStamped": "pose.pose.position",
    "nav_msgs/Odometry": "pose.pose.position",
    "geometry_msgs/TransformStamped": "transform.translation",
    "tf2_msgs/TFMessage": "transforms",
    "admn_ros/ActivityLabel": LABEL_FIELD,
}
QOI_TYPE = "admn_ros/StreamQoI"
_LOG = logging.getLogger(__name__)


class BagError(RuntimeError):
    """Base class of the bag errors."""


class BagReadError(BagError):
    """The bag (file) cannot be read: missing, truncated, corrupt. Names the file."""


class BagTopic(NamedTuple):
    """One topic of a bag as ``ros2 bag info`` lists it."""

    topic: str
    msgtype: str
    count: int


class BagContentError(BagError):
    """The bag lacks what the mapping needs or holds data we cannot decode; ``problems`` (one line
    each), the bag's ``contents`` (a ``ros2 bag info``-like table) and ``hint`` are in the message."""

    def __init__(self, path: Path, problems: Sequence[str], contents: Sequence[BagTopic], hint: str) -> None:
        self.path, self.problems, self.contents = path, list(problems), list(contents)
        w, wt = (max((len(c[i]) for c in contents), default=0) for i in (0, 1))
        table = "\n".join(f"  {c.topic:<{w}}  {c.msgtype:<{wt}}  {c.count:>7} msgs" for c in contents)
        super().__init__(f"bag {path}:\n" + "\n".join(f"  - {p}" for p in self.problems)
                         + f"\nthe bag contains {len(self.contents)} topic(s):\n"
                         + (table or "  (the bag has no topics)") + "\n" + hint)


@dataclass(frozen=True)
class StreamQoIInfo:
    """True quality of one stream in one frame (from ``admn_ros/StreamQoI``)."""

    corruption: str
    noise_sigma: float
    severity: float


@dataclass
class BagFrame:
    """One synchronized frame."""

    index: int                                   # 0-based frame number in the bag
    stamp_ns: int                                # newest header stamp of the set
    streams: dict[str, np.ndarray | None]        # stream id -> decoded array, None: no usable message
    stream_stamps_ns: dict[str, int | None]      # header stamp of the message used
    qoi: dict[str, StreamQoIInfo | None] | None  # None: the bag / mapping has no QoI topics
    gt_xy: np.ndarray | None                     # ground-truth position, float64 (2,), metres
    gt_label: str | None = None                  # ground-truth activity label
    bad: dict[str, str] = field(default_factory=dict)     # stream id -> why its message was unusable
    status: dict[str, str] = field(default_factory=dict)  # ok, missing, frozen or stalled (health check)
    log_ns: int = 0                              # log time (the bag's clock) of the set's last message

    @property
    def present(self) -> np.ndarray:
        """``bool (n_streams,)``: which streams have data, in :attr:`streams` order."""
        return np.array([a is not None for a in self.streams.values()], dtype=bool)

    def true_noise(self) -> np.ndarray | None:
        """``float32 (n_streams,)`` true noise sigma per stream (NaN where unknown), or
        ``None`` if the bag has no QoI topics."""
        if self.qoi is None:
            return None
        return np.array([(q.noise_sigma if q is not None else np.nan) for q in
                         (self.qoi.get(s) for s in self.streams)], dtype=np.float32)


def _stamp_ns(msg: Any, fallback: int) -> int:
    """The header stamp, or ``fallback`` (the log time) for a message without one or with a zero stamp."""
    return ns if (ns := header_stamp_ns(msg) or 0) > 0 else fallback


def _positions(msg: Any, path: str, frames: tuple[str, str] | None, seen: set) -> list[tuple[Any, Any]]:
    """``(stamped message, point)`` pairs of one position ground-truth message: the message
    itself, or for a TFMessage (``path`` ``transforms``) and a TransformStamped with
    ``frames`` the transforms ``frames[0] -> frames[1]`` (other frame pairs go to ``seen``)."""
    items = list(msg.transforms) if path == "transforms" else [msg]
    if frames is not None and path in ("transforms", "transform.translation"):
        pairs = [(norm_topic(m.header.frame_id), norm_topic(m.child_frame_id)) for m in items]
        seen.update(pairs)
        items = [m for m, pair in zip(items, pairs) if pair == frames]
    path = "transform.translation" if path == "transforms" else path
    return [(m, functools.reduce(getattr, path.split("."), m)) for m in items]


def _describe(path: Path) -> str:
    """The storage files of a bag, to name in errors."""
    files = sorted([*path.glob("*.db3"), *path.glob("*.mcap"), *path.glob("*.zstd")]) if path.is_dir() else []
    return ", ".join(str(f) for f in files or ([path / "metadata.yaml"] if path.is_dir() else [path]))


def _open_reader(path: Path) -> AnyReader:
    """An open reader of the bag; for a bag whose storage file was cut off, a
    :class:`~admn_ros.bags.salvage.SalvagedReader` of what is intact (its ``loss`` says what
    is missing, and a warning names it)."""
    bag = path
    if not path.exists():
        raise BagReadError(f"bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        path = storage_file(path)  # a rosbag2 directory that lost its metadata.yaml: read the file
        if path is None:
            raise BagReadError(f"bag directory {bag} has no metadata.yaml and not exactly one .db3 / .mcap file")
    try:
        if Path(f"{path}-journal").is_file():  # sqlite would roll back the transaction the recording was in
            raise BagReadError(f"{path}-journal: the recording ended inside a transaction")
        reader = AnyReader([path], default_typestore=get_admn_typestore())
        reader.open()
    except Exception as e:  # noqa: BLE001 - rosbags/sqlite3/mcap raise many error types
        reason = f"{type(e).__name__}: {e}"
        salvaged = open_salvaged(bag, reason)
        if salvaged is not None:
            _LOG.warning("%s; reading the intact messages", salvaged.loss.text())
            return salvaged  # type: ignore[return-value]
        lost = bag_loss(bag, storage_file(bag) or bag, reason, {})  # nothing read: all metadata.yaml lists
        raise BagReadError(f"cannot read bag {path} (file(s): {_describe(path)}): the file is "
                           f"truncated, corrupt or not a bag: {reason}"
                           + (f"\n{lost.text()}" if lost.has_metadata else "")) from e
    return reader


def _key(conn: Connection) -> tuple[int, int]:
    """A connection's identity across the readers of a multi-file bag."""
    return conn.id, id(conn.owner)


def _contents(reader: AnyReader) -> list[BagTopic]:
    return [BagTopic(t, i.msgtype or "<mixed>", int(i.msgcount)) for t, i in sorted(reader.topics.items())]


class _Track:
    """Sorted (stamp_ns, value) samples with nearest / interpolated lookup."""

    def __init__(self, samples: list[tuple[int, Any]]) -> None:
        samples.sort(key=lambda s: s[0])
        self.t = [s[0] for s in samples]
        self.v = [s[1] for s in samples]

    def nearest(self, t: int, tol_ns: int) -> Any | None:
        i = bisect.bisect_left(self.t, t)
        near = [j for j in (i - 1, i) if 0 <= j < len(self.t) and abs(self.t[j] - t) <= tol_ns]
        return self.v[min(near, key=lambda j: abs(self.t[j] - t))] if near else None

    def interp(self, t: int, tol_ns: int) -> np.ndarray | None:
        i = bisect.bisect_left(self.t, t)
        if i < len(self.t) and self.t[i] == t:
            return np.asarray(self.v[i], dtype=np.float64)
        if 0 < i < len(self.t) and t - self.t[i - 1] <= tol_ns and self.t[i] - t <= tol_ns:
            a = (t - self.t[i - 1]) / (self.t[i] - self.t[i - 1])
            return (1 - a) * np.asarray(self.v[i - 1], np.float64) + a * np.asarray(self.v[i], np.float64)
        v = self.nearest(t, tol_ns)
        return None if v is None else np.asarray(v, dtype=np.float64)


class BagFrames(contextlib.AbstractContextManager):
    """Synchronized frames of a bag (see the module docstring); a context manager.

    ``mapping``: anything :func:`~admn_ros.bags.mapping.load_mapping` takes; ``slop`` / ``timeout``
    (s) override the mapping's; ``queue_size`` defaults to what arrives in ``timeout`` at the
    fastest stream's rate plus 10; ``health``: the stream health check (``None``: off).
    Construction and iteration raise :class:`BagReadError` / :class:`BagContentError`.
    """

    def __init__(self, path: str | Path, mapping: Any = None, *, slop: float | None = None,
                 timeout: float | None = None, progress: bool = False, queue_size: int | None = None,
                 health: HealthConfig | None = HealthConfig()) -> None:
        self.path = Path(path)
        self.health = health
        self.mapping: TopicMapping = load_mapping(mapping)
        self.slop = float(self.mapping.slop if slop is None else slop)
        self.progress = bool(progress)
        self.queue_size = queue_size
        self.stats = SyncStats()
        self.undecodable: dict[str, int] = {}  # stream id -> messages skipped as undecodable
        self._warned: set[tuple[str, str, str]] = set()
        self._reader: AnyReader | None = _open_reader(self.path)
        #: what a cut-off bag lost (:class:`admn_ros.bags.salvage.BagLoss`), None for an intact bag
        self.loss = getattr(self._reader, "loss", None)
        try:
            self.contents = _contents(self._reader)
            self._resolve_topics()
            self._cloud_to_map = (CloudToRangeAzimuth(load_sim_config(self.mapping.sensors_config).radar)
                                  if "pointcloud2" in self.kinds.values() else None)
            # messages per stream topic and the bag's duration (s), from the bag index
            self._counts = {sid: sum(int(c.msgcount) for c in cs) for sid, cs in self.stream_conns.items()}
            if not any(self._counts.values()):
                raise self.content_error(["no message on the mapped stream topic(s) " + ", ".join(
                    repr(self.mapping.stream(sid).topic) for sid in self._counts)])
            self._duration_s = max(self._reader.duration, 1) * 1e-9
            self.timeout = float(timeout if timeout is not None else
                                 (self.mapping.timeout if self.mapping.timeout is not None
                                  else self._default_timeout()))
            self._check_first_messages()
            self._load_side_topics()
        except BaseException:
            self.close()
            raise

    def content_error(self, problems: list[str]) -> BagContentError:
        return BagContentError(self.path, problems, self.contents, f"(topic mapping: {self.mapping.source})")

    def _resolve_topics(self) -> None:
        by_topic: dict[str, list[Connection]] = {}
        for c in self._reader.connections:
            by_topic.setdefault(norm_topic(c.topic), []).append(c)

        def lookup(topic: str) -> tuple[list[Connection], list[str], str | None]:
            """A topic's connections, their types and its one type (None: absent or mixed)."""
            conns = by_topic.get(norm_topic(topic), [])
            types = sorted({short_type(c.msgtype) for c in conns})
            return conns, types, types[0] if len(types) == 1 else None

        problems: list[str] = []
        self.stream_conns: dict[str, list[Connection]] = {}
        self.kinds: dict[str, str] = {}       # stream id -> message kind (image, compressed, pointcloud2)
        for st in self.mapping.streams:
            conns, types, one = lookup(st.topic)
            kind = MESSAGE_KINDS.get(one or "")
            if not conns and not st.optional:
                problems.append(f"stream {st.stream_id}: topic {st.topic!r} is not in the bag")
            elif conns and (kind is None or (kind == "pointcloud2" and st.modality != "radar")):
                expected = "sensor_msgs/Image or sensor_msgs/CompressedImage" + (
                    " or sensor_msgs/PointCloud2" if st.modality == "radar" else "")
                problems.append(f"stream {st.stream_id}: topic {st.topic!r} has type(s) {types}, expected {expected}")
            elif conns:
                self.kinds[st.stream_id], self.stream_conns[st.stream_id] = kind, conns
        if not problems and not self.stream_conns:
            problems.append("none of the mapped stream topics is in the bag")
        self.qoi_conns: dict[str, list[Connection]] = {}
        for sid, topic in self.mapping.qoi.items():
            conns, types, _ = lookup(topic)
            if bad := sorted(set(types) - {QOI_TYPE}):
                problems.append(f"qoi of {sid}: topic {topic!r} has type(s) {bad}, expected {QOI_TYPE}")
            elif conns:
                self.qoi_conns[sid] = conns
        self.gt_conns: list[Connection] = []
        self.gt_field = ""
        if self.mapping.ground_truth:
            conns, types, one = lookup(self.mapping.ground_truth)
            if not conns:  # a bag without ground truth replays unscored; a typo in the mapping shows here
                _LOG.warning("bag %s: no ground-truth topic %r (topic mapping %s): its frames have no ground truth",
                             self.path, self.mapping.ground_truth, self.mapping.source)
            elif one not in GT_TYPES:
                problems.append(f"ground truth: topic {self.mapping.ground_truth!r} has type(s) {types}, "
                                f"expected one of {sorted(GT_TYPES)}")
            else:
                self.gt_conns, self.gt_field = conns, GT_TYPES[one]
                if self.gt_field == "transforms" and not self.mapping.gt_frames:
                    problems.append(f"ground truth: topic {self.mapping.ground_truth!r} is a tf2_msgs/TFMessage: "
                                    f"name the transform with ground_truth.parent and ground_truth.child")
        if problems:
            raise self.content_error(problems)

    def _default_timeout(self) -> float:
        """1.5 frame periods (of the fastest mapped stream): long enough that a stream which
        delivered the previous frame is not missing, short enough that one which skipped a
        frame is missing by the time the next frame arrives (so no frame is lost)."""
        periods = [self._duration_s / (n - 1) for n in self._counts.values() if n >= 2]
        return max(1.5 * min(periods), 1e-3) if periods else 1.0

    @property
    def stream_ids(self) -> list[str]:
        return self.mapping.stream_ids

    @property
    def ground_truth_kind(self) -> str | None:
        """``"position"`` (tracking), ``"label"`` (activity) or ``None`` (no ground truth)."""
        return None if not self.gt_conns else "label" if self.gt_field == LABEL_FIELD else "position"

    def _deserialize(self, conn: Connection, raw: bytes) -> Any:
        try:
            return self._reader.deserialize(raw, conn.msgtype)
        except Exception as e:  # noqa: BLE001
            raise BagReadError(f"cannot deserialize a {conn.msgtype} message of topic {conn.topic!r} in "
                               f"bag {self.path} (file(s): {_describe(self.path)}): {type(e).__name__}: {e}") from e

    def _messages(self, conns: Sequence[Connection]) -> Iterator[tuple[Connection, int, bytes]]:
        try:
            yield from self._reader.messages(connections=list(conns))
        except Exception as e:  # noqa: BLE001 - sqlite3 / mcap / rosbags errors
            raise BagReadError(f"error reading bag {self.path} (file(s): {_describe(self.path)}): the file "
                               f"is truncated or corrupt: {type(e).__name__}: {e}") from e

    def _check_encoding(self, st: StreamTopic, enc: str, kind: str) -> str | None:
        what = {"compressed": "CompressedImage format", "image": "Image encoding"}.get(kind, "type")
        if not check_supported(st.modality, enc, kind):
            return (f"stream {st.stream_id}: topic {st.topic!r} has {what} {enc!r}, which a "
                    f"{st.modality} stream cannot use; supported: {supported_text(st.modality)}")
        if st.encodings and enc not in st.encodings:
            return (f"stream {st.stream_id}: topic {st.topic!r} has {what} {enc!r}, the mapping "
                    f"expects {list(st.encodings)}")
        return None

    def _check_first_messages(self) -> None:
        problems = []
        for sid, conns in self.stream_conns.items():
            for conn, _, raw in self._messages(conns):
                enc = message_encoding(self._deserialize(conn, raw), self.kinds[sid])
                problems += filter(None, [self._check_encoding(self.mapping.stream(sid), enc, self.kinds[sid])])
                break
        if problems:
            raise self.content_error(problems)

    def _load_side_topics(self) -> None:
        qoi: dict[str, list[tuple[int, StreamQoIInfo]]] = {sid: [] for sid in self.qoi_conns}
        gt: list[tuple[int, tuple[float, float]]] = []
        labels: list[tuple[int, str]] = []
        side: dict[tuple[int, int], str | None] = {_key(c): sid for sid, cs in self.qoi_conns.items() for c in cs}
        side.update(dict.fromkeys(map(_key, self.gt_conns)))  # QoI: its stream id, ground truth: None
        axes = self.mapping.gt_axes
        pairs: set[tuple[str, str]] = set()
        if self.qoi_conns or self.gt_conns:
            for conn, t, raw in self._messages([c for cs in self.qoi_conns.values() for c in cs] + self.gt_conns):
                msg = self._deserialize(conn, raw)
                if (sid := side[_key(conn)]) is not None:
                    qoi[sid].append((_stamp_ns(msg, t), StreamQoIInfo(
                        str(msg.corruption), float(msg.noise_sigma), float(msg.severity))))
                elif self.gt_field == LABEL_FIELD:
                    labels.append((_stamp_ns(msg, t), str(msg.class_name)))
                else:
                    for m, p in _positions(msg, self.gt_field, self.mapping.gt_frames, pairs):
                        xy = (float(getattr(p, axes[0])), float(getattr(p, axes[1])))
                        if np.isfinite(xy).all():  # NaN: a tracker that lost the target, no ground truth
                            gt.append((_stamp_ns(m, t), xy))
        if pairs and not gt:
            raise self.content_error([f"ground truth: topic {self.mapping.ground_truth!r} has no transform "
                                       f"{' -> '.join(self.mapping.gt_frames or ())} (ground_truth.parent -> "
                                       f"ground_truth.child); it has: "
                                       + ", ".join(f"{a} -> {b}" for a, b in sorted(pairs)[:20])])
        self._qoi = {sid: _Track(v) for sid, v in qoi.items()}
        self._gt, self._labels = _Track(gt), _Track(labels)

    def _make_frame(self, index: int, fs: SyncedSet[str]) -> BagFrame:
        streams: dict[str, np.ndarray | None] = dict.fromkeys(self.mapping.stream_ids)
        stamps: dict[str, int | None] = dict.fromkeys(streams)
        bad: dict[str, str] = {}
        items = {sid: it for sid, it in fs.items.items() if it is not None}
        for sid, (stamp_ns, arr, problem, _) in items.items():
            if problem is None:
                streams[sid], stamps[sid] = arr, stamp_ns
            else:
                bad[sid] = problem
        stamp_ns = max(it[0] for it in items.values())
        tol = int(round(self.slop * 1e9))
        qoi: dict[str, StreamQoIInfo | None] | None = None
        if self._qoi:
            qoi = {sid: (self._qoi[sid].nearest(stamps[sid] if stamps[sid] is not None else stamp_ns, tol)
                         if sid in self._qoi else None) for sid in self.mapping.stream_ids}
        tol_gt = int(round(self.mapping.gt_tolerance * 1e9))
        return BagFrame(index, stamp_ns, streams, stamps, qoi, self._gt.interp(stamp_ns, tol_gt),
                        self._labels.nearest(stamp_ns, tol_gt), bad,
                        {sid: fs.status.get(sid, MISSING) for sid in streams}, max(it[3] for it in items.values()))

    def _signature(self, sid: str, arr: np.ndarray | None) -> np.ndarray | None:
        """The health check's content signature of a decoded message (``None``: not checked; radar detections
        repeat in a static scene)."""
        if self.health is None or arr is None or self.kinds[sid] == "pointcloud2":
            return None
        try:
            return content_signature(to_model_input(self.mapping.stream(sid).modality, arr))
        except ValueError:
            return None

    def _decode(self, sid: str, stamp_ns: int, msg: Any) -> tuple[np.ndarray | None, str | None]:
        """``(the stream's array, None)``, or ``(None, why)`` for a message the stream cannot use:
        counted in :attr:`undecodable` and logged once per stream, encoding and problem."""
        st = self.mapping.stream(sid)
        kind = self.kinds[sid]
        enc = message_encoding(msg, kind)
        problem, reason = self._check_encoding(st, enc, kind), "bad_encoding"
        if problem is None:
            try:
                return decode_stream(msg, kind, st.modality, cloud_to_map=self._cloud_to_map), None
            except ConversionError as e:
                problem, reason = f"stream {sid}: topic {st.topic!r}, {enc}: {e}", e.reason
        self.undecodable[sid] = self.undecodable.get(sid, 0) + 1
        if (sid, enc, reason) not in self._warned:
            self._warned.add((sid, enc, reason))
            _LOG.warning("bag %s: %s (message stamped %d ns); such messages are skipped and the stream "
                         "is missing in their frames (count: BagFrames.undecodable)", self.path, problem, stamp_ns)
        return None, problem

    def __iter__(self) -> Iterator[BagFrame]:
        if self._reader is None:
            raise BagError(f"BagFrames({self.path}) is closed")
        start = self._reader.start_time * 1e-9
        sync: StreamSync[str] = StreamSync(list(self.stream_conns), self.slop, self._queue_size(), self.timeout,
                                           start_time=start, health=self.health)
        self.stats, self.undecodable = sync.stats, {}
        with tqdm(total=max(self._counts.values(), default=0), unit="frame", desc=f"read {self.path.name}",
                  disable=not self.progress, leave=False) as bar:
            for index, fs in enumerate(self._synced_sets(sync, start)):
                yield self._make_frame(index, fs)
                bar.update(1)

    def _synced_sets(self, sync: StreamSync[str], start: float) -> Iterator[SyncedSet[str]]:
        keys = list(self.stream_conns)
        sid_of = {_key(c): sid for sid, cs in self.stream_conns.items() for c in cs}
        seen, last_seen = dict.fromkeys(keys, 0), dict.fromkeys(keys, start)
        for conn, t_ns, raw in self._messages([c for cs in self.stream_conns.values() for c in cs]):
            sid = sid_of[_key(conn)]
            msg = self._deserialize(conn, raw)
            seen[sid] += 1
            last_seen[sid] = now = t_ns * 1e-9
            stamp_ns = _stamp_ns(msg, t_ns)
            arr, problem = self._decode(sid, stamp_ns, msg)
            yield from sync.add(sid, stamp_ns, (stamp_ns, arr, problem, t_ns), now=now,
                                signature=self._signature(sid, arr))
        if short := {s: (seen[s], n) for s in keys if seen[s] < (n := self._counts[s])}:
            raise BagReadError(
                f"bag {self.path} (file(s): {_describe(self.path)}) is truncated: read fewer messages "
                f"than its index lists: " + ", ".join(
                    f"{self.mapping.stream(s).topic} {a}/{b}" for s, (a, b) in short.items()))
        for now in sorted(last_seen.values()):  # end of bag: the inputs time out one by one, oldest first
            yield from sync.poll(now + self.timeout + 1e-6)

    @property
    def sync_parameters(self) -> dict[str, float | int]:
        """``slop``, ``timeout``, ``queue_size`` and the health check's thresholds: the node
        parameters that make a live node form the same frames from the same message order."""
        return {"slop": self.slop, "timeout": self.timeout, "queue_size": self._queue_size(),
                **asdict(self.health or HEALTH_OFF)}

    def _queue_size(self) -> int:
        if self.queue_size is not None:
            return int(self.queue_size)
        rates = [n / self._duration_s for n in self._counts.values()]
        return int(math.ceil(self.timeout * max(rates, default=1.0))) + 10

    def close(self) -> None:
        r, self._reader = self._reader, None
        if r is not None:
            with contextlib.suppress(Exception):  # closing a reader that failed half-way
                r.close()

    def __exit__(self, *exc: object) -> None:
        self.close()
