"""``admn-ros play``: publish a rosbag2 at its recorded rate with ``/clock`` (where
``ros2 bag play --clock`` is not installed), forwarding the recorded CDR bytes undecoded.
ROS 1 bags are not played (not CDR); ``admn-ros replay`` reads them offline. A topic whose
message type is not importable here is skipped and named at the end.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from admn_ros.bags.reader import _open_reader

CLOCK_TOPIC = "/clock"
CLOCK_HZ = 100.0


@dataclass
class PlayStats:
    messages: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    max_lag_ms: float = 0.0  # worst wall-clock lateness of a publish vs its schedule
    skipped: dict[str, str] = field(default_factory=dict)  # topic -> its type, not importable here

    def text(self) -> str:
        return (f"played {self.messages} messages on {len(self.topics)} topics: {self.bag_seconds:.2f} s of bag "
                f"in {self.wall_seconds:.2f} s wall (max lag {self.max_lag_ms:.1f} ms)" + "".join(
                    f"; skipped {t} ({typ}: its Python message class is not importable)"
                    for t, typ in self.skipped.items()))


def check_rate(rate: float) -> None:
    if not 0 < rate < math.inf:  # NaN too
        raise ValueError(f"playback rate (--rate) must be a finite number > 0, got {rate}")


def play(bag: str | Path, node: Any, *, rate: float = 1.0, clock: bool = True, start_delay: float = 0.2,
         match_timeout: float = 5.0, progress: bool = False) -> PlayStats:
    """Publish ``bag`` through the rclpy ``node`` in real time scaled by ``rate``, with ``/clock``
    at :data:`CLOCK_HZ` and before every message; the clock stands at the first message's time for
    ``start_delay`` s before any data. Each publisher first waits (at most ``match_timeout``) for
    the subscriptions the graph shows: volatile messages sent before matching are lost."""
    from rosgraph_msgs.msg import Clock

    from admn_ros.ros.convert import message_class, ns_to_stamp
    from admn_ros.ros.qos import reliable_qos

    check_rate(rate)
    path = Path(bag)
    if path.suffix == ".bag":
        raise ValueError(f"{path}: ROS 1 bags carry no CDR payload to publish; use `admn-ros replay` offline")
    reader = _open_reader(path)
    stats = PlayStats()
    try:
        pubs = {}
        for c in reader.connections:  # a type not importable here is skipped, as ros2 bag play does
            try:
                pubs[c.topic] = node.create_publisher(message_class(c.msgtype), c.topic, reliable_qos())
            except RuntimeError:
                stats.skipped[c.topic] = c.msgtype
        conns = [c for c in reader.connections if c.topic in pubs]
        clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, reliable_qos()) if clock else None
        waiting = dict(pubs, **({CLOCK_TOPIC: clock_pub} if clock_pub is not None else {}))
        deadline = time.monotonic() + match_timeout
        while time.monotonic() < deadline and not all(
                p.get_subscription_count() >= node.count_subscribers(t) for t, p in waiting.items()):
            time.sleep(0.05)

        def tick(t_ns: int) -> None:
            if clock_pub is not None:
                clock_pub.publish(Clock(clock=ns_to_stamp(t_ns)))

        t0_bag = wall0 = None
        next_clock = 0.0
        for conn, t_ns, raw in tqdm(reader.messages(connections=conns) if conns else (),  # no connections = all
                                    total=sum(c.msgcount for c in conns), desc=f"play {path.name}", unit="msg",
                                    disable=not progress):
            if t0_bag is None:  # the bag's time starts start_delay s from now; the clock stands still till then
                t0_bag, wall0 = t_ns, time.monotonic() + start_delay
            due = wall0 + (t_ns - t0_bag) * 1e-9 / rate
            while (now := time.monotonic()) < due:
                if now >= next_clock:
                    tick(t0_bag + max(0, int((now - wall0) * rate * 1e9)))
                    next_clock = now + 1.0 / CLOCK_HZ
                time.sleep(min(due - now, 1.0 / CLOCK_HZ))
            tick(t_ns)
            pubs[conn.topic].publish(bytes(raw))
            stats.max_lag_ms = max(stats.max_lag_ms, (time.monotonic() - due) * 1e3)
            stats.messages += 1
            stats.topics[conn.topic] = stats.topics.get(conn.topic, 0) + 1
            stats.bag_seconds = (t_ns - t0_bag) * 1e-9
        stats.wall_seconds = 0.0 if wall0 is None else time.monotonic() - wall0
    finally:
        reader.close()
    return stats


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="admn-ros play", description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("bag", help="rosbag2 directory or .db3/.mcap file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    import rclpy

    from admn_ros.ros.env import configure_dds_env

    configure_dds_env()
    rclpy.init()
    node = rclpy.create_node("admn_bag_player")
    try:
        s = play(a.bag, node, rate=a.rate, start_delay=1.0, progress=not a.no_progress)
        print(s.text())
        return 0
    except (ValueError, RuntimeError) as e:  # a BagError is a RuntimeError
        print(f"admn-ros play: error: {e}", file=sys.stderr)
        return 2
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
