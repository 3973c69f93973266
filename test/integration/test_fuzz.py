"""Fuzz the live graph with >= 10 000 malformed messages per input type (fixed seed).

Graph: sensor_node (valid frames at 10 Hz) + controller_node + backbone_node1, each its own
process. Four input types are fuzzed, interleaved: the controller's rgb, depth and radar
Image inputs (a third of them on node1's topics, which backbone_node1 reads too, so its
Image inputs get 10 000 together; the rest on node2's) and the backbones' LayerAllocation
input. Every malformed message fails exactly one check:

* images: an encoding the stream cannot use; a side outside [min_image_side, max_image_side];
  huge dimensions (up to 2**32 - 1) with a few bytes of data; step smaller than a row; data
  length != height * step (also at 8192 x 8192, which must fail before anything that size is
  allocated); empty data; NaN/inf radar; zero stamp; a stamp far in the future; a stamp in
  the past (out of order, within ``max_jump_s``) and the newest frame's stamp again
  (duplicate). NaN/inf in 32FC1 depth is valid (REP-118: no return): accepted, not rejected.
  Past and repeated image stamps are no rejections either: as with message_filters they go
  to the synchronizer, which leaves them unmatched or drops their set as stale;
* LayerAllocations: depth 0, a depth other than the model's, an unknown stream, no row for
  node1, active_blocks / stream_present / estimated_noise of the wrong length, and zero,
  future, duplicate and out-of-order stamps.

Pacing: at most ``RATE_FUZZ`` messages/s, and the fuzzer waits while a node's rejections on
/diagnostics lag what it was sent by more than ``MAX_BACKLOG`` (so the run takes as long as
the nodes need on the machine at hand); the nodes' image queues are ``QOS_DEPTH`` deep, so a
scheduling stall of a loaded machine is no best-effort loss.

Pass: no process dies; allocations and node1 embeddings keep flowing during and after the
fuzzing with strictly increasing stamps (no old or repeated frame is ever published); per
node, input and reason, ``rejected.<reason>`` on /diagnostics is at most what was sent of
the kinds with that reason and at least ``COUNTED_FRACTION`` of it, and nothing else is
counted; the synchronizers' unmatched + stale counters grew; the nodes' peak RSS grew by
less than ``RSS_GROWTH_MB``. Prints a table of sent and counted messages per type and reason.

Break tried: the controller not counting ``bad_size`` (its ``reject`` returning early for that
reason) fails the lower bound of bad_size on all six of the controller's fuzzed inputs.
"""
from __future__ import annotations

import array
import copy
import time
from collections import defaultdict, deque

import numpy as np
import pytest

from fixtures import write_random_models

pytestmark = pytest.mark.ros

N_PER_TYPE = 10_000         # malformed messages per input type
RATE_FUZZ = 300.0            # malformed messages per second at most, all types together
MAX_BACKLOG = 200            # sent minus counted rejections per node above which the fuzzing waits
MAX_FUZZ_S = 400.0           # bound on the fuzzing loop
MIN_ALLOCATIONS = 0.5        # allocations during the fuzzing per 10 Hz frame (measured 0.9-1.0)
MIN_EMBEDDINGS = 0.05        # node1 embeddings during the fuzzing per 10 Hz frame (measured 0.95-0.97; 0.12 once at load 16)
COUNTED_FRACTION = 0.9       # of the messages sent with a reason, at least this many are counted
PAIR_FRACTION = 0.75         # each of duplicate / out-of-order allocation stamps (their sum: COUNTED_FRACTION)
RSS_GROWTH_MB = 150.0
QOS_DEPTH = 100             # image queue of the nodes: a stall of this loaded machine is no best-effort loss
FUZZ_TAG = "fuzz"            # controller field of our own LayerAllocations (the recorder skips them)
NODE1_EVERY = 3              # a third of the images go to node1's inputs, the rest to node2's
MODS = ("rgb", "depth", "radar")
TYPES = MODS + ("allocation",)
SYNC = "synchronizer"        # past / repeated image stamps: no rejection, the synchronizer's counters
ACCEPTED = "accepted"        # NaN/inf 32FC1 depth (REP-118)
ENCODING = {"rgb": ("rgb8", 3), "depth": ("16UC1", 2), "radar": ("32FC1", 4)}
IMAGE_REASON = {"bad_encoding": "bad_encoding", "bad_size": "bad_size", "huge": "bad_size",
                "bad_step": "bad_layout", "bad_length": "bad_layout", "empty": "empty",
                "non_finite": "non_finite", "zero_stamp": "zero_stamp", "future_stamp": "future_stamp",
                "past_stamp": SYNC, "duplicate_stamp": SYNC}
ALLOCATION_REASON = {"depth_zero": "bad_allocation", "wrong_depth": "bad_allocation",
                     "unknown_stream": "bad_allocation", "no_node1_row": "bad_allocation",
                     "blocks_length": "bad_allocation", "present_length": "bad_allocation",
                     "noise_length": "bad_allocation", "zero_stamp": "zero_stamp",
                     "future_stamp": "future_stamp", "duplicate_stamp": "duplicate_stamp",
                     "out_of_order": "out_of_order"}


def input_of(typ: str, round_: int) -> str:
    """The input that gets round ``round_`` of a type's kinds: images every ``NODE1_EVERY``-th round
    on node1 (controller and backbone_node1), else on node2 (controller only)."""
    if typ == "allocation":
        return "admn/allocation"
    return f"{'node1' if round_ % NODE1_EVERY == 0 else 'node2'}/{typ}"


def seen_by(node: str, inp: str) -> bool:
    """Whether ``node`` (controller_node or backbone_node1) subscribes to input ``inp``."""
    if inp == "admn/allocation":
        return node == "backbone_node1"
    return inp.startswith("node1/") or node == "controller_node"


def type_of(inp: str) -> str:
    return "allocation" if inp == "admn/allocation" else inp.split("/")[-1]


def kinds_of(typ: str) -> tuple[str, ...]:
    if typ == "allocation":
        return tuple(ALLOCATION_REASON)
    return tuple(k for k in IMAGE_REASON if not (typ == "rgb" and k == "non_finite"))


def reason_of(typ: str, kind: str) -> str:
    if typ == "allocation":
        return ALLOCATION_REASON[kind]
    if typ == "depth" and kind == "non_finite":
        return ACCEPTED
    return IMAGE_REASON[kind]


def _image(encoding: str, h: int, w: int, data: bytes, stamp, step: int):
    from sensor_msgs.msg import Image

    m = Image()
    m.header.stamp = stamp
    m.height, m.width, m.encoding, m.step = h, w, encoding, step
    m.data = array.array("B", data)
    return m


def make_image(mod: str, kind: str, rng: np.random.Generator, now, recent: deque):
    """One malformed Image for a ``mod`` stream; ``recent``: the last real LayerAllocations
    (their stamps are the stamps of real frames)."""
    from builtin_interfaces.msg import Time

    enc, bpp = ENCODING[mod]
    if kind == "bad_encoding":   # encodings this stream cannot use (STREAM_FORMATS lists those it can)
        from admn_ros.core.image_convert import STREAM_FORMATS

        usable = STREAM_FORMATS[mod]["image"]
        bad = str(rng.choice([e for e in ("yuv422", "bayer_rggb8", "", "8UC4", "mono16", "16UC1", "rgb8", "mono8",
                                          "bgra8", "32FC1", "bgr8", "64FC1", "\x00weird", "8UC99") if e not in usable]))
        return _image(bad, 16, 16, bytes(16 * 16 * 4), now, 16 * 4)
    if kind == "bad_size":       # consistent layout, a side outside [8, 8192]
        h, w = [(2, 3), (1, 64), (64, 4), (9000, 1), (7, 7)][int(rng.integers(5))]
        return _image(enc, h, w, bytes(h * w * bpp), now, w * bpp)
    if kind == "huge":           # sides far beyond 8192 with a few bytes: rejected before any allocation
        h, w = [(100_000, 100_000), (2**32 - 1, 16), (16, 2**32 - 1), (65_536, 65_536)][int(rng.integers(4))]
        return _image(enc, h, w, bytes(int(rng.integers(1, 64))), now, w * bpp)
    if kind == "bad_step":       # step smaller than a row, data consistent with it
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        step = w * bpp - int(rng.integers(1, bpp + 1))
        return _image(enc, h, w, bytes(h * step), now, step)
    if kind == "bad_length":     # len(data) != height * step; also at the largest accepted size
        if rng.random() < 0.25:
            return _image(enc, 8192, 8192, bytes(64), now, 8192 * bpp)
        h, w = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        n = h * w * bpp + int(rng.choice([-1, 1])) * int(rng.integers(1, 50))
        return _image(enc, h, w, bytes(n), now, w * bpp)
    if kind == "empty":
        h, w = [(0, 16), (16, 0), (0, 0), (16, 16)][int(rng.integers(4))]
        return _image(enc, h, w, b"", now, w * bpp)
    if kind == "non_finite":     # radar: rejected; 32FC1 depth: valid (REP-118 no return)
        a = (rng.random((32, 32)) * 4.0 + 0.5).astype(np.float32)
        a.flat[rng.integers(0, a.size, int(rng.integers(1, 20)))] = rng.choice([np.nan, np.inf, -np.inf])
        return _image("32FC1", 32, 32, a.tobytes(), now, 32 * 4)
    # a valid body with a bad stamp
    a = rng.integers(1, 255 if mod == "rgb" else 4000, size=(16, 16, 3) if mod == "rgb" else (16, 16))
    a = a.astype({"rgb": np.uint8, "depth": np.uint16, "radar": np.float32}[mod])
    if mod == "radar":
        a /= 4000.0
    m = _image(enc, 16, 16, a.tobytes(), now, 16 * bpp)
    if kind == "zero_stamp":
        m.header.stamp = Time()
    elif kind == "future_stamp":
        m.header.stamp = Time(sec=min(now.sec + int(rng.integers(3, 10**6)), 2**31 - 1), nanosec=now.nanosec)
    elif kind == "past_stamp":
        m.header.stamp = recent[-4].header.stamp
    elif kind == "duplicate_stamp":
        m.header.stamp = recent[-1].header.stamp
    else:
        raise ValueError(kind)
    return m


def make_allocation(kind: str, rng: np.random.Generator, now, recent: deque):
    """One malformed LayerAllocation: a real one (``recent[-1]``) with one thing broken."""
    from builtin_interfaces.msg import Time

    a = copy.deepcopy(recent[-1])
    a.controller = FUZZ_TAG
    n = len(a.stream_ids)
    if kind == "duplicate_stamp":
        return a
    if kind == "out_of_order":
        a.header.stamp = recent[-4].header.stamp
        return a
    if kind == "zero_stamp":
        a.header.stamp = Time()
        return a
    if kind == "future_stamp":
        a.header.stamp = Time(sec=min(now.sec + int(rng.integers(3, 10**6)), 2**31 - 1), nanosec=now.nanosec)
        return a
    a.header.stamp = now
    if kind == "depth_zero":
        a.depth, a.active_blocks = 0, []
    elif kind == "wrong_depth":
        d = int(rng.choice([1, 7, 13, 255]))
        a.depth, a.active_blocks = d, [True] * (n * d)
    elif kind == "unknown_stream":
        a.stream_ids = [s.replace("node1/", "node9/") for s in a.stream_ids]
    elif kind == "no_node1_row":
        keep = [i for i, s in enumerate(a.stream_ids) if not s.startswith("node1/")]
        blocks = np.array(a.active_blocks, bool).reshape(n, -1)[keep]
        a.stream_ids = [a.stream_ids[i] for i in keep]
        a.active_blocks = blocks.reshape(-1).tolist()
        a.stream_present = [a.stream_present[i] for i in keep]
        a.estimated_noise = array.array("f", [a.estimated_noise[i] for i in keep])
        a.stream_status = [a.stream_status[i] for i in keep]
    elif kind == "blocks_length":
        a.active_blocks = list(a.active_blocks)[: -int(rng.integers(1, 12))]
    elif kind == "present_length":
        a.stream_present = list(a.stream_present) + [True]
    elif kind == "noise_length":
        a.estimated_noise = array.array("f", list(a.estimated_noise)[:-1])
    else:
        raise ValueError(kind)
    return a


def _peak_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def test_fuzz_10k_per_input_type_counted_on_diagnostics(tmp_path):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from admn_ros.msg import LayerAllocation, StreamEmbeddings
    from admn_ros.ros import topics
    from admn_ros.core.sync import stamp_to_ns
    from admn_ros.ros.qos import reliable_qos, sensor_qos
    from test_graph import start_graph

    write_random_models(tmp_path, seed=4, universal=True, budgets=())
    procs = start_graph(tmp_path, nodes=("sensor_node", "controller_node", "backbone_node1"),
                        extra={"log_throttle_s": 10.0, "qos_depth": QOS_DEPTH, "diagnostics_period": 0.5})
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("fuzzer", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    allocs: list[tuple[float, int]] = []     # (arrival, stamp ns) of the controller's allocations
    embs: list[tuple[float, int]] = []
    recent: deque = deque(maxlen=8)          # the last real allocations
    diag: dict[str, dict[str, str]] = {}

    def on_alloc(m):
        if m.controller != FUZZ_TAG:
            allocs.append((time.monotonic(), stamp_to_ns(m.header.stamp)))
            recent.append(m)

    def on_diag(msg):
        for st in msg.status:
            diag[st.name] = {kv.key: kv.value for kv in st.values}

    node.create_subscription(LayerAllocation, topics.ALLOCATION, on_alloc, reliable_qos(50))
    node.create_subscription(StreamEmbeddings, topics.embeddings_topic("node1"),
                             lambda m: embs.append((time.monotonic(), stamp_to_ns(m.header.stamp))),
                             reliable_qos(50))
    node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, on_diag, reliable_qos(50))
    pubs = {f"{n}/{mod}": node.create_publisher(Image, topics.image_topic(f"{n}/{mod}"), sensor_qos(50))
            for n in ("node1", "node2") for mod in MODS}
    pubs[topics.ALLOCATION] = node.create_publisher(LayerAllocation, topics.ALLOCATION, reliable_qos(50))

    def spin_until(cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            if procs.dead():
                raise AssertionError(f"process died: {procs.dead()}")
            ex.spin_once(timeout_sec=0.01)
        return cond()

    def counters(prefix: str) -> dict[str, dict[str, int]]:
        """input -> {rejected reason: count} of one node's last report."""
        out: dict[str, dict[str, int]] = {}
        for name, vals in diag.items():
            if name.startswith(prefix) and ": input " in name:
                out[name.split(": input ", 1)[1]] = {k[len("rejected."):]: int(v) for k, v in vals.items()
                                                     if k.startswith("rejected.")}
        return out

    def rejected_total(k: str) -> int:
        return sum(int(v.get("rejected", 0)) for name, v in diag.items() if name.startswith(f"/{k}: input "))

    def summary(suffix: str) -> dict[str, str]:
        return next(v for name, v in diag.items() if name.endswith(suffix))

    nodes = {"controller_node": "allocation", "backbone_node1": "backbone"}   # node -> its summary status

    def snapshot():
        """Rejections by input and reason, summary values of fresh reports, and peak RSS, per node."""
        diag.clear()
        assert spin_until(lambda: all(any(n.endswith(f"{k}: {what}") for n in diag) for k, what in nodes.items()),
                          5.0), f"no fresh /diagnostics report: {sorted(diag)}"
        return ({k: counters(f"/{k}") for k in nodes}, {k: summary(f"{k}: {what}") for k, what in nodes.items()},
                {n: _peak_rss_mb(p.pid) for n, p in procs.procs})
    try:
        assert spin_until(lambda: len(allocs) >= 8 and len(embs) >= 5, 60.0), \
            f"graph not running: {len(allocs)} allocations, {len(embs)} embeddings"
        # node1 images: controller + backbone_node1; node2: controller; allocations: backbone_node1 + our recorder
        want = {**{k: 2 if k.startswith("node1/") else 1 for k in pubs}, topics.ALLOCATION: 2}
        assert spin_until(lambda: all(pubs[k].get_subscription_count() >= want[k] for k in pubs), 10.0), \
            "fuzz publishers not matched"
        before, sync0, rss0 = snapshot()

        rng = np.random.default_rng(0)
        schedule = [(typ, kinds_of(typ)[i % len(kinds_of(typ))], input_of(typ, i // len(kinds_of(typ))))
                    for i in range(N_PER_TYPE) for typ in TYPES]
        sent: dict[tuple[str, str, str], int] = defaultdict(int)   # (type, kind, input) -> messages
        a0, e0 = len(allocs), len(embs)
        # pacing: at most RATE_FUZZ, and no faster than the nodes count (their backlog: rejections
        # sent minus rejections on their last report, which is up to a report period old)
        total0 = {k: rejected_total(k) for k in nodes}
        owed = {k: 0 for k in nodes}
        t0 = due = time.monotonic()
        paused = 0.0
        for i, (typ, kind, inp) in enumerate(schedule):
            ex.spin_once(timeout_sec=max(0.0, due - time.monotonic()))
            while time.monotonic() < due:
                ex.spin_once(timeout_sec=max(0.0, due - time.monotonic()))
            if i % 20 == 0:
                t_wait = time.monotonic()
                for k in nodes:   # wait while the node is counting its way through a backlog
                    last, t_last = rejected_total(k), time.monotonic()
                    while owed[k] - (rejected_total(k) - total0[k]) > MAX_BACKLOG:
                        assert not procs.dead(), f"process died: {procs.dead()} after {i} fuzz messages"
                        ex.spin_once(timeout_sec=0.01)
                        if rejected_total(k) != last:
                            last, t_last = rejected_total(k), time.monotonic()
                        elif time.monotonic() - t_last > 1.5:   # no progress: lost or not counted
                            owed[k] = rejected_total(k) - total0[k]
                if time.monotonic() - t_wait > 0.001:
                    paused += time.monotonic() - t_wait
                    due = time.monotonic()
            if i % 200 == 0:
                assert not procs.dead(), f"process died: {procs.dead()} after {i} fuzz messages"
                assert time.monotonic() - t0 < MAX_FUZZ_S, f"only {i} fuzz messages in {MAX_FUZZ_S} s"
            due += 1.0 / RATE_FUZZ
            now = node.get_clock().now().to_msg()
            if typ == "allocation":
                msg = make_allocation(kind, rng, now, recent)
            else:
                msg = make_image(typ, kind, rng, now, recent)
            pubs[inp].publish(msg)
            sent[(typ, kind, inp)] += 1
            if reason_of(typ, kind) not in (SYNC, ACCEPTED):
                for k in nodes:
                    owed[k] += seen_by(k, inp)
        fuzz_s = time.monotonic() - t0
        a1, e1 = len(allocs), len(embs)
        problems: list[str] = []
        # valid frames kept flowing during the fuzzing (10 Hz sensors) ...
        if a1 - a0 < MIN_ALLOCATIONS * 10 * fuzz_s or e1 - e0 < MIN_EMBEDDINGS * 10 * fuzz_s:
            problems.append(f"{a1 - a0} allocations, {e1 - e0} node1 embeddings during {fuzz_s:.1f} s of fuzzing")
        # ... and after it
        if not spin_until(lambda: len(allocs) >= a1 + 10 and len(embs) >= e1 + 8, 10.0):
            problems.append(f"after the fuzzing: {len(allocs) - a1} allocations, {len(embs) - e1} embeddings")
        assert not procs.dead(), f"process died: {procs.dead()}"
        for what, seq in (("allocation", allocs), ("node1 embedding", embs)):
            stamps = [s for _, s in seq]
            back = [k for k in range(1, len(stamps)) if stamps[k] <= stamps[k - 1]]
            if back:
                problems.append(f"{len(back)} {what} stamps not newer than the previous one")

        # the final counts: reports after the nodes have drained their queues
        spin_until(lambda: False, 2.0)
        after, sync1, rss1 = snapshot()

        # per node, input and reason: the messages sent of the kinds with that reason, and the count
        expected: dict[str, dict[str, dict[str, int]]] = {k: defaultdict(lambda: defaultdict(int)) for k in nodes}
        for (typ, kind, inp), n in sent.items():
            for k in nodes:
                if seen_by(k, inp):
                    expected[k][inp][reason_of(typ, kind)] += n
        pair = ("duplicate_stamp", "out_of_order")   # a duplicate allocation can reach the backbone after
        #                                              a newer real one: counted out of order
        for k in nodes:
            for inp in set(expected[k]) | set(after[k]):
                exp = expected[k].get(inp, {})
                got = {r: c - before[k].get(inp, {}).get(r, 0) for r, c in after[k].get(inp, {}).items()}
                for r, c in got.items():
                    if c and r not in exp:
                        problems.append(f"{k} {inp}: unexpected rejected.{r} = {c}")
                for r, n in exp.items():
                    if r in (SYNC, ACCEPTED):
                        continue
                    c, frac = got.get(r, 0), (PAIR_FRACTION if r in pair else COUNTED_FRACTION)
                    if c > n and r not in pair:
                        problems.append(f"{k} {inp}: rejected.{r} = {c} > {n} sent")
                    if c < frac * n:
                        problems.append(f"{k} {inp}: rejected.{r} = {c} < {frac} x {n} sent")
                if inp == topics.ALLOCATION:
                    c, n = sum(got.get(r, 0) for r in pair), sum(exp.get(r, 0) for r in pair)
                    # a malformed allocation overtaken by a newer real one is counted out of order
                    spill = max(exp.get("bad_allocation", 0) - got.get("bad_allocation", 0), 0)
                    if not COUNTED_FRACTION * n <= c <= n + spill:
                        problems.append(f"{k} {inp}: {c} duplicate + out-of-order counted, {n} sent")
        lines = [f"fuzzing: {len(schedule)} messages in {fuzz_s:.1f} s ({len(schedule) / fuzz_s:.0f}/s; "
                 f"paused {paused:.1f} s for the nodes to catch up); "
                 f"{a1 - a0} allocations, {e1 - e0} node1 embeddings meanwhile",
                 f"{'input':<11} {'rejected.<reason>':<17} {'sent':>6} {'controller':>10} {'to node1':>9} "
                 f"{'backbone1':>10}  kinds"]
        fractions: list[float] = []
        for typ in TYPES:
            by_reason: dict[str, list[str]] = defaultdict(list)
            for kind in kinds_of(typ):
                by_reason[reason_of(typ, kind)].append(kind)
            for r, kinds in by_reason.items():
                n = sum(v for (t, kind, _), v in sent.items() if t == typ and kind in kinds)
                cells = []
                for k in nodes:
                    inps = [i for i in expected[k] if type_of(i) == typ]
                    n_k = sum(expected[k][i].get(r, 0) for i in inps)
                    c = sum(after[k].get(i, {}).get(r, 0) - before[k].get(i, {}).get(r, 0) for i in inps)
                    if r in (SYNC, ACCEPTED) or not inps:
                        cells.append(("-", n_k if inps else "-"))
                    else:
                        cells.append((c, n_k))
                        if r not in pair:
                            fractions.append(c / n_k)
                lines.append(f"{typ:<11} {r:<17} {n:>6} {cells[0][0]:>10} {cells[1][1]:>9} {cells[1][0]:>10}  "
                             f"{', '.join(kinds)}")
        for typ in TYPES:
            lines.append(f"{typ:<11} {'total':<17} {sum(v for (t, _, _), v in sent.items() if t == typ):>6}")
        lines.append(f"lowest counted fraction {min(fractions):.3f}")
        for k, what in nodes.items():
            n_sync = sum(e.get(SYNC, 0) for e in expected[k].values())
            d_unmatched = int(sync1[k]["sync_discarded"]) - int(sync0[k]["sync_discarded"])
            d_stale = int(sync1[k]["sync_stale_sets"]) - int(sync0[k]["sync_stale_sets"])
            drops = {key: v for key, v in sync1[k].items() if key.startswith("dropped.")}
            lines.append(f"{k}: {n_sync} past/duplicate image stamps -> synchronizer unmatched +{d_unmatched}, "
                         f"stale sets +{d_stale}; peak RSS {rss0[k]:.0f} -> {rss1[k]:.0f} MB; {drops}")
            if d_unmatched + d_stale <= 0:
                problems.append(f"{k}: past/duplicate stamps left no trace in the synchronizer")
        for name in rss0:
            if rss1[name] - rss0[name] > RSS_GROWTH_MB:
                problems.append(f"{name}: peak RSS grew {rss1[name] - rss0[name]:.0f} MB")
        print("\n".join(lines))
        assert all(sum(n for (t, _, _), n in sent.items() if t == typ) >= N_PER_TYPE for typ in TYPES)
        assert not problems, "\n".join(problems)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        procs.stop()
