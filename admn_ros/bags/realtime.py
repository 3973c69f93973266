"""``admn-ros replay BAG --realtime``: play the bag with ``/clock`` through the task's node graph
(``use_sim_time``, no simulated sensors) and compare every published allocation and estimate with offline
replay. The nodes get the offline reader's sync parameters, reliable image subscriptions and the ``torch``
backend, so only timing differs: on a loaded machine play slower (``--rate 0.5``). The graph latency is measured
on the bag's clock (its log time, which ``/clock`` plays), from a frame's last input message to its estimate, to
one clock tick: ``--rate`` times the wall-clock latency. Header stamps, which may come from another clock, only
match outputs.
"""
from __future__ import annotations

import csv
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from admn_ros.bags.pipeline import RuntimePipeline
from admn_ros.bags.play import check_rate, play
from admn_ros.bags.reader import BagFrames
from admn_ros.bags.replay import json_text, task_frames
from admn_ros.core.health import unhealthy
from admn_ros.core.sync import stamp_to_ns
from admn_ros.core.tasks import Task, get_task
from admn_ros.ros import topics
from admn_ros.ros.convert import message_class
from admn_ros.ros.env import isolated_env
from admn_ros.ros.graph import GRAPHS, GraphOptions, build_graph
from admn_ros.ros.runner import GraphProcesses

#: graph nodes that synchronize the bag's image topics (they get the reader's sync parameters)
IMAGE_SYNC_NODES = ("controller_node", "backbone_node", "activity_node")
#: depth of their reliable image subscriptions: a node that falls behind for seconds gets every frame
REPLAY_QOS_DEPTH = 100
#: s to wait for the graph's subscriptions, and for its last outputs after the bag was played
READY_TIMEOUT, DRAIN_S = 90.0, 3.0


@dataclass
class RealtimeSummary:
    task: str
    outputs_offline: int
    allocations_realtime: int
    estimates_realtime: int
    matched: int                  # output stamps with an offline and a real-time allocation
    identical: int                # ... whose allocations are identical
    identical_fraction: float
    estimates_identical: int      # matched stamps whose estimates agree (Task.same)
    metric_realtime: float        # the task's metric against the truth (error cm, accuracy %)
    metric_offline: float
    latency_ms_p50: float
    latency_ms_p99: float
    play: str

    def text(self) -> str:
        t = get_task(self.task)
        m, unit = t.metric, t.unit
        return (f"real time: {self.allocations_realtime} allocations, {self.estimates_realtime} estimates; offline: "
                f"{self.outputs_offline} {unit}s\nallocations identical for {self.identical}/{self.matched} matched "
                f"{unit}s ({100 * self.identical_fraction:.1f}%), estimates for {self.estimates_identical}\n"
                f"{m.name}: real time {m.fmt(self.metric_realtime)}, offline {m.fmt(self.metric_offline)}; "
                f"graph latency (bag clock, last input to estimate) p50 {self.latency_ms_p50:.1f} ms, "
                f"p99 {self.latency_ms_p99:.1f} ms\n"
                f"{self.play}")


def _offline(task: Task, frames: BagFrames, budget: int, model_dir: str | None) -> tuple[dict, dict, dict, dict]:
    """Per output stamp: allocation mask, estimate and truth of the offline pipeline, and the log time of its
    frame's last input."""
    pipe = RuntimePipeline(frames.stream_ids, budget, model_dir=model_dir, backend="torch", task=task.name)
    masks, ests, truths, inputs_ns = {}, {}, {}, {}
    for f in frames:
        pipe.window.forget(unhealthy(f.status))
        if (r := pipe.process(f.stamp_ns, f.streams)) is None:
            continue
        masks[f.stamp_ns], ests[f.stamp_ns], inputs_ns[f.stamp_ns] = r.allocation.mask, r.estimate, f.log_ns
        if (truth := task.bag_truth(f)) is not None:
            truths[f.stamp_ns] = truth
    return masks, ests, truths, inputs_ns


def _mean(task: Task, ests: dict, truths: dict) -> float:
    s = [task.score(ests[k], truths[k]) for k in ests if k in truths]
    return float(np.mean(s)) if s else float("nan")


def realtime_replay(bag: str | Path, out_dir: str | Path, *, mapping: Any, budget: int,
                    model_dir: str | None = None, rate: float = 1.0, log=print, task: str | None = None
                    ) -> RealtimeSummary:
    """Play ``bag`` through the ``task``'s node graph and compare with offline replay (module docstring)."""
    check_rate(rate)
    import rclpy

    from admn_ros.msg import LayerAllocation
    from admn_ros.ros.qos import reliable_qos

    t = get_task(task)
    bag, out = Path(bag), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(isolated_env())  # also into os.environ, for this process's node
    nodes = tuple(dict.fromkeys(s.split("/")[0] for s in mapping.stream_ids))
    specs = build_graph(GraphOptions(task=t.name, budget=budget, use_sim_time=True, sim_sensors=False,
                                     sensor_nodes=nodes, model_dir=model_dir or ""))
    log("[replay --realtime] offline pass for comparison ...")
    with task_frames(t, bag, mapping) as frames:
        sync = frames.sync_parameters
        masks, ests, truths, inputs_ns = _offline(t, frames, budget, model_dir)
    # foreign topic names (e.g. realsense/zed) are remapped onto the graph's inputs
    remaps = [(topics.image_topic(st.stream_id), st.topic) for st in mapping.streams
              if st.topic.lstrip("/") != topics.image_topic(st.stream_id)]
    for sp in specs:
        sp.remappings = list(sp.remappings) + remaps
        if sp.executable in IMAGE_SYNC_NODES:  # every played message reaches the node, as offline
            sp.parameters.update(sync, image_reliability="reliable", qos_depth=REPLAY_QOS_DEPTH)
        if "model_dir" in sp.parameters:    # the offline pass's backend: the same numbers on both sides
            sp.parameters["backend"] = "torch"
    procs = GraphProcesses()
    allocs: dict[int, np.ndarray] = {}
    rt_ests: dict[int, dict[str, Any]] = {}
    recv_ns: dict[int, int] = {}   # output stamp -> /clock when the estimate arrived
    rclpy.init()
    node = rclpy.create_node("admn_realtime_replay")
    node.set_parameters([rclpy.parameter.Parameter("use_sim_time", value=True)])

    def on_alloc(m: Any) -> None:
        n = len(m.stream_ids)
        if n and m.depth:
            allocs[stamp_to_ns(m.header.stamp)] = np.asarray(m.active_blocks, bool).reshape(n, m.depth)

    def on_estimate(m: Any) -> None:
        k = stamp_to_ns(m.header.stamp)
        rt_ests[k] = t.read_output(m)
        recv_ns[k] = node.get_clock().now().nanoseconds

    node.create_subscription(LayerAllocation, topics.ALLOCATION, on_alloc, reliable_qos(depth=100))
    node.create_subscription(message_class(t.output.type), t.output.topic, on_estimate, reliable_qos(depth=100))
    stop = threading.Event()
    spin = threading.Thread(target=lambda: [rclpy.spin_once(node, timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                            daemon=True)
    try:
        procs.start(specs, composed=False, env=env, quiet=True)
        spin.start()
        image_topics = ["/" + st.topic.lstrip("/") for st in mapping.streams]
        readers = GRAPHS[t.graph][1]   # nodes of the graph that read each image topic
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if procs.dead():
                raise RuntimeError(f"graph process exited during start-up: {procs.dead()}")
            if (all(node.count_subscribers(x) >= readers for x in image_topics)
                    and node.count_publishers(t.output.topic)):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"graph not ready after {READY_TIMEOUT:.0f} s (image topic subscribers: "
                               f"{[node.count_subscribers(x) for x in image_topics]})")
        log(f"[replay --realtime] graph ready (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}); playing {bag.name} "
            f"at rate {rate}")
        ps = play(bag, node, rate=rate, start_delay=1.0)
        time.sleep(DRAIN_S)
    finally:
        stop.set()
        if spin.is_alive():
            spin.join(timeout=2.0)
        procs.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    matched = [k for k in masks if k in allocs]
    same = [k for k in matched if allocs[k].shape == masks[k].shape and np.array_equal(allocs[k], masks[k])]
    lat = [(recv_ns[k] - inputs_ns[k]) * 1e-6 for k in recv_ns if k in inputs_ns]
    with open(out / f"realtime_{t.csv_name}", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stamp_ns", "offline_estimate", "offline_vs_truth", "realtime_estimate", "offline_blocks",
                    "realtime_blocks", "allocation_identical", "estimate_identical"])
        for k in sorted(masks):
            rt_m, rt_e = allocs.get(k), rt_ests.get(k)
            w.writerow([k, t.text(ests[k]), "" if k not in truths else t.text(ests[k], truths[k]),
                        "" if rt_e is None else t.text(rt_e), int(masks[k].sum()),
                        "" if rt_m is None else int(rt_m.sum()),
                        "" if rt_m is None else int(np.array_equal(rt_m, masks[k])),
                        "" if rt_e is None else int(t.same(rt_e, ests[k]))])
    s = RealtimeSummary(
        task=t.name, outputs_offline=len(masks), allocations_realtime=len(allocs), estimates_realtime=len(rt_ests),
        matched=len(matched), identical=len(same), identical_fraction=len(same) / max(len(matched), 1),
        estimates_identical=sum(t.same(rt_ests[k], ests[k]) for k in matched if k in rt_ests),
        metric_realtime=_mean(t, rt_ests, truths), metric_offline=_mean(t, ests, truths),
        latency_ms_p50=float(np.percentile(lat, 50)) if lat else float("nan"),
        latency_ms_p99=float(np.percentile(lat, 99)) if lat else float("nan"), play=ps.text())
    (out / "realtime_summary.json").write_text(json_text(asdict(s)))
    return s
