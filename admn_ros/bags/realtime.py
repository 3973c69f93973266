"""Real-time replay through the node graph, compared with offline replay (issue 5).

``admn-ros replay BAG --realtime --budget 27 --out DIR`` starts the tracking graph
without simulated sensors and with ``use_sim_time`` (the same specs as
``tracking.launch.py sim_sensors:=false use_sim_time:=true``), plays the bag with
``/clock`` (:mod:`admn_ros.bags.play`), records every published allocation and
target, then runs the same bag offline through the runtime and reports, per frame
stamp, whether the allocations are identical.

The nodes that synchronize the bag's images (controller, backbones, activity node) run
with the offline reader's ``slop``, ``timeout`` and ``queue_size``
(:attr:`~admn_ros.bags.reader.BagFrames.sync_parameters`), so both sides form the same frames.

``--task activity`` does the same with the activity graph (``activity.launch.py``'s
specs: ``activity_node`` alone) and its labels on ``admn/activity``, compared with
:class:`admn_ros.bags.activity_replay.ActivityPipeline` window by window: allocations
and labels per window stamp, and the accuracy of both against the bag's truth.
"""
from __future__ import annotations

import csv
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


#: graph nodes that synchronize the bag's image topics (they get the reader's sync parameters)
IMAGE_SYNC_NODES = ("controller_node", "backbone_node", "activity_node")


@dataclass
class RealtimeSummary:
    frames_offline: int
    allocations_realtime: int
    targets_realtime: int
    matched: int
    identical: int
    identical_fraction: float
    mean_error_cm_realtime: float
    mean_error_cm_offline: float
    latency_ms_p50: float
    latency_ms_p99: float
    play: str
    task: str = "tracking"
    #: activity: windows whose real-time label equals the offline one, of the matched windows
    labels_identical: int = 0
    accuracy_pct_realtime: float = float("nan")
    accuracy_pct_offline: float = float("nan")

    def text(self) -> str:
        what = "labels" if self.task == "activity" else "targets"
        unit = "windows" if self.task == "activity" else "frames"
        quality = (f"labels identical for {self.labels_identical}/{self.matched} matched windows\naccuracy: real time "
                   f"{self.accuracy_pct_realtime:.1f}%, offline {self.accuracy_pct_offline:.1f}%"
                   if self.task == "activity" else
                   f"mean error: real time {self.mean_error_cm_realtime:.1f} cm, offline "
                   f"{self.mean_error_cm_offline:.1f} cm")
        return (f"real time: {self.allocations_realtime} allocations, {self.targets_realtime} {what}; offline: "
                f"{self.frames_offline} {unit}\nallocations identical for {self.identical}/{self.matched} matched "
                f"{unit} ({100 * self.identical_fraction:.1f}%)\n{quality}; graph latency (bag time) p50 "
                f"{self.latency_ms_p50:.1f} ms, p99 {self.latency_ms_p99:.1f} ms\n{self.play}")


def _offline_masks(bag: Path, mapping: Any, budget: int, model_dir: str | None) -> tuple[dict, dict, dict]:
    from admn_ros.bags.pipeline import AdmnPipeline
    from admn_ros.bags.reader import BagFrames

    pipe = AdmnPipeline(mapping.stream_ids, budget, model_dir=model_dir, backend="torch")
    masks, means, gts = {}, {}, {}
    with BagFrames(bag, mapping) as frames:
        for f in frames:
            if not f.present.any():
                continue
            r = pipe.process(f.stamp, f.streams)
            masks[f.stamp_ns], means[f.stamp_ns] = r.mask, r.mean
            if f.gt_xy is not None:
                gts[f.stamp_ns] = np.asarray(f.gt_xy)
    return masks, means, gts


def _offline_activity(bag: Path, mapping: Any, budget: int, model_dir: str | None) -> tuple[dict, dict, dict]:
    """Per window stamp: allocation mask, label and true label (offline activity pipeline)."""
    from admn_ros.bags.activity_replay import ActivityPipeline
    from admn_ros.bags.reader import BagFrames

    pipe = ActivityPipeline(mapping.stream_ids, budget, model_dir=model_dir, backend="torch")
    masks, labels, gts = {}, {}, {}
    with BagFrames(bag, mapping) as frames:
        for f in frames:
            r = pipe.process(f.stamp_ns, f.streams)
            if r is None:
                continue
            masks[f.stamp_ns], labels[f.stamp_ns] = r.allocation.mask, r.class_name
            if f.gt_label is not None:
                gts[f.stamp_ns] = f.gt_label
    return masks, labels, gts


def realtime_replay(bag: str | Path, out_dir: str | Path, *, mapping: Any, budget: int,
                    model_dir: str | None = None, rate: float = 1.0, ready_timeout: float = 90.0,
                    drain_s: float = 3.0, log=print, task: str = "tracking") -> RealtimeSummary:
    """Play ``bag`` through the ``task``'s node graph and compare with offline replay (module docstring)."""
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped

    from admn_ros.bags.play import play
    from admn_ros.msg import ActivityLabel, LayerAllocation
    from admn_ros.ros import topics
    from admn_ros.ros.convert import stamp_to_ns
    from admn_ros.ros.env import isolated_env
    from admn_ros.ros.graph import ActivityGraphOptions, GraphOptions, activity_graph, tracking_graph
    from admn_ros.ros.qos import reliable_qos
    from admn_ros.ros.runner import GraphProcesses

    if task not in ("tracking", "activity"):
        raise ValueError(f"unknown task {task!r}; use tracking or activity")
    activity = task == "activity"
    bag, out = Path(bag), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(isolated_env(dict(os.environ)))
    os.environ.update(env)
    nodes = tuple(dict.fromkeys(s.split("/")[0] for s in mapping.stream_ids))
    if activity:
        specs = activity_graph(ActivityGraphOptions(budget=budget, use_sim_time=True, sim_sensors=False,
                                                    sensor_nodes=nodes, model_dir=model_dir or ""))
    else:
        specs = tracking_graph(GraphOptions(budget=budget, use_sim_time=True, sim_sensors=False, sensor_nodes=nodes,
                                            model_dir=model_dir or ""))
    from admn_ros.bags.reader import BagFrames

    with BagFrames(bag, mapping) as frames:
        sync = frames.sync_parameters
    for sp in specs:
        if sp.executable in IMAGE_SYNC_NODES:
            sp.parameters.update(sync)
    # Foreign topic names (e.g. realsense/zed) are remapped onto the graph's inputs.
    remaps = [(topics.image_topic(st.stream_id), st.topic) for st in mapping.streams
              if st.topic.lstrip("/") != topics.image_topic(st.stream_id)]
    for sp in specs:
        sp.remappings = list(sp.remappings) + remaps
    procs = GraphProcesses()
    allocs: dict[int, np.ndarray] = {}
    targets: dict[int, Any] = {}          # tracking: position; activity: label
    recv_bagtime: dict[int, int] = {}
    rclpy.init()
    node = rclpy.create_node("admn_realtime_replay")
    node.set_parameters([rclpy.parameter.Parameter("use_sim_time", value=True)])

    def on_alloc(m: Any) -> None:
        n = len(m.stream_ids)
        if n and m.depth:
            allocs[stamp_to_ns(m.header.stamp)] = np.asarray(m.active_blocks, bool).reshape(n, m.depth)

    def on_target(m: Any) -> None:
        k = stamp_to_ns(m.header.stamp)
        targets[k] = str(m.class_name) if activity else np.array([m.pose.pose.position.x, m.pose.pose.position.y])
        recv_bagtime[k] = node.get_clock().now().nanoseconds

    out_topic = topics.ACTIVITY if activity else topics.TARGET
    node.create_subscription(LayerAllocation, topics.ALLOCATION, on_alloc, reliable_qos(depth=100))
    node.create_subscription(ActivityLabel if activity else PoseWithCovarianceStamped, out_topic, on_target,
                             reliable_qos(depth=100))
    stop = threading.Event()
    spin = threading.Thread(target=lambda: [rclpy.spin_once(node, timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                            daemon=True)
    try:
        procs.start(specs, composed=False, env=env, quiet=True)
        spin.start()
        image_topics = ["/" + st.topic.lstrip("/") for st in mapping.streams]
        deadline = time.monotonic() + ready_timeout
        # tracking: controller + one backbone per image topic, fusion on targets; activity: the activity node
        subs_needed = 1 if activity else 2
        while time.monotonic() < deadline:
            if procs.dead():
                raise RuntimeError(f"graph process exited during start-up: {procs.dead()}")
            if (all(node.count_subscribers(t) >= subs_needed for t in image_topics)
                    and node.count_publishers(out_topic)):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"graph not ready after {ready_timeout:.0f} s (image topic subscribers: "
                               f"{[node.count_subscribers(t) for t in image_topics]})")
        log(f"[replay --realtime] graph ready (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}); playing {bag.name} "
            f"at rate {rate}")
        ps = play(bag, node, rate=rate, start_delay=1.0)
        time.sleep(drain_s)
    finally:
        stop.set()
        if spin.is_alive():
            spin.join(timeout=2.0)
        procs.stop()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    log("[replay --realtime] offline pass for comparison ...")
    masks, means, gts = (_offline_activity if activity else _offline_masks)(bag, mapping, budget, model_dir)
    matched = [k for k in masks if k in allocs]
    same = [k for k in matched if allocs[k].shape == masks[k].shape and np.array_equal(allocs[k], masks[k])]
    lat = [(recv_bagtime[k] - k) * 1e-6 for k in recv_bagtime]
    if activity:
        s = _activity_summary(out, masks, means, gts, allocs, targets, matched, same, lat, ps.text())
        (out / "realtime_summary.json").write_text(json.dumps(asdict(s), indent=2))
        return s
    err_rt = [100 * np.linalg.norm(targets[k] - gts[k]) for k in targets if k in gts]
    err_off = [100 * np.linalg.norm(means[k] - gts[k]) for k in means if k in gts]
    with open(out / "realtime_frames.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stamp_ns", "offline_blocks", "realtime_blocks", "identical", "realtime_x", "realtime_y",
                    "offline_x", "offline_y"])
        for k in sorted(masks):
            rt_m = allocs.get(k)
            w.writerow([k, int(masks[k].sum()), "" if rt_m is None else int(rt_m.sum()),
                        "" if rt_m is None else int(np.array_equal(rt_m, masks[k])),
                        *(targets[k] if k in targets else ("", "")), *means[k]])
    s = RealtimeSummary(frames_offline=len(masks), allocations_realtime=len(allocs), targets_realtime=len(targets),
                        matched=len(matched), identical=len(same),
                        identical_fraction=len(same) / max(len(matched), 1),
                        mean_error_cm_realtime=float(np.mean(err_rt)) if err_rt else float("nan"),
                        mean_error_cm_offline=float(np.mean(err_off)) if err_off else float("nan"),
                        latency_ms_p50=float(np.percentile(lat, 50)) if lat else float("nan"),
                        latency_ms_p99=float(np.percentile(lat, 99)) if lat else float("nan"), play=ps.text())
    (out / "realtime_summary.json").write_text(json.dumps(asdict(s), indent=2))
    return s


def _activity_summary(out: Path, masks: dict, labels: dict, gts: dict, allocs: dict, rt_labels: dict,
                      matched: list, same: list, lat: list, play_text: str) -> RealtimeSummary:
    """Write ``realtime_windows.csv`` and summarise an activity real-time replay."""
    with open(out / "realtime_windows.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stamp_ns", "gt_label", "offline_label", "realtime_label", "offline_blocks", "realtime_blocks",
                    "allocation_identical"])
        for k in sorted(masks):
            rt_m = allocs.get(k)
            w.writerow([k, gts.get(k, ""), labels[k], rt_labels.get(k, ""), int(masks[k].sum()),
                        "" if rt_m is None else int(rt_m.sum()),
                        "" if rt_m is None else int(np.array_equal(rt_m, masks[k]))])
    both = [k for k in labels if k in rt_labels]
    acc_rt = [rt_labels[k] == gts[k] for k in rt_labels if k in gts]
    acc_off = [labels[k] == gts[k] for k in labels if k in gts]
    return RealtimeSummary(
        frames_offline=len(masks), allocations_realtime=len(allocs), targets_realtime=len(rt_labels),
        matched=len(matched), identical=len(same), identical_fraction=len(same) / max(len(matched), 1),
        mean_error_cm_realtime=float("nan"), mean_error_cm_offline=float("nan"),
        latency_ms_p50=float(np.percentile(lat, 50)) if lat else float("nan"),
        latency_ms_p99=float(np.percentile(lat, 99)) if lat else float("nan"), play=play_text, task="activity",
        labels_identical=sum(rt_labels[k] == labels[k] for k in both),
        accuracy_pct_realtime=100.0 * float(np.mean(acc_rt)) if acc_rt else float("nan"),
        accuracy_pct_offline=100.0 * float(np.mean(acc_off)) if acc_off else float("nan"))
