"""``admn-ros record``: record the (simulated) sensor network to a rosbag2.

Two sources:

``--source sim`` (default)
    Runs :class:`admn_ros.core.sim.GDTMSimulator` directly (no DDS: fast and
    deterministic, the same arguments give the same messages) and writes exactly what
    ``admn_ros.ros.sensor_node`` publishes for every frame: per stream
    ``<node>/color/image_raw`` (rgb8), ``<node>/depth/image_raw`` (16UC1 mm),
    ``<node>/radar/range_azimuth`` (32FC1), ``<node>/qoi/<modality>`` (admn_ros/StreamQoI,
    the true noise), ``<node>/{color,depth}/camera_info`` and ``ground_truth/target``
    (PointStamped, map), with the sensor node's frame ids and offered QoS. Stamps are
    ``start_time + k / rate`` (sim time); the log time of each message equals its stamp.
    A dropped-out stream writes its QoI but no image, as the node does.
    ``--scenario activity`` records the sensor node's activity scenario instead
    (:class:`admn_ros.core.sim.activity.ActivitySimulator`: subject ``--subject-id``,
    default 1000, a person no dataset of ours trains on): node1's rgb / depth /
    range-Doppler radar images and QoI at 10 Hz, no camera_info, and the true activity on
    ``ground_truth/activity`` (admn_ros/ActivityLabel).

``--source live``
    Subscribes over DDS with rclpy to the given topics (default: the topics above),
    resolving each topic's type from the ROS graph, and writes the raw CDR bytes of
    every message (``raw=True`` subscriptions: no deserialisation) until ``--duration``
    seconds have passed. Subscriptions use the publishers' reliability, and the
    publishers' offered QoS profiles go into ``metadata.yaml`` like ``ros2 bag record``
    does. The log time is the receive time on the node clock.

Either way the bag is written by rosbags (rosbag2 format version 9, ``sqlite3`` or
``mcap`` storage, ``cdr`` serialisation, type definitions and RIHS01 hashes embedded),
which ``ros2 bag info`` / ``ros2 bag play`` read.

Examples::

    admn-ros record --frames 150 --seed 0 --out /tmp/sim_bag
    admn-ros record --duration 20 --storage mcap --corrupt "node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5" \\
        --corrupt node2/depth=dropout --out /tmp/sim_corrupt
    admn-ros record --scenario activity --frames 300 --corrupt "node1/rgb=gaussian:sigma=3.0,flicker:period=4:duty=0.5" \
        --out /tmp/activity_bag
    admn-ros record --source live --duration 5 --out /tmp/live_bag
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from admn_ros.bags import msgs
from admn_ros.bags.typestore import ensure_type, get_admn_typestore, normalize_type

if TYPE_CHECKING:
    from rosbags.interfaces import Qos
    from rosbags.rosbag2 import Writer

    from admn_ros.core.sim import CorruptionSpec

#: Default stamp of frame 0 (s since the epoch, 2023-11-14T22:13:20Z): deterministic, and
#: far from 0, which ROS treats as "time not set" under ``use_sim_time``.
DEFAULT_START_TIME = 1_700_000_000.0
#: rosbag2 metadata version written (the newest rosbags writes; Jazzy/Kilted's).
BAG_VERSION = 9
#: rmw's "infinite" duration as rosbag2 stores it (RMW_DURATION_INFINITE).
_INFINITE = (9223372036, 854775807)

FRAME_SUFFIX = {"rgb": "color_optical_frame", "depth": "depth_optical_frame", "radar": "radar_frame"}
_CORR_KEYS = {"sigma": "sigma", "severity": "severity", "schedule": "schedule", "period": "period_s",
              "period_s": "period_s", "duty": "duty"}


# ---------------------------------------------------------------------------- small helpers


def frame_id(node: str, modality: str) -> str:
    """``("node1", "rgb")`` -> ``node1_color_optical_frame`` (the sensor node's frame ids)."""
    return f"{node}_{FRAME_SUFFIX[modality]}"


def parse_corrupt_arg(text: str) -> tuple[str, "CorruptionSpec"]:
    """``"node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5"`` -> (stream id, spec).

    After ``<stream>=`` comes the corruption kind, then ``key=value`` options separated by
    ``,`` or ``:``; ``flicker`` / ``constant`` set the schedule. Keys: ``sigma``,
    ``severity``, ``schedule``, ``period`` (= ``period_s``), ``duty``. The sensor node's
    parameter syntax (``gaussian:sigma=3.0,schedule=flicker,period_s=2.0,duty=0.5``) works too.
    Raises ``ValueError`` naming the problem.
    """
    from admn_ros.core.sim import CorruptionSpec

    sid, eq, rest = str(text).partition("=")
    sid = sid.strip()
    if not eq or not sid or not rest.strip():
        raise ValueError(f"--corrupt {text!r}: expected '<node>/<modality>=<kind>[:key=value,...]', "
                         f"e.g. 'node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5'")
    tokens = [t.strip() for t in rest.replace(":", ",").split(",") if t.strip()]
    kind = tokens[0].lower()
    fields: dict[str, Any] = {"kind": kind}
    for tok in tokens[1:]:
        if tok.lower() in ("flicker", "constant"):
            fields["schedule"] = tok.lower()
            continue
        key, eq2, val = tok.partition("=")
        key = key.strip().lower()
        if not eq2 or key not in _CORR_KEYS:
            raise ValueError(f"--corrupt {text!r}: bad option {tok!r}; options: sigma=, severity=, "
                             f"flicker|constant, period=, duty=")
        k = _CORR_KEYS[key]
        if k == "schedule":
            fields[k] = val.strip().lower()
            continue
        try:
            fields[k] = float(val)
        except ValueError:
            raise ValueError(f"--corrupt {text!r}: {key}={val!r} is not a number") from None
    try:
        spec = CorruptionSpec(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--corrupt {text!r}: {e}") from None
    return sid, spec


def corruption_text(spec: "CorruptionSpec") -> str:
    """Compact text of a spec, e.g. ``gaussian:sigma=3,schedule=flicker,period_s=2,duty=0.5``
    (readable back by :func:`parse_corrupt_arg` after ``<stream>=``)."""
    parts = [spec.kind]
    opts = [f"{k}={getattr(spec, k):g}" for k in ("sigma", "severity") if getattr(spec, k) is not None]
    if spec.schedule != "constant":
        opts += [f"schedule={spec.schedule}", f"period_s={spec.period_s:g}", f"duty={spec.duty:g}"]
    return parts[0] + (":" + ",".join(opts) if opts else "")


def _qos(reliable: bool, depth: int) -> "Qos":
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    inf = QosTime(*_INFINITE)
    return Qos(QosHistory.KEEP_LAST, int(depth),
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.VOLATILE, inf, inf, QosLiveliness.AUTOMATIC, inf, False)


def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin

    try:
        return {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[storage]
    except KeyError:
        raise ValueError(f"unknown storage {storage!r}; use sqlite3 or mcap") from None


def open_writer(out: Path, storage: str = "sqlite3") -> "Writer":
    """An opened rosbags rosbag2 writer (format version 9); ``out`` must not exist."""
    from rosbags.rosbag2 import Writer

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"output bag {out} exists already; choose another --out or remove it")
    w = Writer(out, version=BAG_VERSION, storage_plugin=_storage_plugin(storage))
    w.open()
    return w


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@dataclass
class RecordSummary:
    """What a recording wrote."""

    path: Path
    storage: str
    frames: int = 0
    messages: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0          # bag time span
    wall_s: float = 0.0              # time the recording took
    size_bytes: int = 0

    def text(self) -> str:
        w = max((len(t) for t in self.per_topic), default=5)
        lines = [f"bag        {self.path} ({self.storage}, rosbag2 v{BAG_VERSION})",
                 f"frames     {self.frames}",
                 f"messages   {self.messages} on {len(self.per_topic)} topics",
                 f"duration   {self.duration_s:.3f} s (bag time), recorded in {self.wall_s:.2f} s",
                 f"size       {self.size_bytes / 1e6:.1f} MB"]
        lines += [f"  {t:<{w}}  {n:>6}" for t, n in sorted(self.per_topic.items())]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- sim source


def sim_topics(stream_ids: Sequence[str], camera_info: bool = True) -> dict[str, tuple[str, bool]]:
    """Absolute topic -> (type, reliable) of what the sensor node publishes for ``stream_ids``."""
    from admn_ros.core.streams import split_stream_id
    from admn_ros.ros import topics

    out: dict[str, tuple[str, bool]] = {}
    for sid in stream_ids:
        node, mod = split_stream_id(sid)
        out["/" + topics.image_topic(sid)] = ("sensor_msgs/msg/Image", False)
        if camera_info and mod in ("rgb", "depth"):
            out[f"/{node}/{'color' if mod == 'rgb' else 'depth'}/camera_info"] = ("sensor_msgs/msg/CameraInfo", False)
        out["/" + topics.qoi_topic(sid)] = ("admn_ros/msg/StreamQoI", False)
    out["/" + topics.GROUND_TRUTH] = ("geometry_msgs/msg/PointStamped", True)
    return out


def _sim_loop(out: Path, storage: str, *, sim_text: str, corruptions: dict[str, "CorruptionSpec"] | None,
              topic_types: dict[str, tuple[str, bool]], frames: int, rate: float, start_time: float,
              qos_depth: int, progress: bool, emit: Any) -> RecordSummary:
    """The recording loop both sim scenarios share: open the bag, store ``sim_text`` and the
    corruptions as custom data, add the connections, call ``emit(k, t_ns, put)`` for frame
    ``k`` (``put(topic, msg, t_ns)`` writes one message), close it. On error the partial bag
    is removed."""
    from tqdm import tqdm

    if frames <= 0:
        raise ValueError(f"number of frames must be > 0, got {frames}")
    if not math.isfinite(start_time) or start_time <= 0:
        raise ValueError(f"start_time must be > 0 s (0 means 'unset' in ROS), got {start_time}")
    ts = get_admn_typestore()
    start_ns = int(round(start_time * 1e9))
    period_ns = 1e9 / rate
    summary = RecordSummary(out, storage)
    t_wall = time.perf_counter()
    writer = open_writer(out, storage)
    try:
        writer.set_custom_data("admn_ros.source", "sim")
        writer.set_custom_data("admn_ros.sim", f"{sim_text} rate_hz={rate:g} frames={frames}")
        if corruptions:
            writer.set_custom_data("admn_ros.corruptions",
                                   "; ".join(f"{k}={corruption_text(v)}" for k, v in corruptions.items()))
        conns = {t: writer.add_connection(t, typ, typestore=ts, offered_qos_profiles=[_qos(rel, qos_depth if not rel else 10)])
                 for t, (typ, rel) in topic_types.items()}
        summary.per_topic = {t: 0 for t in conns}

        def put(topic: str, msg: Any, t_ns: int) -> None:
            writer.write(conns[topic], t_ns, msgs.serialize(msg, ts))
            summary.per_topic[topic] = summary.per_topic.get(topic, 0) + 1

        last_ns = start_ns
        for k in tqdm(range(frames), unit="frame", desc="record (sim)", disable=not progress, leave=False):
            last_ns = start_ns + int(round(k * period_ns))
            emit(k, last_ns, put)
            summary.frames += 1
        writer.close()
    except BaseException:
        writer.abort()
        _remove_bag(out)
        raise
    summary.messages = sum(summary.per_topic.values())
    summary.duration_s = (last_ns - start_ns) * 1e-9
    summary.wall_s = time.perf_counter() - t_wall
    summary.size_bytes = dir_size(out)
    return summary


def _put_streams(put: Any, streams: dict[str, Any], ids: Sequence[str], t_ns: int,
                 cams: dict[str, Any] | None = None) -> None:
    """One frame's stream messages, as the sensor node publishes them: per stream its QoI,
    then (unless dropped out) its image and, with ``cams``, the camera's CameraInfo."""
    from admn_ros.core.image_convert import sensor_array
    from admn_ros.core.streams import MODALITIES, split_stream_id
    from admn_ros.ros import topics

    for sid in ids:
        sf = streams.get(sid)
        if sf is None:
            continue
        node, mod = split_stream_id(sid)
        hdr = msgs.header(t_ns, frame_id(node, mod))
        put("/" + topics.qoi_topic(sid), msgs.stream_qoi(hdr, sid, sf.corruption, sf.sigma, sf.severity), t_ns)
        if sf.data is None:  # dropout: no image, as the sensor node
            continue
        put("/" + topics.image_topic(sid), msgs.image(sensor_array(mod, sf.data), MODALITIES[mod].encoding, hdr), t_ns)
        if cams and mod in ("rgb", "depth"):
            cam = cams[node]
            put(f"/{node}/{'color' if mod == 'rgb' else 'depth'}/camera_info",
                msgs.camera_info(hdr, cam.width, cam.height, cam.K), t_ns)


def _check_rate(rate_hz: float) -> float:
    if not (math.isfinite(rate_hz) and 0 < rate_hz <= 240):
        raise ValueError(f"rate must be in (0, 240] Hz, got {rate_hz}")
    return float(rate_hz)


def record_sim(out: str | Path, *, frames: int, seed: int = 0, episode: int = 0,
               rate_hz: float | None = None, corruptions: dict[str, "CorruptionSpec"] | None = None,
               storage: str = "sqlite3", start_time: float = DEFAULT_START_TIME,
               config_file: str | None = None, nodes: Sequence[str] | None = None,
               camera_info: bool = True, qos_depth: int = 5, progress: bool = False) -> RecordSummary:
    """Record ``frames`` simulator frames to a new bag at ``out`` (see the module docstring).

    Returns a :class:`RecordSummary`. On error the partial bag is removed.
    """
    from dataclasses import replace

    from admn_ros.core.sim import GDTMSimulator, load_sim_config
    from admn_ros.core.streams import split_stream_id
    from admn_ros.ros import topics

    cfg = load_sim_config(config_file)
    if rate_hz is not None and abs(float(rate_hz) - float(cfg.rate_hz)) > 1e-9:
        cfg = replace(cfg, rate_hz=_check_rate(float(rate_hz)))
    rate = float(cfg.rate_hz)
    sim = GDTMSimulator(cfg, seed=int(seed), episode=int(episode))
    for sid, spec in (corruptions or {}).items():
        sim.set_corruption(sid, spec)
    all_nodes = list(cfg.streams.nodes)
    use_nodes = list(dict.fromkeys(nodes)) if nodes else all_nodes
    bad = [n for n in use_nodes if n not in all_nodes]
    if bad:
        raise ValueError(f"unknown sensor node(s) {bad}; nodes of the config: {all_nodes}")
    ids = [sid for sid in cfg.streams.ids if split_stream_id(sid)[0] in use_nodes]
    cams = {n: cfg.node(n).camera for n in use_nodes} if camera_info else None

    def emit(k: int, t_ns: int, put: Any) -> None:
        frame = sim.step()
        _put_streams(put, frame.streams, ids, t_ns, cams)
        put("/" + topics.GROUND_TRUTH,
            msgs.point_stamped(msgs.header(t_ns, "map"), frame.gt_xy[0], frame.gt_xy[1]), t_ns)

    return _sim_loop(Path(out), storage, sim_text=f"seed={seed} episode={episode} config={cfg.source or 'built-in'}",
                     corruptions=corruptions, topic_types=sim_topics(ids, camera_info), frames=frames, rate=rate,
                     start_time=start_time, qos_depth=qos_depth, progress=progress, emit=emit)


#: Default subject of ``record --scenario activity``: an id no dataset of ours trains on
#: (datasets use ids ``0 .. subjects-1``), i.e. a person the shipped models never saw.
ACTIVITY_DEFAULT_SUBJECT = 1000


def activity_sim_topics(stream_ids: Sequence[str]) -> dict[str, tuple[str, bool]]:
    """Absolute topic -> (type, reliable) of the activity scenario of the sensor node: images
    and QoI of ``stream_ids`` (no camera_info) and ``/ground_truth/activity``."""
    from admn_ros.ros import topics

    out = {t: v for t, v in sim_topics(stream_ids, camera_info=False).items() if t != "/" + topics.GROUND_TRUTH}
    out["/" + topics.ACTIVITY_GROUND_TRUTH] = ("admn_ros/msg/ActivityLabel", True)
    return out


def record_activity_sim(out: str | Path, *, frames: int, seed: int = 0, episode: int = 0,
                        subject_id: int = ACTIVITY_DEFAULT_SUBJECT, rate_hz: float | None = None,
                        corruptions: dict[str, "CorruptionSpec"] | None = None, storage: str = "sqlite3",
                        start_time: float = DEFAULT_START_TIME, qos_depth: int = 5,
                        progress: bool = False) -> RecordSummary:
    """Record the sensor node's ``scenario: activity`` (a subject performing the activities in
    front of node1; :class:`admn_ros.core.sim.activity.ActivitySimulator`) to a new bag:
    node1's rgb / depth / radar images and QoI, and the true activity of every frame on
    ``/ground_truth/activity`` (``admn_ros/ActivityLabel``, confidence 1, as the node sends).

    Returns a :class:`RecordSummary`. On error the partial bag is removed.
    """
    from admn_ros.core.sim.activity import ACTIVITIES, ActivitySimulator, draw_subject
    from admn_ros.ros import topics

    rate = 10.0 if rate_hz is None else _check_rate(float(rate_hz))
    sim = ActivitySimulator(draw_subject(int(seed), int(subject_id)), seed=int(seed), episode=int(episode),
                            rate_hz=rate)
    ids = list(sim.stream_ids)
    for sid, spec in (corruptions or {}).items():
        if sid not in ids:
            raise ValueError(f"--corrupt {sid}: not a stream of the activity scenario; streams: {ids}")
        sim.set_corruption(sid, spec)
    names = list(ACTIVITIES)

    def emit(k: int, t_ns: int, put: Any) -> None:
        frame = sim.step()
        _put_streams(put, frame.streams, ids, t_ns)
        probs = [1.0 if a == frame.label else 0.0 for a in names]
        put("/" + topics.ACTIVITY_GROUND_TRUTH,
            msgs.activity_label(msgs.header(t_ns, frame_id(ids[0].split("/")[0], "rgb")), names, probs, 1), t_ns)

    return _sim_loop(Path(out), storage,
                     sim_text=f"scenario=activity subject_id={subject_id} seed={seed} episode={episode}",
                     corruptions=corruptions, topic_types=activity_sim_topics(ids), frames=frames, rate=rate,
                     start_time=start_time, qos_depth=qos_depth, progress=progress, emit=emit)


def _remove_bag(out: Path) -> None:
    import shutil

    if out.is_dir():
        shutil.rmtree(out, ignore_errors=True)


# ---------------------------------------------------------------------------- live source


def default_live_topics(stream_ids: Sequence[str] | None = None) -> list[str]:
    """What ``--source sim`` writes, as absolute topic names: the sensor node's image,
    camera_info, QoI and ground-truth topics."""
    from admn_ros.core.streams import StreamSet

    ids = list(stream_ids) if stream_ids else StreamSet().ids
    return list(sim_topics(ids, camera_info=True))


def _import_msg_class(msgtype: str) -> Any:
    """``sensor_msgs/msg/Image`` -> the rclpy message class."""
    import importlib

    pkg, sub, name = normalize_type(msgtype).split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{sub}"), name)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"cannot import the Python message class of {msgtype!r} ({pkg}.{sub}.{name}): {e}; "
                           "is the interface package built and on PYTHONPATH?") from None


def _rclpy_qos_to_bag(q: Any) -> "Qos":
    """rclpy QoSProfile (from get_publishers_info_by_topic) -> rosbags Qos."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def dur(d: Any) -> QosTime:
        ns = int(d.nanoseconds)
        if ns >= 2**63 - 1 or ns < 0:
            return QosTime(*_INFINITE)
        return QosTime(*divmod(ns, 1_000_000_000))

    def enum(cls: Any, v: Any) -> Any:
        try:
            return cls[v.name.upper()]
        except KeyError:
            return cls.UNKNOWN

    return Qos(enum(QosHistory, q.history), int(q.depth), enum(QosReliability, q.reliability),
               enum(QosDurability, q.durability), dur(q.deadline), dur(q.lifespan),
               enum(QosLiveliness, q.liveliness), dur(q.liveliness_lease_duration),
               bool(q.avoid_ros_namespace_conventions))


def record_live(out: str | Path, topics: Sequence[str], *, duration: float, storage: str = "sqlite3",
                wait: float = 5.0, node_name: str = "admn_bag_recorder",
                progress: bool = False, log: Any = print) -> RecordSummary:
    """Record ``topics`` from the ROS graph for ``duration`` seconds (see the module docstring).

    Waits up to ``wait`` s for the topics to appear; topics still unknown then are reported
    and skipped (if none is found, raises ``RuntimeError`` listing the graph's topics).
    """
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"--duration must be > 0 s for live recording, got {duration}")
    from admn_ros.ros.env import isolated_env

    isolated_env()  # localhost discovery + our FastDDS profile; keeps ROS_DOMAIN_ID if set
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy, HistoryPolicy

    want = ["/" + t.strip().strip("/") for t in topics if t.strip().strip("/")]
    if not want:
        raise ValueError("no topics to record")
    out = Path(out)
    summary = RecordSummary(out, storage)
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    node = None
    writer = None
    t_wall = time.perf_counter()
    try:
        node = rclpy.create_node(node_name, context=ctx)
        from rclpy.executors import SingleThreadedExecutor

        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        deadline = time.monotonic() + max(0.0, wait)
        found: dict[str, str] = {}
        while True:
            graph = dict(node.get_topic_names_and_types())
            found = {t: graph[t][0] for t in want if t in graph and graph[t]}
            if len(found) == len(want) or time.monotonic() >= deadline:
                break
            ex.spin_once(timeout_sec=0.1)
        missing = [t for t in want if t not in found]
        if not found:
            raise RuntimeError(f"none of the topics {want} appeared within {wait:g} s on ROS_DOMAIN_ID="
                               f"{os.environ.get('ROS_DOMAIN_ID')}; the graph has: "
                               f"{sorted(dict(node.get_topic_names_and_types()))}")
        if missing:
            log(f"[record] not on the graph after {wait:g} s, skipped: {missing}")
        ts = get_admn_typestore()
        writer = open_writer(out, storage)
        writer.set_custom_data("admn_ros.source", "live")
        conns: dict[str, Any] = {}
        subs = []
        for topic, typ in found.items():
            try:
                name = ensure_type(typ, ts)
                cls = _import_msg_class(name)
            except Exception as e:  # noqa: BLE001 - report and skip the topic
                log(f"[record] skipping {topic} ({typ}): {e}")
                continue
            infos = node.get_publishers_info_by_topic(topic)
            offered = [_rclpy_qos_to_bag(i.qos_profile) for i in infos]
            reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            conns[topic] = writer.add_connection(topic, name, typestore=ts, offered_qos_profiles=offered)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                             reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.VOLATILE)

            def cb(data: bytes, topic: str = topic) -> None:
                writer.write(conns[topic], node.get_clock().now().nanoseconds, data)  # type: ignore[union-attr]
                summary.per_topic[topic] = summary.per_topic.get(topic, 0) + 1

            subs.append(node.create_subscription(cls, topic, cb, qos, raw=True))
        if not subs:
            raise RuntimeError(f"no recordable topic among {list(found)}")
        for t in conns:
            summary.per_topic.setdefault(t, 0)
        log(f"[record] recording {len(subs)} topics for {duration:g} s on ROS_DOMAIN_ID="
            f"{os.environ.get('ROS_DOMAIN_ID')} -> {out}")
        from tqdm import tqdm

        t0 = time.monotonic()
        first_ns = node.get_clock().now().nanoseconds
        with tqdm(total=round(duration, 1), unit="s", desc="record (live)", disable=not progress,
                  leave=False, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s") as bar:
            while (el := time.monotonic() - t0) < duration:
                ex.spin_once(timeout_sec=min(0.05, max(0.0, duration - el)))
                bar.n = round(min(el, duration), 1)
                bar.refresh()
        last_ns = node.get_clock().now().nanoseconds
        for s in subs:
            node.destroy_subscription(s)
        writer.close()
        writer = None
        summary.duration_s = (last_ns - first_ns) * 1e-9
    except BaseException:
        if writer is not None:
            writer.abort()
            _remove_bag(out)
        raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    summary.messages = sum(summary.per_topic.values())
    summary.frames = max((n for t, n in summary.per_topic.items() if t.endswith("image_raw")), default=0)
    summary.wall_s = time.perf_counter() - t_wall
    summary.size_bytes = dir_size(out)
    return summary


# ---------------------------------------------------------------------------- CLI


def build_parser(prog: str = "admn-ros record") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="source sim writes exactly the sensor node's topics; source live "
                                       "subscribes over DDS (ROS_DOMAIN_ID must match the graph's).")
    p.add_argument("--source", choices=("sim", "live"), default="sim", help="where the data comes from")
    p.add_argument("--out", required=True, help="output bag directory (must not exist)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="rosbag2 storage plugin")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to record (sim: bag time; live: wall time); default 10")
    p.add_argument("--frames", type=int, default=None, help="sim: number of frames (overrides --duration)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("sim source")
    g.add_argument("--scenario", choices=("tracking", "activity"), default="tracking",
                   help="tracking (the GDTM-style network of --config) or activity (a subject in front of node1, "
                        "ground truth on /ground_truth/activity)")
    g.add_argument("--subject-id", type=int, default=None,
                   help="activity: the simulated subject (default 1000, a person no dataset trains on)")
    g.add_argument("--seed", type=int, default=0, help="scene seed")
    g.add_argument("--episode", type=int, default=0, help="episode index")
    g.add_argument("--rate", type=float, default=None, help="frame rate Hz (default: the sim config's)")
    g.add_argument("--config", default=None, help="simulator config YAML (default: config/sensors.yaml)")
    g.add_argument("--nodes", nargs="+", default=None, help="sensor nodes to record (default: all)")
    g.add_argument("--start-time", type=float, default=DEFAULT_START_TIME,
                   help=f"stamp of frame 0, s (default {DEFAULT_START_TIME:.0f})")
    g.add_argument("--corrupt", action="append", default=[], metavar="STREAM=SPEC",
                   help="corrupt a stream, repeatable, e.g. 'node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5' "
                        "or 'node2/depth=dropout' (kinds: gaussian, low_light, motion_blur, frozen, clutter, dropout)")
    g.add_argument("--no-camera-info", action="store_true", help="do not write camera_info topics")
    g2 = p.add_argument_group("live source")
    g2.add_argument("--topics", nargs="+", default=None,
                    help="topics to record (default: the sensor node's image, camera_info, QoI and "
                         "ground-truth topics, i.e. what --source sim writes)")
    g2.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the topics to appear")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``admn-ros record ...``; returns the exit code."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    progress = not args.no_progress
    try:
        if args.source == "sim":
            from admn_ros.core.sim import load_sim_config

            corr: dict[str, Any] = {}
            for text in args.corrupt:
                sid, spec = parse_corrupt_arg(text)
                corr[sid] = spec
            activity = args.scenario == "activity"
            if activity and (args.config or args.nodes or args.no_camera_info):
                raise ValueError("--config, --nodes and --no-camera-info are for --scenario tracking")
            if not activity and args.subject_id is not None:
                raise ValueError("--subject-id is for --scenario activity")
            if args.frames is not None:
                frames = int(args.frames)
            else:
                rate = args.rate or (10.0 if activity else load_sim_config(args.config).rate_hz)
                frames = int(round((10.0 if args.duration is None else args.duration) * rate)) + 1
            if activity:
                s = record_activity_sim(
                    args.out, frames=frames, seed=args.seed, episode=args.episode, rate_hz=args.rate,
                    subject_id=ACTIVITY_DEFAULT_SUBJECT if args.subject_id is None else args.subject_id,
                    corruptions=corr, storage=args.storage, start_time=args.start_time, progress=progress)
            else:
                s = record_sim(args.out, frames=frames, seed=args.seed, episode=args.episode, rate_hz=args.rate,
                               corruptions=corr, storage=args.storage, start_time=args.start_time,
                               config_file=args.config, nodes=args.nodes, camera_info=not args.no_camera_info,
                               progress=progress)
        else:
            s = record_live(args.out, args.topics or default_live_topics(), duration=args.duration or 10.0,
                            storage=args.storage, wait=args.wait, progress=progress)
    except (ValueError, FileExistsError, RuntimeError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"admn-ros record: error: {msg}", file=sys.stderr)
        return 2
    print(s.text())
    return 0


__all__ = ["DEFAULT_START_TIME", "BAG_VERSION", "RecordSummary", "frame_id", "parse_corrupt_arg", "corruption_text",
           "sim_topics", "record_sim", "activity_sim_topics", "record_activity_sim",
           "ACTIVITY_DEFAULT_SUBJECT", "record_live", "default_live_topics", "open_writer", "main"]


if __name__ == "__main__":
    sys.exit(main())
