"""Fuzz the controller and a backbone node over real DDS with >= 1000 malformed messages.

Graph: sensor_node (valid frames at 10 Hz) + controller_node + backbone_node1, each its own
process. The test publishes, interleaved with the valid frames, images with random bad
encodings, empty data, sizes out of range, inconsistent step/data length, NaN/inf radar,
zero / far-future stamps, and malformed LayerAllocations, plus repeated and out-of-order
(old) frames, which go to the synchronizer as with message_filters. The nodes must stay
alive, keep publishing for the valid frames, count the rejections by reason on
/diagnostics and show the repeated / old frames in the synchronizer's counters (left
unmatched, or fired late and dropped as stale).
"""
from __future__ import annotations

import array
import copy
import time
from collections import defaultdict, deque

import numpy as np
import pytest

from fixtures import write_random_models
from admn_ros.core.streams import StreamSet

pytestmark = pytest.mark.ros

N_FUZZ = 1200
RATE_FUZZ = 200.0   # malformed messages per second
KINDS = ("bad_encoding", "empty", "bad_size", "bad_layout", "non_finite", "zero_stamp", "future_stamp",
         "duplicate", "out_of_order", "bad_allocation")


def _image(encoding: str, h: int, w: int, data: bytes, stamp, step: int | None = None):
    from sensor_msgs.msg import Image

    m = Image()
    m.header.stamp = stamp
    m.height, m.width, m.encoding = h, w, encoding
    bpp = 3 if encoding in ("rgb8", "bgr8") else (4 if encoding == "32FC1" else 2)
    m.step = step if step is not None else w * bpp
    m.data = array.array("B", data)
    return m


def make_fuzz(kind: str, sid: str, rng: np.random.Generator, now, recent: dict[str, deque]):
    """One malformed message for ``sid`` (an Image) or, for ``bad_allocation``, a LayerAllocation."""
    from builtin_interfaces.msg import Time

    from admn_ros.msg import LayerAllocation

    mod = sid.split("/")[1]
    if kind == "bad_encoding":   # encodings this stream cannot use (STREAM_FORMATS lists those it can)
        from admn_ros.core.image_convert import STREAM_FORMATS

        usable = STREAM_FORMATS[mod]["image"]
        enc = str(rng.choice([e for e in ("yuv422", "bayer_rggb8", "", "8UC4", "mono16", "16UC1", "rgb8", "mono8",
                                          "bgra8", "32FC1", "bgr8", "64FC1", "\x00weird") if e not in usable]))
        return _image(enc, 16, 16, bytes(16 * 16 * 4), now, step=16 * 4)
    if kind == "empty":
        h, w = [(0, 16), (16, 0), (0, 0), (16, 16)][int(rng.integers(4))]
        enc = {"rgb": "rgb8", "depth": "16UC1", "radar": "32FC1"}[mod]
        return _image(enc, h, w, b"", now, step=0)
    enc = {"rgb": "rgb8", "depth": "16UC1", "radar": "32FC1"}[mod]
    bpp = {"rgb8": 3, "16UC1": 2, "32FC1": 4}[enc]
    if kind == "bad_size":
        h, w = [(2, 3), (1, 64), (64, 4), (9000, 1)][int(rng.integers(4))]
        return _image(enc, h, w, bytes(h * w * bpp), now)
    if kind == "bad_layout":
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        if rng.random() < 0.5:
            return _image(enc, h, w, bytes(h * w * bpp - int(rng.integers(1, 50))), now)   # short data
        return _image(enc, h, w, bytes(h * w * bpp), now, step=w * bpp - 1)              # step too small
    if kind == "non_finite":
        a = rng.random((32, 32)).astype(np.float32)
        a[rng.integers(0, 32, 5), rng.integers(0, 32, 5)] = rng.choice([np.nan, np.inf, -np.inf])
        return _image("32FC1", 32, 32, a.tobytes(), now)
    if kind in ("zero_stamp", "future_stamp"):
        a = rng.random((16, 16)).astype(np.float32)
        m = _image("32FC1", 16, 16, a.tobytes(), now)
        m.header.stamp = Time() if kind == "zero_stamp" else Time(sec=now.sec + 100, nanosec=now.nanosec)
        return m
    if kind in ("duplicate", "out_of_order"):
        q = recent.get(sid)
        if not q or len(q) < 4:
            return None
        return copy.deepcopy(q[-1] if kind == "duplicate" else q[0])
    # bad_allocation
    a = LayerAllocation()
    a.header.stamp = now
    ids = StreamSet().ids
    choice = int(rng.integers(4))
    a.depth = 0 if choice == 0 else 12
    a.stream_ids = ids if choice != 1 else ["node9/rgb"]
    a.active_blocks = [True] * (len(ids) * 12 - (5 if choice == 2 else 0))
    if choice == 3:
        a.stream_ids = [s for s in ids if not s.startswith("node1/")]
        a.active_blocks = [True] * (len(a.stream_ids) * 12)
    return a


def test_fuzz_controller_and_backbone_stay_alive_and_count_rejections(tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from admn_ros.msg import LayerAllocation, StreamEmbeddings
    from admn_ros.ros import topics
    from admn_ros.ros.qos import reliable_qos, sensor_qos
    from test_graph import start_graph

    write_random_models(tmp_path, seed=4, universal=True, budgets=())
    procs = start_graph(tmp_path, nodes=("sensor_node", "controller_node", "backbone_node1"))
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("fuzzer", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    allocs: list[float] = []
    embs: list[float] = []
    diag: dict[str, dict[str, str]] = {}
    recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=6))
    sids = StreamSet().ids
    fuzz_sids = [s for s in sids if s.startswith("node1/")] + ["node2/radar", "node3/rgb"]
    node.create_subscription(LayerAllocation, topics.ALLOCATION, lambda m: allocs.append(time.monotonic()),
                             reliable_qos(50))
    node.create_subscription(StreamEmbeddings, topics.embeddings_topic("node1"),
                             lambda m: embs.append(time.monotonic()), reliable_qos(50))

    def on_diag(msg):
        for st in msg.status:
            diag[st.name] = {kv.key: kv.value for kv in st.values}

    node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diag, reliable_qos(50))
    def remember(sid, m):  # real sensor frames only (our own fuzz messages come back too)
        if m.height >= 64 and m.width >= 64 and len(m.data) == m.height * m.step and m.header.stamp.sec > 0:
            recent[sid].append(m)

    for sid in fuzz_sids:
        node.create_subscription(Image, topics.image_topic(sid), lambda m, s=sid: remember(s, m), sensor_qos(10))
    pubs = {sid: node.create_publisher(Image, topics.image_topic(sid), sensor_qos(50)) for sid in fuzz_sids}
    apub = node.create_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos(50))

    def spin_until(cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            if procs.dead():
                raise AssertionError(f"process died: {procs.dead()}")
            ex.spin_once(timeout_sec=0.01)
        return cond()

    try:
        assert spin_until(lambda: len(allocs) >= 5 and len(embs) >= 5, 45.0), \
            f"graph not running: {len(allocs)} allocations, {len(embs)} embeddings"
        want = {sid: (2 if sid.startswith("node1/") else 1) + 1 for sid in fuzz_sids}  # nodes + our recorder
        assert spin_until(lambda: all(pubs[s].get_subscription_count() >= want[s] - 1 for s in fuzz_sids)
                          and apub.get_subscription_count() >= 2, 10.0), "fuzz publishers not matched"
        rng = np.random.default_rng(0)
        sent: dict[str, int] = defaultdict(int)
        a0, e0 = len(allocs), len(embs)
        t0 = time.monotonic()
        k = 0
        while k < N_FUZZ and time.monotonic() - t0 < 20.0:
            kind = KINDS[k % len(KINDS)]
            sid = fuzz_sids[int(rng.integers(len(fuzz_sids)))] if kind != "non_finite" else \
                str(rng.choice(["node1/radar", "node2/radar"]))
            now = node.get_clock().now().to_msg()
            msg = make_fuzz(kind, sid, rng, now, recent)
            if msg is None:
                ex.spin_once(timeout_sec=0.005)
                continue
            (apub if kind == "bad_allocation" else pubs[sid]).publish(msg)
            sent[kind] += 1
            k += 1
            due = t0 + k / RATE_FUZZ            # pace the fuzzing; keep recording real frames meanwhile
            while time.monotonic() < due:
                ex.spin_once(timeout_sec=max(0.0, due - time.monotonic()))
        fuzz_s = time.monotonic() - t0
        assert k >= 1000, f"only {k} fuzz messages in {fuzz_s:.1f} s"
        a1, e1 = len(allocs), len(embs)
        # valid frames kept flowing during the fuzzing (10 Hz sensors)
        assert a1 - a0 >= 0.5 * 10 * fuzz_s, f"{a1 - a0} allocations during {fuzz_s:.1f} s of fuzzing"
        assert e1 - e0 >= 0.4 * 10 * fuzz_s, f"{e1 - e0} node1 embeddings during {fuzz_s:.1f} s of fuzzing"
        # ... and after it
        assert spin_until(lambda: len(allocs) >= a1 + 10 and len(embs) >= e1 + 8, 5.0)
        assert not procs.dead()
        # diagnostics count the rejections by reason (wait for a report after the fuzzing)
        diag.clear()
        assert spin_until(lambda: any(n.endswith("controller_node: allocation") for n in diag)
                          and any(n.endswith("backbone_node1: backbone") for n in diag), 5.0)

        def rejected(prefix: str) -> dict[str, int]:
            tot: dict[str, int] = defaultdict(int)
            for name, vals in diag.items():
                if name.startswith(prefix) and ": input " in name:
                    for key, v in vals.items():
                        if key.startswith("rejected."):
                            tot[key[len("rejected."):]] += int(v)
            return tot

        c = rejected("/controller_node")
        b = rejected("/backbone_node1")
        img_sent = sum(v for kk, v in sent.items() if kk not in ("bad_allocation", "duplicate", "out_of_order"))
        print(f"sent {dict(sent)}\ncontroller rejected {dict(c)}\nbackbone_node1 rejected {dict(b)}")
        for reason in ("bad_encoding", "empty", "bad_size", "bad_layout", "non_finite", "zero_stamp",
                       "future_stamp"):
            assert c.get(reason, 0) > 0, f"controller counted no {reason}: {dict(c)}"
        summary = next(v for name, v in diag.items() if name.endswith("controller_node: allocation"))
        assert int(summary["sync_discarded"]) + int(summary["sync_stale_sets"]) > 0, summary
        assert summary["sync_impl"] in ("admn_ros", "message_filters")
        assert b.get("bad_allocation", 0) > 0 and b.get("bad_encoding", 0) > 0
        assert sum(c.values()) >= 0.5 * img_sent, f"controller counted {sum(c.values())} of {img_sent} bad images"
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        procs.stop()
