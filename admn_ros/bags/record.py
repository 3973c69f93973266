"""``admn-ros record``: record the (simulated) sensor network to a rosbag2.

``--source sim`` writes, without DDS, what ``admn_ros.ros.sensor_node`` publishes per frame (its frame ids and
offered QoS), stamped ``DEFAULT_START_TIME + k / rate`` with log time = stamp; ``--source live`` stores raw DDS
subscriptions with the publishers' QoS, log time = receive time. Both write rosbag2 v9, as ``ros2 bag`` does.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from admn_ros.bags import msgs
from admn_ros.bags.typestore import TypestoreError, get_admn_typestore, normalize_type
from admn_ros.cli import refuse_unused
from admn_ros.core.image_convert import sensor_array
from admn_ros.core.sim import CorruptionSpec, corruption_text, parse_corruption
from admn_ros.core.streams import MODALITIES, StreamSet, split_stream_id
from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task
from admn_ros.ros import topics

#: Stamp of frame 0 (s since the epoch, 2023-11-14T22:13:20Z): deterministic, and far from 0,
#: which ROS treats as "time not set" under ``use_sim_time``.
DEFAULT_START_TIME = 1_700_000_000.0
#: rosbag2 metadata version written (the newest rosbags writes; Jazzy/Kilted's).
BAG_VERSION = 9
#: rmw's "infinite" duration as rosbag2 stores it (RMW_DURATION_INFINITE).
_INFINITE = (9223372036, 854775807)


def parse_corrupt_arg(text: str) -> tuple[str, CorruptionSpec]:
    """``"node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5"`` -> (stream id, spec); after
    ``<stream>=`` the syntax of :func:`admn_ros.core.sim.parse_corruption`. Raises ``ValueError``
    naming the argument and the problem."""
    sid, eq, rest = str(text).partition("=")
    sid = sid.strip()
    if not eq or not sid or not rest.strip():
        raise ValueError(f"--corrupt {text!r}: expected '<node>/<modality>=<kind>[:key=value,...]', "
                         f"e.g. 'node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5'")
    try:
        return sid, parse_corruption(rest)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--corrupt {text!r}: {e}") from None


def _qos(reliable: bool, depth: int) -> Qos:
    inf = QosTime(*_INFINITE)
    return Qos(QosHistory.KEEP_LAST, int(depth),
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.VOLATILE, inf, inf, QosLiveliness.AUTOMATIC, inf, False)


def open_writer(out: Path, storage: str = "sqlite3") -> Writer:
    """An opened rosbags rosbag2 writer (format version 9); ``out`` must not exist."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"output bag {out} exists already; choose another --out or remove it")
    if storage not in ("sqlite3", "mcap"):
        raise ValueError(f"unknown storage {storage!r}; use sqlite3 or mcap")
    w = Writer(out, version=BAG_VERSION, storage_plugin=StoragePlugin[storage.upper()])
    w.open()
    return w


@contextlib.contextmanager
def new_bag(out: Path, storage: str = "sqlite3") -> Iterator[Writer]:
    """:func:`open_writer` for a ``with`` block: the bag is finished (``metadata.yaml``) at its end, or aborted
    and removed after an error."""
    w = open_writer(out, storage)
    try:
        yield w
    except BaseException:
        w.abort()
        shutil.rmtree(out, ignore_errors=True)
        raise
    w.close()


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

    def finish(self, t_wall: float) -> "RecordSummary":
        """Fill in the totals of a finished recording that started at ``perf_counter()`` ``t_wall``."""
        self.messages = sum(self.per_topic.values())
        self.wall_s = time.perf_counter() - t_wall
        self.size_bytes = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self


def sim_topics(stream_ids: Sequence[str], camera_info: bool, task: str | None = None) -> dict[str, tuple[str, bool]]:
    """Absolute topic -> (type, reliable) of what the sensor node publishes for ``stream_ids``
    in a task's scenario."""
    out: dict[str, tuple[str, bool]] = {}
    for sid in stream_ids:
        out["/" + topics.image_topic(sid)] = ("sensor_msgs/msg/Image", False)
        if camera_info and (cam := topics.camera_info_topic(sid)):
            out["/" + cam] = ("sensor_msgs/msg/CameraInfo", False)
        out["/" + topics.qoi_topic(sid)] = ("admn_ros/msg/StreamQoI", False)
    t = get_task(task)
    out["/" + t.truth.topic] = (t.truth.type, True)
    return out


def record_sim(out: str | Path, *, task: str | None = None, frames: int | None = None, duration: float = 10.0,
               seed: int = 0, episode: int = 0, subject_id: int | None = None,
               corruptions: dict[str, CorruptionSpec] | None = None, storage: str = "sqlite3",
               config_file: str | None = None, nodes: Sequence[str] | None = None,
               progress: bool = False) -> RecordSummary:
    """Record ``frames`` frames (default ``duration`` s) of a task's simulated scenario to a new
    bag at ``out`` (see the module docstring). Returns a :class:`RecordSummary`. On error the
    partial bag is removed."""
    t = get_task(task)
    sim = t.simulator(seed=int(seed), episode=int(episode), subject_id=subject_id, config_file=config_file)
    rate = float(sim.rate_hz)
    all_nodes = list(dict.fromkeys(split_stream_id(sid)[0] for sid in sim.stream_ids))
    use_nodes = list(dict.fromkeys(nodes)) if nodes else all_nodes
    if bad := [n for n in use_nodes if n not in all_nodes]:
        raise ValueError(f"unknown sensor node(s) {bad}; nodes of the {t.name} scenario: {all_nodes}")
    ids = [sid for sid in sim.stream_ids if split_stream_id(sid)[0] in use_nodes]
    for sid, spec in (corruptions or {}).items():
        if sid not in sim.stream_ids:
            raise ValueError(f"--corrupt {sid}: not a stream of the {t.name} scenario; streams: {sim.stream_ids}")
        sim.set_corruption(sid, spec)
    cams = {n: sim.cfg.node(n).camera for n in use_nodes} if sim.cfg is not None else None
    frames = int(frames) if frames is not None else int(round(duration * rate)) + 1
    if frames <= 0:
        raise ValueError(f"number of frames must be > 0, got {frames}")
    out = Path(out)
    start_ns = int(round(DEFAULT_START_TIME * 1e9))
    summary = RecordSummary(out, storage)
    t_wall = time.perf_counter()
    labels = t.sim_labels()
    with new_bag(out, storage) as writer:
        writer.set_custom_data("admn_ros.source", "sim")
        writer.set_custom_data("admn_ros.sim", f"scenario={t.name} {t.describe_sim(sim)} seed={seed} "
                                               f"episode={episode} rate_hz={rate:g} frames={frames}")
        if corruptions:
            writer.set_custom_data("admn_ros.corruptions",
                                   "; ".join(f"{k}={corruption_text(v)}" for k, v in corruptions.items()))
        conns = {topic: writer.add_connection(topic, typ, typestore=get_admn_typestore(),
                                              offered_qos_profiles=[_qos(rel, 10 if rel else 5)])
                 for topic, (typ, rel) in sim_topics(ids, cams is not None, t.name).items()}
        summary.per_topic = {topic: 0 for topic in conns}

        def put(topic: str, msg: Any, t_ns: int) -> None:
            writer.write(conns[topic], t_ns, msgs.serialize(msg))
            summary.per_topic[topic] += 1

        last_ns = start_ns
        for k in tqdm(range(frames), unit="frame", desc="record (sim)", disable=not progress, leave=False):
            last_ns = start_ns + int(round(k * 1e9 / rate))
            frame = sim.step()
            for sid in ids:  # as the sensor node: the QoI, then (unless dropped out) image and CameraInfo
                if (sf := frame.streams.get(sid)) is None:
                    continue
                node, mod = split_stream_id(sid)
                hdr = msgs.header(last_ns, topics.frame_id(node, mod))
                put("/" + topics.qoi_topic(sid), msgs.stream_qoi(hdr, sid, sf.corruption, sf.sigma, sf.severity),
                    last_ns)
                if sf.data is None:
                    continue
                put("/" + topics.image_topic(sid), msgs.image(sensor_array(mod, sf.data), MODALITIES[mod].encoding,
                                                              hdr), last_ns)
                if cams and (cam := topics.camera_info_topic(sid)):
                    info = cams[node]
                    put("/" + cam, msgs.camera_info(hdr, info.width, info.height, info.K), last_ns)
            truth = t.fill_truth(msgs.new_msg(t.truth.type, header=msgs.header(last_ns, t.frame_id)),
                                 t.sim_truth(frame), labels)
            put("/" + t.truth.topic, truth, last_ns)
            summary.frames += 1
    summary.duration_s = (last_ns - start_ns) * 1e-9
    return summary.finish(t_wall)


def default_live_topics(task: str | None = None) -> list[str]:
    """What ``--source sim`` writes for a task's scenario (absolute names): the sensor node's image,
    camera_info, QoI and ground-truth topics."""
    return list(sim_topics(StreamSet(get_task(task).sensor_nodes).ids, camera_info=True, task=task))


def _rclpy_qos_to_bag(q: Any) -> Qos:
    def dur(d: Any) -> QosTime:
        ns = int(d.nanoseconds)
        return QosTime(*_INFINITE) if ns >= 2**63 - 1 or ns < 0 else QosTime(*divmod(ns, 1_000_000_000))

    def enum(cls: Any, v: Any) -> Any:
        return cls.__members__.get(v.name.upper(), cls.UNKNOWN)

    return Qos(enum(QosHistory, q.history), int(q.depth), enum(QosReliability, q.reliability),
               enum(QosDurability, q.durability), dur(q.deadline), dur(q.lifespan),
               enum(QosLiveliness, q.liveliness), dur(q.liveliness_lease_duration),
               bool(q.avoid_ros_namespace_conventions))


def record_live(out: str | Path, topics: Sequence[str], *, duration: float, storage: str = "sqlite3",
                wait: float = 5.0, progress: bool = False, log: Any = print) -> RecordSummary:
    """Record ``topics`` from the ROS graph for ``duration`` seconds (finite, > 0: :func:`main` checks
    it) or until Ctrl-C. Topics not on the graph after ``wait`` s are reported and skipped;
    ``RuntimeError`` (listing the graph) if none is."""
    from admn_ros.ros.convert import message_class
    from admn_ros.ros.env import isolated_env

    isolated_env()  # localhost discovery + our FastDDS profile; keeps ROS_DOMAIN_ID if set
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import ReliabilityPolicy

    from admn_ros.ros.qos import image_qos

    want = ["/" + t.strip().strip("/") for t in topics if t.strip().strip("/")]
    if not want:
        raise ValueError("no topics to record")
    out = Path(out)
    summary = RecordSummary(out, storage)
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx)
    node = None
    t_wall = time.perf_counter()
    try:
        node = rclpy.create_node("admn_bag_recorder", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            graph = dict(node.get_topic_names_and_types())
            found = {t: graph[t][0] for t in want if t in graph and graph[t]}
            if len(found) == len(want) or time.monotonic() >= deadline:
                break
            ex.spin_once(timeout_sec=0.1)
        if not found:
            raise RuntimeError(f"none of the topics {want} appeared within {wait:g} s on ROS_DOMAIN_ID="
                               f"{os.environ.get('ROS_DOMAIN_ID')}; the graph has: {sorted(graph)}")
        if missing := [t for t in want if t not in found]:
            log(f"[record] not on the graph after {wait:g} s, skipped: {missing}")
        ts = get_admn_typestore()
        with new_bag(out, storage) as writer:
            writer.set_custom_data("admn_ros.source", "live")
            conns: dict[str, Any] = {}
            subs = []
            for topic, typ in found.items():
                try:
                    name = normalize_type(typ)
                    if name not in ts.types:
                        raise TypestoreError(f"{name} is not a ROS 2 Kilted standard or admn_ros message type")
                    cls = message_class(name)
                except Exception as e:  # noqa: BLE001 - report and skip the topic
                    log(f"[record] skipping {topic} ({typ}): {e}")
                    continue
                infos = node.get_publishers_info_by_topic(topic)
                offered = [_rclpy_qos_to_bag(i.qos_profile) for i in infos]
                reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
                conns[topic] = writer.add_connection(topic, name, typestore=ts, offered_qos_profiles=offered)
                summary.per_topic[topic] = 0
                qos = image_qos("reliable" if reliable else "best_effort", 100)

                def cb(data: bytes, topic: str = topic) -> None:
                    writer.write(conns[topic], node.get_clock().now().nanoseconds, data)  # type: ignore[union-attr]
                    summary.per_topic[topic] += 1

                subs.append(node.create_subscription(cls, topic, cb, qos, raw=True))
            if not subs:
                raise RuntimeError(f"no recordable topic among {list(found)}")
            log(f"[record] recording {len(subs)} topics for {duration:g} s on ROS_DOMAIN_ID="
                f"{os.environ.get('ROS_DOMAIN_ID')} -> {out}")
            t0 = time.monotonic()
            first_ns = node.get_clock().now().nanoseconds
            committed = 0.0
            with tqdm(total=round(duration, 1), unit="s", desc="record (live)", disable=not progress,
                      leave=False, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s") as bar:
                try:
                    while (el := time.monotonic() - t0) < duration:
                        ex.spin_once(timeout_sec=min(0.05, max(0.0, duration - el)))
                        bar.n = round(min(el, duration), 1)
                        bar.refresh()
                        if storage == "sqlite3" and el >= committed + 1.0:
                            # rosbags writes a sqlite3 bag in one transaction until it is closed: commit each
                            # second, so that a crash or a power loss keeps all but the last second
                            writer.storage.conn.commit()  # type: ignore[union-attr]
                            committed = el
                except KeyboardInterrupt:  # Ctrl-C ends the recording early and keeps the bag, as ros2 bag record
                    log(f"[record] stopped by Ctrl-C after {time.monotonic() - t0:.1f} s")
            last_ns = node.get_clock().now().nanoseconds
            for s in subs:
                node.destroy_subscription(s)
        summary.duration_s = (last_ns - first_ns) * 1e-9
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    summary.frames = max((n for t, n in summary.per_topic.items() if t.endswith("image_raw")), default=0)
    return summary.finish(t_wall)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="admn-ros record", description=__doc__.split("\n\n")[0].replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="source sim writes exactly the sensor node's topics; source live "
                                       "subscribes over DDS (ROS_DOMAIN_ID must match the graph's).")
    p.add_argument("--source", choices=("sim", "live"), default="sim", help="where the data comes from (default sim)")
    p.add_argument("--out", required=True, help="output bag directory (must not exist)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3",
                   help="rosbag2 storage plugin (default sqlite3)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds to record (sim: bag time; live: wall time); default 10")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--scenario", choices=list(TASKS), default=DEFAULT_TASK,
                   help="the task whose simulated scenario is recorded: tracking (the GDTM-style network of "
                        "--config) or activity (a subject in front of node1, ground truth on /ground_truth/activity); "
                        "live: the scenario whose topics --topics defaults to; default %(default)s")
    g = p.add_argument_group("sim source")
    g.add_argument("--frames", type=int, default=None, help="number of frames (overrides --duration)")
    g.add_argument("--subject-id", type=int, default=None,
                   help="activity: the simulated subject (default 1000, a person no dataset trains on)")
    g.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    g.add_argument("--episode", type=int, default=0, help="episode index (default 0)")
    g.add_argument("--config", default=None, help="tracking: simulator config YAML (default: config/sensors.yaml)")
    g.add_argument("--nodes", nargs="+", default=None, help="sensor nodes to record (default: all)")
    g.add_argument("--corrupt", action="append", default=[], metavar="STREAM=SPEC",
                   help="corrupt a stream, repeatable, e.g. 'node1/rgb=gaussian:sigma=3.0,flicker:period=2:duty=0.5' "
                        "or 'node2/depth=dropout' (kinds: gaussian, low_light, motion_blur, frozen, clutter, dropout)")
    g2 = p.add_argument_group("live source")
    g2.add_argument("--topics", nargs="+", default=None,
                    help="topics to record (default: the sensor node's image, camera_info, QoI and "
                         "ground-truth topics, i.e. what --source sim writes for --scenario)")
    g2.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the topics to appear (default 5)")
    args = p.parse_args(argv)
    only = {"sim": ("frames", "subject_id", "seed", "episode", "config", "nodes", "corrupt"),
            "live": ("topics", "wait")}
    other = "live" if args.source == "sim" else "sim"
    refuse_unused(p, args, only[other], f"{other} source options, not for --source {args.source}")
    progress = not args.no_progress
    try:
        if not 0 < args.duration < math.inf:  # NaN too
            raise ValueError(f"--duration must be a finite number of seconds > 0, got {args.duration}")
        if args.source == "sim":
            corr = dict(parse_corrupt_arg(text) for text in args.corrupt)
            s = record_sim(args.out, task=args.scenario, frames=args.frames, duration=args.duration, seed=args.seed,
                           episode=args.episode, subject_id=args.subject_id, corruptions=corr, storage=args.storage,
                           config_file=args.config, nodes=args.nodes, progress=progress)
        else:
            s = record_live(args.out, args.topics or default_live_topics(args.scenario), duration=args.duration,
                            storage=args.storage, wait=args.wait, progress=progress)
    except (ValueError, FileExistsError, RuntimeError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"admn-ros record: error: {msg}", file=sys.stderr)
        return 2
    print(s.text())
    return 0
