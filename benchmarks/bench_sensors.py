"""Sensor-side figures (``python -m benchmarks.bench_sensors``, DDS on localhost only):

(a) three ``sensor_node`` processes at 15 Hz: achieved rate per stream and CPU share per process;
(b) cross-process latency of rgb8 images 640x480 and 320x240 (publish -> Python callback) under
    several DDS set-ups side by side. ``--role pub|sub`` are the benchmark's own processes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from admn_ros.core.sync import stamp_to_ns
from admn_ros.ros.env import isolated_env, stop_process_groups
from benchmarks.common import CLK_TCK, ROOT, monitor_node, proc_stat, spin_for

PY = sys.executable
#: (label, env changes, extra role arguments) of the DDS set-ups compared; None value = unset
VARIANTS = (("no profile", {"FASTDDS_DEFAULT_PROFILES_FILE": None}, ()),
            ("shipped profile", {"FASTDDS_DEFAULT_PROFILES_FILE": str(ROOT / "config" / "fastdds.xml")}, ()),
            ("no profile, RELIABLE QoS", {"FASTDDS_DEFAULT_PROFILES_FILE": None}, ("--reliable",)))


def bench_sensor_nodes(duration: float, rate_hz: float = 15.0) -> None:
    """Three sensor_node processes (node1..3), one subscriber here; prints rates and CPU shares."""
    from sensor_msgs.msg import Image

    from admn_ros.core.streams import DEFAULT_NODES, MODALITIES, stream_id
    from admn_ros.ros import topics
    from admn_ros.ros.qos import sensor_qos

    nodes = list(DEFAULT_NODES)
    start_time = time.time() + 4.0  # shared grid; processes need ~1-3 s to start
    procs: list[subprocess.Popen] = []
    logs = []
    sids = [stream_id(n, m) for n in nodes for m in MODALITIES]
    stamps: dict[str, set[int]] = {s: set() for s in sids}
    seen: set[str] = set()
    counting = [False]

    def on_image(sid: str, msg: Image) -> None:
        seen.add(sid)
        if counting[0]:
            stamps[sid].add(stamp_to_ns(msg.header.stamp))

    with monitor_node("bench_sensor_counter") as (sub_node, ex):
        for s in sids:
            sub_node.create_subscription(Image, topics.image_topic(s), lambda m, s=s: on_image(s, m), sensor_qos(10))
        try:
            for i, n in enumerate(nodes):
                log = tempfile.TemporaryFile()
                logs.append(log)
                cmd = [PY, "-m", "admn_ros.ros.sensor_node", "--ros-args",
                       "-r", f"__node:=sensor_{n}", "-p", f"nodes:=[{n}]", "-p", f"rate_hz:={rate_hz}",
                       "-p", f"start_time:={start_time:.3f}", "-p", "publish_camera_info:=false",
                       "-p", f"publish_ground_truth:={'true' if i == 0 else 'false'}",
                       "-p", "diagnostics_period:=0.0"]
                procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
            # until all 9 streams arrive (bounded), then measure
            spin_for(ex, 30.0, lambda: len(seen) >= len(sids) or any(p.poll() is not None for p in procs))
            if len(seen) < len(sids) or any(p.poll() is not None for p in procs):
                out = []
                for log in logs:
                    log.seek(0)
                    out.append(log.read().decode(errors="replace")[-2000:])
                print(f"  ERROR: streams seen: {sorted(seen)}; process output:\n" + "\n---\n".join(out))
                return
            spin_for(ex, 0.5)
            # Stamps are start_time + k / rate on the wall clock: count, per stream, the frames
            # received whose stamp lies in the window (immune to queued messages at its edges).
            counting[0] = True
            ticks0 = [(proc_stat(p.pid) or (None,))[0] for p in procs]
            w0, t0 = time.time_ns(), time.monotonic()
            spin_for(ex, duration)
            w1, elapsed = time.time_ns(), time.monotonic() - t0
            ticks1 = [(proc_stat(p.pid) or (None,))[0] for p in procs]
            spin_for(ex, 0.5)  # late deliveries of frames stamped inside the window
        finally:
            stop_process_groups(procs)
    inside = {s: {k for k in stamps[s] if w0 <= k < w1} for s in sids}
    window_s = (w1 - w0) * 1e-9
    for sid in sids:
        hz = len(inside[sid]) / window_s
        print(f"  {sid:<14} {hz:6.2f} Hz  ({100 * hz / rate_hz:5.1f}% of {rate_hz:g})")
    for n, a, b in zip(nodes, ticks0, ticks1):
        cpu = "n/a" if a is None or b is None else f"{100 * (b - a) / CLK_TCK / elapsed:5.1f}% of one core"
        print(f"  sensor_{n:<8} CPU {cpu}")
    print(f"  frames stamped in the window {len(set().union(*inside.values()))} (expected {rate_hz * window_s:.0f}), "
          f"seen on all 9 streams {len(set.intersection(*inside.values()))}")


def run_latency_pair(width: int, height: int, frames: int, rate: float, env_changes: dict, args: tuple[str, ...],
                     timeout: float = 40.0) -> dict:
    env = {k: v for k, v in {**os.environ, **env_changes}.items() if v is not None}
    common = ["--width", str(width), "--height", str(height), "--frames", str(frames), "--rate", str(rate), *args]
    sub, pub = (subprocess.Popen([PY, "-m", "benchmarks.bench_sensors", "--role", role, *common], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
                for role in ("sub", "pub"))
    try:
        out, err = sub.communicate(timeout=timeout)
        for line in reversed(out.decode().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {"error": err.decode(errors="replace")[-1500:]}
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout} s"}
    finally:
        stop_process_groups([pub, sub])


def _role_pub(a: argparse.Namespace) -> int:
    import numpy as np
    from sensor_msgs.msg import Image

    from admn_ros.ros.convert import make_header, ns_to_stamp, numpy_to_image
    from admn_ros.ros.qos import image_qos

    with monitor_node("bench_image_pub", events=False) as (node, ex):
        pub = node.create_publisher(Image, "bench/image", image_qos("reliable" if a.reliable else "best_effort", 5))
        img = np.random.default_rng(0).integers(0, 255, (a.height, a.width, 3), dtype=np.uint8)
        msg = numpy_to_image(img, "rgb8", make_header(frame_id="0"))
        spin_for(ex, 15.0, lambda: pub.get_subscription_count() >= 1)
        time.sleep(0.3)  # let the reader's side of discovery settle too
        t_next = time.monotonic()
        for i in range(a.frames + 10):  # 10 warm-up frames (the subscriber drops them)
            msg.header.stamp = ns_to_stamp(time.time_ns())
            msg.header.frame_id = str(i)
            pub.publish(msg)
            t_next += 1.0 / a.rate
            time.sleep(max(0.0, t_next - time.monotonic()))
        time.sleep(0.5)
    return 0


def _role_sub(a: argparse.Namespace) -> int:
    import numpy as np
    from sensor_msgs.msg import Image

    from admn_ros.ros.qos import image_qos

    lat: list[float] = []
    seqs: set[int] = set()
    last = [0.0]

    def cb(msg: Image) -> None:
        now = time.time_ns()
        i = int(msg.header.frame_id)
        if i < 10:
            return
        lat.append((now - stamp_to_ns(msg.header.stamp)) / 1e6)
        seqs.add(i)
        last[0] = time.monotonic()

    with monitor_node("bench_image_sub", events=False) as (node, ex):
        node.create_subscription(Image, "bench/image", cb, image_qos("reliable" if a.reliable else "best_effort", 5))
        spin_for(ex, 15.0 + a.frames / a.rate,
                 lambda: len(seqs) >= a.frames or bool(last[0] and time.monotonic() - last[0] > 1.5))
    p50, p99, top = np.percentile(lat, [50, 99, 100]) if lat else (float("nan"),) * 3
    print(json.dumps({"n": len(lat), "sent": a.frames, "p50_ms": p50, "p99_ms": p99, "max_ms": top}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=("pub", "sub"))
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--reliable", action="store_true", help="reliable QoS in --role pub/sub")
    ap.add_argument("--only", choices=("a", "b"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.role:
        # Children of this benchmark: the parent chose the DDS set-up (profile or none) and the
        # domain id; only make sure discovery stays on this machine. isolated_env() would put
        # the shipped profile back into a "no profile" run.
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        if "ROS_DOMAIN_ID" not in os.environ:
            isolated_env()
        return _role_pub(a) if a.role == "pub" else _role_sub(a)
    isolated_env()  # LOCALHOST discovery + a domain id of our own (inherited by the children)

    t_start = time.monotonic()
    print(f"bench_sensors: ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']} "
          f"ROS_AUTOMATIC_DISCOVERY_RANGE={os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE']} "
          f"cores={os.cpu_count()}", flush=True)
    if a.only in (None, "a"):
        dur = 4.0 if a.quick else 10.0
        print(f"\n(a) 3 sensor_node processes x 3 streams at 15 Hz, window {dur:.0f} s", flush=True)
        bench_sensor_nodes(dur)
    if a.only in (None, "b"):
        frames = 60 if a.quick else 150
        print(f"\n(b) image latency publish -> Python callback, {frames} frames at {a.rate:g} Hz, "
              f"best effort, LOCALHOST in all rows", flush=True)
        for label, changes, args in VARIANTS:
            for (w, h) in ((640, 480), (320, 240)):
                r = run_latency_pair(w, h, frames, a.rate, changes, args)
                print(f"  {label:<28} {f'{w}x{h}':>8}  " + (f"ERROR: {r['error'][:300]}" if "error" in r else
                      f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  max {r['max_ms']:7.2f} ms  "
                      f"delivered {r['n']}/{r['sent']}"), flush=True)
    print(f"\ntotal {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
