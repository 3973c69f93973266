"""Synchronizers with message_filters semantics (admn_ros.core.sync, rclpy-free).

The first group replays the scenarios of message_filters' own Python synchronizer tests
(approximate sync: pairs, shuffled arrival within queue N, headerless inputs; exact sync:
queue length, old messages dropped after a set, shifted signalling) against our classes.
The rest pins what users rely on: strict ``slop``, which messages are kept and which are
deleted, emission order, queue trimming, ``queue_offset``, arrival-time stamps, and the
stream-timeout layer (:class:`StreamSync`)."""
from __future__ import annotations

import random

import pytest

from admn_ros.core.sync import (ApproximateTimeSynchronizer, SimpleFilter, StreamSync, TimeSynchronizer,
                                header_stamp_ns, stamp_to_ns)

S = 1_000_000_000  # ns per second


class Stamp:
    """builtin_interfaces/Time-like stamp."""

    def __init__(self, ns: int) -> None:
        self.sec, self.nanosec = divmod(int(ns), S)


class Header:
    def __init__(self, ns: int) -> None:
        self.stamp = Stamp(ns)


class Msg:
    def __init__(self, ns: int, tag: object = None) -> None:
        self.header = Header(ns)
        self.tag = tag

    def __repr__(self) -> str:
        return f"Msg({header_stamp_ns(self)}, {self.tag!r})"


class Headerless:
    def __init__(self, tag: object = None) -> None:
        self.tag = tag


def wire(sync_cls, n: int, *args, **kwargs):
    """``n`` input filters, the synchronizer over them and the list its sets go to."""
    inputs = [SimpleFilter() for _ in range(n)]
    sync = sync_cls(inputs, *args, **kwargs)
    got: list[tuple] = []
    sync.registerCallback(lambda *msgs: got.append(msgs))
    return inputs, sync, got


# ---------------------------------------------------------------------------- upstream scenarios
def test_pairs_with_equal_stamps_fire_on_the_second_message():
    a, b = SimpleFilter(), SimpleFilter()
    sync = ApproximateTimeSynchronizer([a, b], 1, 0.1)
    got: list = []
    sync.registerCallback(lambda m0, m1: got.append((m0, m1)))
    for t in range(10):
        got.clear()
        m0, m1 = Msg(t * S, 33), Msg(t * S, 34)
        a.signalMessage(m0)
        assert got == []
        b.signalMessage(m1)
        assert got == [(m0, m1)]


@pytest.mark.parametrize("n", range(1, 10))
def test_shuffled_sequences_within_the_queue_recombine(n):
    rng = random.Random(n)
    (a, b), _, got = wire(ApproximateTimeSynchronizer, 2, n, 0.1)
    seq0 = [Msg(t * S, rng.random()) for t in range(n)]
    seq1 = [Msg(t * S, rng.random()) for t in range(n)]
    for m in rng.sample(seq0, n):
        a.signalMessage(m)
    assert got == []
    for m in rng.sample(seq1, n):
        b.signalMessage(m)
    assert set(got) == set(zip(seq0, seq1))


@pytest.mark.parametrize("n", range(1, 10))
def test_headerless_messages_take_the_clock_when_allowed(n):
    rng = random.Random(n)
    now = [1_700_000_000 * S]
    (a, b), _, got = wire(ApproximateTimeSynchronizer, 2, n, 10, allow_headerless=True,
                          clock=lambda: now[0])
    seq0 = [Msg(now[0] + t * S, rng.random()) for t in range(n)]
    seq1 = [Headerless(rng.random()) for _ in range(n)]
    for m in rng.sample(seq0, n):
        a.signalMessage(m)
    assert got == []
    for m in seq1:
        now[0] += 1000       # the clock moves on a little between arrivals
        b.signalMessage(m)
    assert set(got) == set(zip(seq0, seq1))


@pytest.mark.parametrize("n", range(1, 10))
def test_exact_sync_recombines_in_order_within_queue_length(n):
    (a, b), _, got = wire(TimeSynchronizer, 2, n)
    seq0 = [Msg(t * S, 0) for t in range(n)]
    seq1 = [Msg(t * S, 0) for t in range(n)]
    for m in seq0:
        a.signalMessage(m)
    assert got == []
    for m in seq1:
        b.signalMessage(m)
    assert set(got) == set(zip(seq0, seq1))


def exact_two_frames():
    """Exact sync of two inputs and frames x (t=0) and y (t=1 s): ``a, b, got, (x0, x1, y0, y1)``."""
    (a, b), _, got = wire(TimeSynchronizer, 2, 10)
    return a, b, got, (Msg(0, 1), Msg(0, 2), Msg(S, 1), Msg(S, 2))


def test_exact_sync_drops_messages_older_than_a_set():
    """Break tried: keeping older messages after a set (the pre-Kilted Python behaviour)
    makes x1 fire (x0, x1) and this test fail."""
    a, b, got, (x0, x1, y0, y1) = exact_two_frames()
    a.signalMessage(x0)
    b.signalMessage(y1)
    assert got == []
    a.signalMessage(y0)
    assert got == [(y0, y1)]
    b.signalMessage(x1)
    assert got == [(y0, y1)]


def test_exact_sync_shifted_signalling():
    a, b, got, (x0, x1, y0, y1) = exact_two_frames()
    a.signalMessage(x0)
    a.signalMessage(y0)
    assert got == []
    b.signalMessage(x1)
    assert got == [(x0, x1)]
    b.signalMessage(y1)
    assert got == [(x0, x1), (y0, y1)]


def test_exact_sync_needs_stamps():
    (a, _), _, _ = wire(TimeSynchronizer, 2, 10)
    with pytest.raises(ValueError, match="header.stamp"):
        a.signalMessage(Headerless())


# ---------------------------------------------------------------------------- approximate: details
def test_slop_is_strict_and_truncated_to_nanoseconds():
    """Break tried: ``<=`` instead of ``<`` for the spread fires the first pair."""
    (a, b), _, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.03)
    a.signalMessage(Msg(S))
    b.signalMessage(Msg(S + 30_000_000))           # exactly slop apart: no set
    assert got == []
    b.signalMessage(Msg(S + 29_999_999))
    assert [(header_stamp_ns(x), header_stamp_ns(y)) for x, y in got] == [(S, S + 29_999_999)]
    # 0.5125 s is 512499999.99... ns as a float: truncated like rclpy Duration(seconds=0.5125)
    (a, b), sync, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.5125)
    assert sync.slop_ns == 512_499_999
    a.signalMessage(Msg(S))
    b.signalMessage(Msg(S + 512_499_999))
    assert got == []


def test_arriving_message_is_the_anchor_and_the_nearest_candidate_wins():
    """Break tried: anchoring on the newest queue head (the old policy) pairs B with A1."""
    (a, b), _, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.05)
    a1, a2 = Msg(S, "a1"), Msg(S + 40_000_000, "a2")
    a.signalMessage(a1)
    a.signalMessage(a2)
    b.signalMessage(Msg(S + 30_000_000, "b"))      # a1 is 30 ms away, a2 10 ms: a2 first
    assert [(x.tag, y.tag) for x, y in got] == [("a2", "b")]


def test_only_the_fired_messages_are_deleted_and_an_older_set_fires_later():
    """Break tried: purging everything at or before a fired set (the old policy) loses the
    second, older set."""
    (a, b, c), sync, got = wire(ApproximateTimeSynchronizer, 3, 10, 0.01)
    a.signalMessage(Msg(1 * S, "a1"))
    b.signalMessage(Msg(1 * S, "b1"))
    a.signalMessage(Msg(2 * S, "a2"))
    b.signalMessage(Msg(2 * S, "b2"))
    c.signalMessage(Msg(2 * S, "c2"))
    assert [tuple(m.tag for m in s) for s in got] == [("a2", "b2", "c2")]
    assert [sorted(q) for q in sync.queues] == [[S], [S], []]     # the older messages stay
    c.signalMessage(Msg(1 * S, "c1"))                             # a late message for frame 1
    assert [tuple(m.tag for m in s) for s in got] == [("a2", "b2", "c2"), ("a1", "b1", "c1")]


def test_at_most_one_set_per_message_and_the_rest_waits():
    (a, b), sync, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.01)
    a.signalMessage(Msg(1 * S))
    a.signalMessage(Msg(2 * S))
    b.signalMessage(Msg(2 * S))
    assert len(got) == 1 and sorted(sync.queues[0]) == [S]


def test_product_order_first_input_varies_slowest():
    """Among equally near candidates the first combination in product order fires."""
    (a, b, c), _, got = wire(ApproximateTimeSynchronizer, 3, 10, 0.05)
    a.signalMessage(Msg(S - 10_000_000, "a-"))
    a.signalMessage(Msg(S + 10_000_000, "a+"))     # same distance as a-: queue order decides
    b.signalMessage(Msg(S + 20_000_000, "b+"))
    b.signalMessage(Msg(S - 20_000_000, "b-"))
    c.signalMessage(Msg(S, "c"))
    # a: [a-, a+] (tie: queue order); b: [b+, b-]; first pair with spread < 50 ms: (a-, b+)
    assert [tuple(m.tag for m in s) for s in got] == [("a-", "b+", "c")]


def test_queue_trimming_drops_the_oldest_stamps_even_the_new_message():
    (a, b), sync, got = wire(ApproximateTimeSynchronizer, 2, 2, 0.01)
    for t in (5, 3, 4):
        a.signalMessage(Msg(t * S))
    assert sorted(sync.queues[0]) == [4 * S, 5 * S]
    a.signalMessage(Msg(1 * S))                    # older than everything: trimmed at once
    assert sorted(sync.queues[0]) == [4 * S, 5 * S]
    b.signalMessage(Msg(1 * S))
    assert got == []


def test_same_stamp_twice_replaces_the_queued_message_in_place():
    (a, b), sync, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.01)
    a.signalMessage(Msg(S, "first"))
    a.signalMessage(Msg(S, "second"))
    assert len(sync.queues[0]) == 1
    b.signalMessage(Msg(S, "b"))
    assert [(x.tag, y.tag) for x, y in got] == [("second", "b")]


def test_headerless_message_is_dropped_with_a_warning_by_default(caplog):
    (a, b), sync, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.1)
    with caplog.at_level("WARNING", logger="message_filters_approx"):
        a.signalMessage(Headerless())
    assert sync.queues == [{}, {}] and "allow_headerless" in caplog.text


def test_arrival_time_stamps_ignore_the_header():
    now = [50 * S]
    (a, b), _, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.1, sync_arrival_time=True, clock=lambda: now[0])
    a.signalMessage(Msg(1 * S, "a"))
    now[0] += 5_000_000
    b.signalMessage(Msg(9 * S, "b"))               # header stamps 8 s apart, arrivals 5 ms
    assert [(x.tag, y.tag) for x, y in got] == [("a", "b")]


def test_queue_offset_shifts_stamps_per_input():
    """With an offset on the first input, its messages are keyed shifted; a set fires when a
    message of the unshifted input arrives (the arriving message enters with its own stamp)."""
    (a, b), sync, got = wire(ApproximateTimeSynchronizer, 2, 10, 0.01, queue_offset=[100_000_000, 0])
    a.signalMessage(Msg(S + 100_000_000, "a"))     # keyed at 1 s
    assert list(sync.queues[0]) == [S]
    b.signalMessage(Msg(S, "b"))
    assert [(x.tag, y.tag) for x, y in got] == [("a", "b")]


def test_stamps_of_every_kind():
    class RclpyTime:
        nanoseconds = 7

    assert stamp_to_ns(5) == 5 and stamp_to_ns(RclpyTime()) == 7 and stamp_to_ns(Stamp(3 * S + 4)) == 3 * S + 4
    with pytest.raises(TypeError, match="not a stamp"):
        stamp_to_ns("x")


def test_callbacks_get_the_registration_arguments_and_can_be_removed():
    f = SimpleFilter()
    got: list = []
    c1 = f.registerCallback(lambda m, tag: got.append((m, tag)), "one")
    f.registerCallback(lambda m: got.append((m, "two")))
    f.signalMessage(1)
    f.unregisterCallback(c1)
    f.signalMessage(2)
    assert got == [(1, "one"), (1, "two"), (2, "two")]


# ---------------------------------------------------------------------------- stream timeouts
def sets_of(out) -> list[dict]:
    return [{k: v for k, v in s.items.items()} for s in out]


def test_stream_sync_passes_the_synchronizer_sets_through():
    s = StreamSync(["a", "b", "c"], slop=0.01, timeout=1.0)
    assert s.add("a", 1 * S, "A1", now=0.0) == []
    assert s.add("b", 1 * S + 4_000_000, "B1", now=0.0) == []
    out = s.add("c", 1 * S - 2_000_000, "C1", now=0.0)
    assert sets_of(out) == [{"a": "A1", "b": "B1", "c": "C1"}]
    assert out[0].stamp_ns == 1 * S + 4_000_000 and out[0].missing == frozenset()
    assert out[0].stamps_ns == {"a": S, "b": S + 4_000_000, "c": S - 2_000_000}


def test_a_set_older_than_an_emitted_one_is_dropped_as_stale():
    """Break tried: emitting every set the synchronizer fires lets the old frame through
    after the newer one."""
    s = StreamSync(["a", "b"], slop=0.01, timeout=10.0)
    s.add("a", 1 * S, "A1", now=0.0)
    s.add("a", 2 * S, "A2", now=0.0)
    assert sets_of(s.add("b", 2 * S, "B2", now=0.0)) == [{"a": "A2", "b": "B2"}]
    assert s.add("b", 1 * S, "B1", now=0.0) == []          # message_filters fires (A1, B1) now
    assert (s.stats.stale_sets, s.stats.stale, s.stats.sets, s.stats.queued) == (1, 2, 1, 0)
    assert s.stats.stale == 2 and s.stats.discarded == 0


def test_timed_out_stream_is_missing_and_frames_go_on_then_it_rejoins():
    s = StreamSync(["a", "b", "c"], slop=0.01, timeout=0.5)
    t = 0.0
    for k in range(3):
        stamp = S + k * 100_000_000
        s.add("a", stamp, f"A{k}", now=t)
        s.add("b", stamp, f"B{k}", now=t)
        out = s.add("c", stamp, f"C{k}", now=t)
        assert len(out) == 1 and not out[0].missing
        t += 0.1
    s.add("a", S + 300_000_000, "A3", now=t)
    assert s.add("b", S + 300_000_000, "B3", now=t) == []   # c is still live: wait for it
    assert s.poll(now=t + 0.1) == []
    out = s.poll(now=t + 0.45)                              # c silent 0.55 s > timeout
    assert sets_of(out) == [{"a": "A3", "b": "B3", "c": None}] and out[0].missing == frozenset({"c"})
    assert s.live == ("a", "b") and s.missing_count == {"a": 0, "b": 0, "c": 1}
    s.add("c", 2 * S, "C9", now=t + 0.5)                    # c rejoins with its next message
    assert s.missing(t + 0.5) == frozenset() and s.live == ("a", "b", "c")
    s.add("a", 2 * S, "A9", now=t + 0.5)
    out = s.add("b", 2 * S, "B9", now=t + 0.5)
    assert sets_of(out) == [{"a": "A9", "b": "B9", "c": "C9"}] and not out[0].missing


def test_while_every_input_is_live_the_sets_are_the_synchronizers():
    """Random streams, no timeouts: StreamSync emits exactly the bare synchronizer's sets
    (minus stale ones)."""
    rng = random.Random(7)
    events = []
    for k in range(60):
        for i in range(3):
            if rng.random() < 0.1:
                continue
            events.append((i, (k * 50 + rng.randint(-8, 8)) * 1_000_000 + S))
    for j in range(len(events) - 1):
        if rng.random() < 0.3:
            events[j], events[j + 1] = events[j + 1], events[j]
    inputs, _, got = wire(ApproximateTimeSynchronizer, 3, 5, 0.02)
    for i, ns in events:
        inputs[i].signalMessage(Msg(ns, (i, ns)))
    bare = [tuple(m.tag[1] for m in st) for st in got]
    s = StreamSync([0, 1, 2], slop=0.02, queue_size=5, timeout=1e6)
    out = [st for i, ns in events for st in s.add(i, ns, ns, now=0.0)]
    newest, in_order = None, []
    for st in bare:
        if newest is None or max(st) > newest:
            in_order.append(st)
            newest = max(st)
    assert [tuple(st.items[i] for i in range(3)) for st in out] == in_order
    assert s.stats.rebuilds == 1 and s.stats.stale_sets == len(bare) - len(in_order) > 0


def test_never_seen_input_is_missing_after_timeout_from_start():
    s = StreamSync(["a", "b"], slop=0.01, timeout=0.5, start_time=100.0)
    assert s.add("a", 1 * S, "A1", now=100.1) == []
    out = s.poll(now=100.6)
    assert sets_of(out) == [{"a": "A1", "b": None}]


def test_clock_jump_before_first_data_does_not_mark_inputs_missing():
    """use_sim_time: polls at time 0 before /clock, then data at bag time 1.7e9."""
    s = StreamSync(["a", "b"], slop=0.01, timeout=0.5)
    assert s.poll(now=0.0) == [] and s.poll(now=0.3) == []
    assert s.add("a", 17 * 10**17, "A", now=1.7e9) == []
    out = s.add("b", 17 * 10**17, "B", now=1.7e9 + 0.05)
    assert sets_of(out) == [{"a": "A", "b": "B"}] and not out[0].missing


def test_all_inputs_missing_fires_nothing_and_counts_what_was_lost():
    s = StreamSync(["a", "b"], slop=0.01, timeout=0.5)
    s.add("a", 1 * S, "A1", now=0.0)
    assert s.poll(now=10.0) == [] and s.live == ()
    assert s.stats.discarded == 1 and s.stats.queued == 0


def queued(s: StreamSync, key: str) -> int:
    """Messages of input ``key`` waiting in the synchronizer of ``s``."""
    return len(s._sync.queues[s.live.index(key)]) if key in s.live else 0


def test_configure_rebuilds_and_offers_the_queued_messages_again():
    s = StreamSync(["a", "b"], slop=0.01, timeout=10.0)
    s.add("a", 1 * S, "A1", now=0.0)
    assert s.add("b", 1 * S + 20_000_000, "B1", now=0.0) == []    # 20 ms apart: no set
    s.configure(timeout=5.0)                                       # no rebuild
    assert s.timeout == 5.0 and queued(s, "a") == 1 and queued(s, "b") == 1
    s.configure(slop=0.05)                                         # rebuild: now they match
    assert s.slop == 0.05 and queued(s, "a") == 0
    assert sets_of(s.poll(now=0.0)) == [{"a": "A1", "b": "B1"}]


@pytest.mark.parametrize("kwargs", [dict(slop=0.0), dict(slop=-1), dict(slop=0.1, queue_size=0),
                                    dict(slop=0.1, timeout=0)])
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ValueError, match="invalid sync settings"):
        StreamSync(["a"], **kwargs)


def test_unknown_key_names_inputs():
    s = StreamSync(["a"], slop=0.1)
    with pytest.raises(KeyError, match="inputs"):
        s.add("zz", 1, None, now=0.0)


def test_the_core_synchronizer_module_is_rclpy_free():
    import re
    from pathlib import Path

    import admn_ros.core.sync as mod

    assert not re.search(r"^\s*(import|from)\s+rclpy\b", Path(mod.__file__).read_text(), re.MULTILINE)
