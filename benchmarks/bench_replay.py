"""Offline bag throughput: how fast :class:`admn_ros.bags.reader.BagFrames` turns a recorded
simulator bag into synchronized, decoded frames, compared with real time (15 Hz).

A recorded simulator bag in each ``--storage`` is read ``--repeat`` times (frames/s, MB/s,
real-time factor), next to the raw message iteration and a full baseline ``replay``. No DDS.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

REAL_TIME_HZ = 15.0


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])


def bench_storage(root: Path, storage: str, duration: float, repeat: int, seed: int) -> dict:
    """Record one bag and measure reading it; returns the figures."""
    from rosbags.highlevel import AnyReader

    from admn_ros.bags.pipeline import TrackCentreBaseline
    from admn_ros.bags.reader import BagFrames
    from admn_ros.bags.record import parse_corrupt_arg, record_sim
    from admn_ros.bags.replay import replay
    from admn_ros.core.sim import load_sim_config

    rate = load_sim_config(None).rate_hz
    frames = int(round(duration * rate)) + 1
    corr = dict(parse_corrupt_arg(c) for c in ("node1/rgb=gaussian:sigma=2.0,flicker:period=2:duty=0.5",
                                               "node2/depth=dropout,flicker:period=4:duty=0.25"))
    bag = root / f"bench_{storage}"
    rec = record_sim(bag, frames=frames, seed=seed, corruptions=corr, storage=storage)
    size_mb = rec.size_bytes / 1e6

    raw_s = []
    for _ in range(repeat):
        t = time.perf_counter()
        with AnyReader([bag]) as r:
            n_raw = sum(1 for _ in r.messages())
        raw_s.append(time.perf_counter() - t)

    read_s, n_frames, first_s = [], 0, []
    for _ in range(repeat):
        t = time.perf_counter()
        with BagFrames(bag, "default") as bf:
            it = iter(bf)
            next(it)
            first_s.append(time.perf_counter() - t)
            n_frames = 1 + sum(1 for _ in it)
        read_s.append(time.perf_counter() - t)

    out = root / f"replay_{storage}"
    t = time.perf_counter()
    s = replay(bag, TrackCentreBaseline(load_sim_config(None).streams.ids), out, storage=storage)
    replay_s = time.perf_counter() - t

    rs, ws = _median(read_s), _median(raw_s)
    return {
        "storage": storage, "bag_frames": frames, "bag_messages": rec.messages, "bag_mb": round(size_mb, 1),
        "bag_seconds": round(rec.duration_s, 3), "record_s": round(rec.wall_s, 2),
        "record_frames_per_s": round(frames / rec.wall_s, 1),
        "raw_iter_s": round(ws, 3), "raw_msgs_per_s": round(n_raw / ws, 0), "raw_mb_per_s": round(size_mb / ws, 0),
        "read_frames": n_frames, "read_s": round(rs, 3), "read_frames_per_s": round(n_frames / rs, 1),
        "read_mb_per_s": round(size_mb / rs, 1), "read_realtime_factor": round(n_frames / rs / REAL_TIME_HZ, 2),
        "open_to_first_frame_s": round(_median(first_s), 3),
        "replay_baseline_s": round(replay_s, 2), "replay_frames_per_s": round(s.frames / replay_s, 1),
        "replay_realtime_factor": round(s.frames / replay_s / REAL_TIME_HZ, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="bag length in s (bag time)")
    p.add_argument("--storage", nargs="+", choices=("sqlite3", "mcap"), default=["sqlite3", "mcap"])
    p.add_argument("--repeat", type=int, default=3, help="read passes (median reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", default=None, help="where to write the bags (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the bags")
    p.add_argument("--json", default=None, help="also write the figures here")
    a = p.parse_args(argv)
    root = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="admn_bench_replay_"))
    root.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for storage in a.storage:
            r = bench_storage(root, storage, a.duration, max(1, a.repeat), a.seed)
            results.append(r)
            print(f"[{storage}] {r['bag_frames']} frames / {r['bag_seconds']:.1f} s bag, {r['bag_messages']} msgs, "
                  f"{r['bag_mb']} MB; recorded at {r['record_frames_per_s']} frames/s")
            print(f"[{storage}] raw message iteration : {r['raw_msgs_per_s']:.0f} msgs/s, {r['raw_mb_per_s']:.0f} MB/s")
            print(f"[{storage}] BagFrames (decode+sync): {r['read_frames_per_s']} frames/s, {r['read_mb_per_s']} MB/s, "
                  f"{r['read_realtime_factor']}x real time (15 Hz); open -> first frame {r['open_to_first_frame_s']} s")
            print(f"[{storage}] replay, baseline + CSV + output bag: {r['replay_frames_per_s']} frames/s "
                  f"({r['replay_realtime_factor']}x real time)")
    finally:
        if not a.keep and not a.dir:
            shutil.rmtree(root, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
