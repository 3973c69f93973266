"""FrameAssembler (activity windows): a lost message only makes its stream absent from that
frame; frames are emitted in stamp order, complete, superseded, timed out or on overflow;
a dead stream never blocks."""
import pytest

from admn_ros.core.sync import FrameAssembler

KEYS = ["rgb", "depth", "radar"]


def _feed(a: FrameAssembler, k: int, keys=KEYS, now: float | None = None, period: float = 0.1):
    out = []
    for key in keys:
        out += a.add(key, 10.0 + k * period, f"{key}{k}", now=k * period if now is None else now)
    return out


def test_complete_frames_fire_at_once():
    a = FrameAssembler(KEYS, slop=0.01, timeout=0.5)
    assert a.add("rgb", 10.0, "r0", now=0.0) == []
    assert a.add("depth", 10.004, "d0", now=0.0) == []
    out = a.add("radar", 9.998, "x0", now=0.0)
    assert len(out) == 1
    f = out[0]
    assert f.items == {"rgb": "r0", "depth": "d0", "radar": "x0"}
    assert f.missing == frozenset() and f.reason == "complete"
    assert f.stamp == pytest.approx(10.004)
    assert a.open_frames == 0 and a.stats.complete == 1


def test_missing_message_makes_only_that_stream_absent_from_that_frame():
    a = FrameAssembler(KEYS, slop=0.01, timeout=0.5)
    frames = []
    for k in range(6):
        keys = [x for x in KEYS if not (k == 2 and x == "depth")]
        frames += _feed(a, k, keys)
    # frame 2 is emitted (without depth) once frame 3 completes: nothing is dropped
    assert [round(f.stamp, 3) for f in frames] == [10.0, 10.1, 10.2, 10.3, 10.4, 10.5]
    f2 = frames[2]
    assert set(f2.items) == {"rgb", "radar"} and f2.missing == frozenset({"depth"})
    assert f2.reason == "superseded"
    assert all(f.missing == frozenset() for k, f in enumerate(frames) if k != 2)
    assert a.missing_count == {"rgb": 0, "depth": 1, "radar": 0}
    assert a.stats.incomplete == 1 and a.stats.complete == 5


def test_incomplete_frame_fires_after_timeout_via_poll():
    a = FrameAssembler(KEYS, slop=0.01, timeout=0.5)
    assert a.add("rgb", 10.0, "r", now=0.0) == []
    assert a.add("radar", 10.0, "x", now=0.0) == []
    assert a.add("depth", 10.1, "d1", now=0.1) == []   # depth is alive but skipped frame 0
    assert a.add("rgb", 10.2, "r2", now=0.3) == []      # nothing completes: every stream lost one
    assert a.add("radar", 10.2, "x2", now=0.3) == []
    assert a.poll(0.45) == []
    out = a.poll(0.51)                                   # frame 0 waited `timeout` s
    assert len(out) == 1 and out[0].reason == "timeout" and out[0].missing == frozenset({"depth"})
    assert out[0].items == {"rgb": "r", "radar": "x"} and a.open_frames == 2
    # then frame 1 times out, and frame 2 fires once depth is silent > timeout (dead)
    out = a.poll(0.61)
    assert [f.items for f in out] == [{"depth": "d1"}, {"rgb": "r2", "radar": "x2"}]


def test_dead_stream_does_not_block_after_timeout():
    a = FrameAssembler(KEYS, slop=0.01, timeout=0.25)
    _feed(a, 0)
    emitted = []
    for k in range(1, 8):             # depth dead from frame 1 on
        emitted += _feed(a, k, ["rgb", "radar"])
    # frames 1.. wait for the next frame (superseded) until depth is silent > timeout;
    # from then on each frame completes immediately without it
    assert [round(f.stamp, 2) for f in emitted] == [10.1, 10.2, 10.3, 10.4, 10.5, 10.6, 10.7]
    assert emitted[-1].reason == "complete" and emitted[-1].missing == frozenset({"depth"})
    assert a.missing(0.7) == frozenset({"depth"})
    # it rejoins with its next message
    out = _feed(a, 8)
    assert out[-1].missing == frozenset() and a.missing(0.8) == frozenset()


def test_late_duplicate_and_overflow():
    a = FrameAssembler(KEYS, slop=0.01, timeout=5.0, max_open=2)
    _feed(a, 0)
    assert a.add("rgb", 10.0, "again", now=0.1) == []       # at an emitted frame: late
    assert a.add("depth", 9.9, "old", now=0.1) == []         # before it: late
    assert a.stats.late == 2
    a.add("rgb", 10.1, "r1", now=0.1)
    assert a.add("rgb", 10.105, "r1b", now=0.1) == []        # second rgb for the open frame
    assert a.stats.duplicate == 1
    a.add("rgb", 10.2, "r2", now=0.2)
    out = a.add("rgb", 10.3, "r3", now=0.3)                  # third open frame: the oldest goes
    assert [f.reason for f in out] == ["overflow"] and out[0].items == {"rgb": "r1"}
    assert a.stats.overflow == 1 and a.open_frames == 2


def test_invalid_settings_and_unknown_key():
    with pytest.raises(ValueError):
        FrameAssembler([], slop=0.01)
    with pytest.raises(ValueError):
        FrameAssembler(["a", "a"], slop=0.01)
    with pytest.raises(ValueError):
        FrameAssembler(["a"], slop=0.01, timeout=0.0)
    with pytest.raises(KeyError):
        FrameAssembler(["a"], slop=0.01).add("b", 1.0, None, now=0.0)
