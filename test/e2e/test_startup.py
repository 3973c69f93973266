"""Start-up: from starting ``admn-ros run`` (what ``make demo`` starts, shipped models, default
parameters) to the first target received. The goal is 8 s on a quiet 2-core machine
(docs/BENCHMARKS.md, ``benchmarks/bench_startup.py``); the bound here leaves room for a
loaded CI machine."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from admn_ros.core.paths import SOURCE_ROOT

pytestmark = pytest.mark.ros

BOUND_S = 30.0


def test_first_target_soon_after_start() -> None:
    """Break tried: the previous default ``backend: auto`` (every ADMN node builds and times
    the compiled backends at configure) took 40+ s to the first target on the loaded
    development machine and fails here."""
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor

    from admn_ros.core.tasks import get_task

    if not (SOURCE_ROOT / "models" / "tracking.safetensors").is_file():
        pytest.skip("shipped tracking model not present")
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("startup_probe", context=ctx)
    got: list[float] = []
    node.create_subscription(PoseWithCovarianceStamped, "/" + get_task("tracking").output.topic,
                             lambda m: got.append(time.monotonic()), 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "admn_ros.cli", "run", "--quiet"], env=dict(os.environ),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while not got and time.monotonic() - t0 < BOUND_S + 30 and p.poll() is None:
            ex.spin_once(timeout_sec=0.02)
    finally:
        os.killpg(p.pid, signal.SIGINT)
        try:
            err = p.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            err = p.communicate()[1]
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert got, f"no target within {BOUND_S + 30:.0f} s:\n{err[-2000:]}"
    assert got[0] - t0 <= BOUND_S, f"first target {got[0] - t0:.1f} s after start (bound {BOUND_S:.0f} s)"
