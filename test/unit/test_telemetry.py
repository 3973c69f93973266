"""Node telemetry (admn_ros.ros.telemetry): the input-health bookkeeping, rates and latencies
the nodes show on /diagnostics."""
from __future__ import annotations

import pytest

from admn_ros.ros.telemetry import LatencyWindow, RateMeter, StreamMonitor


def test_stream_monitor_and_meters():
    """Break tried: RateMeter.rate without sliding its window (the rate long after the last
    tick stayed 2 Hz instead of 0); LatencyWindow.report without its max (the report lacked embed_ms_max)."""
    m = StreamMonitor()
    assert m.check_stamp("a", 0) == "zero_stamp"
    m.accept("a", 100, now=1.0)
    assert m.check_stamp("a", 100) == "duplicate_stamp"
    assert m.check_stamp("a", 50) == "out_of_order"
    assert m.check_stamp("a", 200) is None
    m.reject("a", "bad_encoding")
    m.reject("b", "empty")
    assert m.rejected("a") == {"bad_encoding": 1} and m.rejected("b") == {"empty": 1}
    assert m.age("a", 1_000_000_100) == pytest.approx(1.0)
    r = RateMeter(2.0)
    for k in range(21):
        r.tick(k * 0.1)
    assert r.rate(2.0) == pytest.approx(10.0, rel=0.01)
    assert r.rate(10.0) == 0.0          # the window slid past every tick
    lw = LatencyWindow(10)
    for v in range(20):
        lw.add(v)
    s = lw.summary()
    assert s["n"] == 10 and s["max"] == 19
    assert lw.report("embed") == {"embed_ms_p50": s["p50"], "embed_ms_p99": s["p99"], "embed_ms_max": 19.0,
                                  "embed_count": 20.0}
