"""Offline bag throughput: how fast :class:`admn_ros.bags.reader.BagFrames` turns a recorded
simulator bag into synchronized, decoded frames, compared with real time (15 Hz).

A recorded simulator bag in each ``--storage`` is read ``--repeat`` times (frames/s, MB/s,
real-time factor), next to the raw message iteration and a full baseline ``replay``. No DDS.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from statistics import median as _median

REAL_TIME_HZ = 15.0


def bench_storage(root: Path, storage: str, duration: float, repeat: int, seed: int = 0) -> None:
    """Record one bag, measure reading it and print the figures."""
    from rosbags.highlevel import AnyReader

    from admn_ros.bags.pipeline import TrackCentreBaseline
    from admn_ros.bags.reader import BagFrames
    from admn_ros.bags.record import parse_corrupt_arg, record_sim
    from admn_ros.bags.replay import replay
    from admn_ros.core.sim import load_sim_config

    frames = int(round(duration * load_sim_config(None).rate_hz)) + 1
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
    print(f"[{storage}] {frames} frames / {rec.duration_s:.1f} s bag, {rec.messages} msgs, "
          f"{size_mb:.1f} MB; recorded at {frames / rec.wall_s:.1f} frames/s")
    print(f"[{storage}] raw message iteration : {n_raw / ws:.0f} msgs/s, {size_mb / ws:.0f} MB/s")
    print(f"[{storage}] BagFrames (decode+sync): {n_frames / rs:.1f} frames/s, {size_mb / rs:.1f} MB/s, "
          f"{n_frames / rs / REAL_TIME_HZ:.2f}x real time (15 Hz); open -> first frame {_median(first_s):.3f} s")
    print(f"[{storage}] replay, baseline + CSV + output bag: {s.frames / replay_s:.1f} frames/s "
          f"({s.frames / replay_s / REAL_TIME_HZ:.2f}x real time)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20.0, help="bag length in s (bag time)")
    p.add_argument("--storage", nargs="+", choices=("sqlite3", "mcap"), default=["sqlite3", "mcap"])
    p.add_argument("--repeat", type=int, default=3, help="read passes (median reported)")
    a = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="admn_bench_replay_"))
    try:
        for storage in a.storage:
            bench_storage(root, storage, a.duration, max(1, a.repeat))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
