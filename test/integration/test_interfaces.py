"""Our rosidl interfaces over real DDS between two processes: every field survives.

A subprocess (the venv's python) publishes LayerAllocation, StreamEmbeddings, StreamQoI
and ActivityLabel built by ``BUILD`` below; this test subscribes and compares every field
(recursively, NaN-aware) with the same construction done here.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros

# Executed both here and in the publisher process: the expected messages.
BUILD = r'''
import array
import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header
from admn_ros.msg import ActivityLabel, LayerAllocation, StreamEmbedding, StreamEmbeddings, StreamQoI
from admn_ros.core.streams import StreamSet, naive_allocation, DEPTH
from admn_ros.ros.convert import mask_to_allocation


def build():
    ss = StreamSet()
    hdr = Header(stamp=Time(sec=1234, nanosec=567_000_000), frame_id="map")
    noise = np.array([0.0, 0.25, float("nan"), 3.0, 0.5, 0.125, 1.0, 0.75, 2.0], np.float32)
    present = [True] * 9
    present[5] = False
    mask = naive_allocation(len(ss), 27)
    alloc = mask_to_allocation(mask, ss.ids, header=hdr, present=present, estimated_noise=noise,
                               controller="admn_L27", decision_ms=1.75)
    embs = StreamEmbeddings(header=hdr, allocation_controller="admn_L27")
    for i, sid in enumerate(["node1/rgb", "node1/depth"]):
        e = StreamEmbedding(header=hdr, stream_id=sid, depth=DEPTH,
                            active_blocks=mask[i].tolist(), backbone_ms=2.5 + i)
        e.embedding = array.array("f", (np.arange(64, dtype=np.float32) * 0.5 - i).tobytes())
        embs.embeddings.append(e)
    qoi = StreamQoI(header=hdr, stream_id="node2/depth", corruption="gaussian",
                    noise_sigma=0.375, severity=0.5)  # float32-exact values
    label = ActivityLabel(header=hdr, class_id=7, class_name="waving", confidence=0.875,
                          class_names=["waving", "walking", "sitting"],
                          scores=[0.875, 0.0625, 0.0625], window_frames=15)
    return {"alloc": alloc, "embs": embs, "qoi": qoi, "label": label}
'''

PUBLISHER = BUILD + r'''
import sys, time
import rclpy
from admn_ros.ros.qos import reliable_qos

rclpy.init()
node = rclpy.create_node("interfaces_publisher")
msgs = build()
pubs = {k: node.create_publisher(type(m), f"test_interfaces/{k}", reliable_qos()) for k, m in msgs.items()}
t_end = time.monotonic() + 20.0
while time.monotonic() < t_end and any(p.get_subscription_count() < 1 for p in pubs.values()):
    time.sleep(0.02)
print("matched", flush=True)
while time.monotonic() < t_end:           # keep publishing until the test kills us (bounded)
    for k, p in pubs.items():
        p.publish(msgs[k])
    time.sleep(0.1)
node.destroy_node()
rclpy.try_shutdown()
'''


def _compare(a, b, path: str = "") -> list[str]:
    """Differences between two messages / values, field by field (NaN == NaN)."""
    if hasattr(a, "get_fields_and_field_types"):
        assert type(a) is type(b), f"{path}: {type(a)} vs {type(b)}"
        out = []
        for f in a.get_fields_and_field_types():
            out += _compare(getattr(a, f), getattr(b, f), f"{path}.{f}" if path else f)
        return out
    if isinstance(a, (list, tuple)) or type(a).__name__ in ("array", "ndarray"):
        a, b = list(a), list(b)
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _compare(x, y, f"{path}[{i}]")
        return out
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_interfaces_round_trip_between_processes():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from admn_ros.ros.qos import reliable_qos

    ns: dict = {}
    exec(BUILD, ns)  # noqa: S102 - our own constant code, shared with the publisher
    expected = ns["build"]()
    assert not _compare(expected["alloc"], expected["alloc"])  # the comparer handles NaN

    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("interfaces_subscriber", context=ctx)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        got: dict = {}
        for k, m in expected.items():
            node.create_subscription(type(m), f"test_interfaces/{k}",
                                     lambda msg, k=k: got.setdefault(k, msg), reliable_qos())
        t_end = time.monotonic() + 20.0
        while len(got) < len(expected) and time.monotonic() < t_end and proc.poll() is None:
            ex.spin_once(timeout_sec=0.05)
        if len(got) < len(expected):
            proc.kill()
            _, err = proc.communicate(timeout=5)
            pytest.fail(f"received only {sorted(got)}; publisher stderr:\n{err.decode()[-2000:]}")
        for k in expected:
            diffs = _compare(expected[k], got[k], k)
            assert not diffs, "\n".join(diffs)
        # a few spot checks that the comparison looked at real content
        assert got["alloc"].stream_ids[4] == "node2/depth" and got["alloc"].stream_present[5] is False
        assert math.isnan(got["alloc"].estimated_noise[2])
        assert len(got["embs"].embeddings) == 2 and got["embs"].embeddings[1].embedding[3] == 0.5
        assert got["label"].class_names == ["waving", "walking", "sitting"]
        ex.shutdown()
        node.destroy_node()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        rclpy.try_shutdown(context=ctx)
