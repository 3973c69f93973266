"""Measure the stream health check (admn_ros.core.health) on simulated streams.

Per task, with the target moving, held still and (tracking) out of every view, every stream's content
signature is fed to a StreamHealth: per modality the exact-repeat fraction p, the longest repeat run,
the smallest non-zero change, the default check's false alarms and the rate p predicts per stream and
hour. Then node1/rgb is frozen for 2 s (detection and rejoin delays), and the cost per message.

    .venv/bin/python scripts/stream_health.py --frames 1500
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from itertools import groupby

import numpy as np

from admn_ros.core.health import HealthConfig, StreamHealth, content_signature
from admn_ros.core.preprocess import to_model_input
from admn_ros.core.sim import CorruptionSpec
from admn_ros.core.streams import split_stream_id
from admn_ros.core.tasks import get_task


def _frames(task: str, target: str, n: int, episode: int, corrupt: dict | None = None):
    """``(sim, k, {sid: sensor array})`` of ``n`` frames (``corrupt``: frame -> spec of node1/rgb)."""
    sim = get_task(task).simulator(seed=0, episode=episode)
    if target != "moving" and task == "tracking":   # the car parked where it is at 3 s, or far away
        pose = sim.scene.trajectory.pose(3.0) if target == "still" else (50.0, 50.0, 0.0)
        object.__setattr__(sim.scene, "trajectory", type("Still", (), {"pose": lambda self, t: pose})())
    elif target == "still":               # the subject holds its pose of 2 s
        p0 = sim.performance.params(np.array([2.0]))
        sim.performance.params = lambda times: np.repeat(p0, np.size(times), 0)
    for k in range(n):
        if corrupt and k in corrupt:
            sim.set_corruption("node1/rgb", corrupt[k])
        f = sim.step()
        yield sim, k, {sid: sf.data for sid, sf in f.streams.items() if sf.data is not None}


def _run(task: str, target: str, n: int, episode: int, cfg: HealthConfig, corrupt: dict | None = None):
    health: dict[str, StreamHealth] = defaultdict(lambda: StreamHealth(cfg))
    prev: dict[str, np.ndarray] = {}
    changes: dict[str, list[float]] = defaultdict(list)
    status: dict[str, list[str]] = defaultdict(list)
    rate = None
    for sim, k, streams in _frames(task, target, n, episode, corrupt):
        rate = rate or float(getattr(sim, "rate_hz", 15.0))
        for sid, a in streams.items():
            sig = content_signature(to_model_input(split_stream_id(sid)[1], a))
            if sid in prev:
                changes[sid].append(float(np.mean(np.abs(sig - prev[sid]))))
            prev[sid] = sig
            status[sid].append(health[sid].update(int(k * 1e9 / rate), k / rate, sig))
    return rate, changes, status, health


def _longest(mask: np.ndarray) -> int:
    """The longest run of True in ``mask``."""
    return max((len(list(run)) for on, run in groupby(mask) if on), default=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1500, help="frames per scenario")
    a = ap.parse_args()
    cfg = HealthConfig()
    print(f"check: {cfg}")
    print("task      target  modality  msgs   exact_repeat  longest_run  min_change  false_alarms  expected_per_h")
    for task in ("tracking", "activity"):
        for target in ("moving", "still") + (("empty",) if task == "tracking" else ()):
            rate, changes, status, health = _run(task, target, a.frames, 0, cfg)
            by_mod: dict[str, list[str]] = defaultdict(list)
            for sid in changes:
                by_mod[split_stream_id(sid)[1]].append(sid)
            for mod, sids in sorted(by_mod.items()):
                v = np.concatenate([changes[s] for s in sids])
                nz = v[v > 0]
                alarms = sum(sum(health[s].events.values()) for s in sids)
                p = float(np.mean(v == 0))
                print(f"{task:9s} {target:7s} {mod:8s} {v.size:6d} {p:12.4f} "
                      f"{max(_longest(np.asarray(changes[s]) == 0) for s in sids):12d} {nz.min():11.2e} {alarms:13d}"
                      f"  {(1 - p) * p ** cfg.frozen_frames * rate * 3600:14.2g}")
        # frozen node1/rgb from 3 s to 5 s
        k0, k1 = int(3 * rate), int(5 * rate)
        rate, _, status, _ = _run(task, "moving", k1 + int(2 * rate), 0, cfg,
                                  {k0: CorruptionSpec("frozen"), k1: CorruptionSpec("none")})
        st = status["node1/rgb"]
        det = next(k for k in range(k0, len(st)) if st[k] == "frozen")
        back = next(k for k in range(k1, len(st)) if st[k] == "ok")
        print(f"{task}: node1/rgb frozen at frame {k0} -> 'frozen' at frame {det} ({(det - k0) / rate:.3f} s at "
              f"{rate:g} Hz); cleared at frame {k1} -> 'ok' at frame {back} ({(back - k1) / rate:.3f} s)")
    rng = np.random.default_rng(0)
    for c in (3, 1):
        h, xs = StreamHealth(cfg), [rng.random((c, 64, 64), dtype=np.float32) for _ in range(2)]
        t0 = time.perf_counter()
        for k in range(20000):
            h.update(k * 66_666_667, k / 15, content_signature(xs[k % 2]))
        print(f"cost: {(time.perf_counter() - t0) / 20000 * 1e6:.1f} us per message with {c} channel(s)")


if __name__ == "__main__":
    main()
