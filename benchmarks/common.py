"""What the benchmarks share: a monitor node on its own rclpy context, bounded spinning, and the
CPU time and RSS of a process."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(cpu ticks: utime + stime, rss kB) of ``pid``, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = next((int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if ln.startswith("VmRSS:")), 0)
        return int(fields[11]) + int(fields[12]), rss
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def monitor_node(name: str, events: bool = True) -> Iterator[tuple[Any, Any]]:
    """``(node, executor)``: a node on a fresh rclpy context in the nodes' executor
    (:func:`admn_ros.ros.env.make_executor`; not ``events``: rclpy's default one), all shut down on exit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from admn_ros.ros.env import make_executor

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(name, context=ctx)
    ex = (make_executor if events else SingleThreadedExecutor)(context=ctx)
    ex.add_node(node)
    try:
        yield node, ex
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def spin_for(ex: Any, seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
    """Spin ``ex`` for ``seconds`` or until ``until()`` holds; returns ``until()``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not until():
        ex.spin_once(timeout_sec=0.05)
    return until()
