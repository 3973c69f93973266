"""Approximate-time synchronizer: message_filters semantics plus stream timeouts."""
import pytest

from admn_ros.core.sync import ApproxTimeSync


def test_fires_when_all_inputs_within_slop():
    s = ApproxTimeSync(["a", "b", "c"], slop=0.01, timeout=1.0)
    assert s.add("a", 1.000, "A1", now=0.0) == []
    assert s.add("b", 1.004, "B1", now=0.0) == []
    out = s.add("c", 0.998, "C1", now=0.0)
    assert len(out) == 1
    assert out[0].items == {"a": "A1", "b": "B1", "c": "C1"}
    assert out[0].stamp == pytest.approx(1.004)
    assert out[0].missing == frozenset()


def test_outside_slop_does_not_fire_and_old_heads_are_dropped():
    s = ApproxTimeSync(["a", "b"], slop=0.01, timeout=10.0)
    s.add("a", 1.0, "A1", now=0.0)
    assert s.add("b", 1.05, "B1", now=0.0) == []  # too far apart: A1 can never match
    assert s.stats.unmatched == 1
    out = s.add("a", 1.051, "A2", now=0.0)
    assert [o.items for o in out] == [{"a": "A2", "b": "B1"}]


def test_late_and_duplicate_messages_never_fire():
    s = ApproxTimeSync(["a", "b"], slop=0.01, timeout=10.0)
    s.add("a", 2.0, "A2", now=0.0)
    assert len(s.add("b", 2.0, "B2", now=0.0)) == 1
    assert s.add("a", 1.9, "A_old", now=0.0) == []       # older than the emitted set
    assert s.add("b", 2.0, "B2_again", now=0.0) == []    # same stamp as emitted set
    assert s.stats.late == 2
    s.add("a", 3.0, "A3", now=0.0)
    assert s.add("a", 3.0, "A3_dup", now=0.0) == []
    assert s.stats.duplicate == 1
    out = s.add("b", 3.0, "B3", now=0.0)
    assert out[0].items == {"a": "A3", "b": "B3"}


def test_out_of_order_within_queue_still_matches_closest():
    s = ApproxTimeSync(["a", "b"], slop=0.02, timeout=10.0)
    s.add("a", 1.00, "A1", now=0.0)
    s.add("a", 1.10, "A2", now=0.0)
    out = s.add("b", 1.101, "B2", now=0.0)
    # A1 cannot match B2 (outside slop) and is dropped; A2 matches.
    assert [o.items for o in out] == [{"a": "A2", "b": "B2"}]


def test_queue_size_bounds_memory():
    s = ApproxTimeSync(["a", "b"], slop=0.001, queue_size=3, timeout=100.0)
    for i in range(10):
        s.add("a", float(i), i, now=0.0)
    assert s.queued("a") == 3
    assert s.stats.overflow == 7


def test_timed_out_stream_is_marked_missing_and_frames_continue():
    s = ApproxTimeSync(["a", "b", "c"], slop=0.01, timeout=0.5)
    t = 0.0
    for k in range(3):  # all three alive
        stamp = 1.0 + k * 0.1
        s.add("a", stamp, f"A{k}", now=t)
        s.add("b", stamp, f"B{k}", now=t)
        out = s.add("c", stamp, f"C{k}", now=t)
        assert len(out) == 1 and not out[0].missing
        t += 0.1
    # c stops. While c is within its timeout, a and b wait.
    s.add("a", 1.3, "A3", now=t)
    assert s.add("b", 1.3, "B3", now=t) == []
    # After the timeout, the waiting set fires with c missing.
    assert s.poll(now=t + 0.1) == []          # c silent 0.2 s: still waiting
    out = s.poll(now=t + 0.45)                # c silent 0.55 s > timeout, a/b 0.45 s
    assert len(out) == 1
    assert out[0].missing == frozenset({"c"})
    assert out[0].items == {"a": "A3", "b": "B3", "c": None}
    # c comes back and rejoins from its first new frame on.
    s.add("c", 2.0, "C9", now=t + 0.5)
    assert s.missing(t + 0.5) == frozenset()
    s.add("a", 2.0, "A9", now=t + 0.5)
    out = s.add("b", 2.0, "B9", now=t + 0.5)
    assert out[0].items == {"a": "A9", "b": "B9", "c": "C9"} and not out[0].missing


def test_never_seen_input_is_missing_after_timeout_from_start():
    s = ApproxTimeSync(["a", "b"], slop=0.01, timeout=0.5, start_time=100.0)
    assert s.add("a", 1.0, "A1", now=100.1) == []
    out = s.poll(now=100.6)
    assert out and out[0].items == {"a": "A1", "b": None}


def test_all_missing_fires_nothing():
    s = ApproxTimeSync(["a"], slop=0.01, timeout=0.5)
    s.add("a", 1.0, "A1", now=0.0)  # fires immediately (single input)
    assert s.poll(now=10.0) == []


@pytest.mark.parametrize("kwargs", [dict(slop=-1), dict(slop=0.1, queue_size=0), dict(slop=0.1, timeout=0)])
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        ApproxTimeSync(["a"], **kwargs)


def test_unknown_key_names_inputs():
    s = ApproxTimeSync(["a"], slop=0.1)
    with pytest.raises(KeyError, match="inputs"):
        s.add("zz", 1.0, None, now=0.0)


def test_clock_jump_before_first_data_does_not_mark_inputs_missing():
    """use_sim_time: polls at time 0 before /clock, then data at bag time 1.7e9."""
    s = ApproxTimeSync(["a", "b"], slop=0.01, timeout=0.5)
    assert s.poll(now=0.0) == [] and s.poll(now=0.3) == []
    assert s.add("a", 1.7e9, "A", now=1.7e9) == []          # b not missing yet: wait for it
    out = s.add("b", 1.7e9, "B", now=1.7e9 + 0.05)
    assert out and out[0].items == {"a": "A", "b": "B"} and not out[0].missing
