"""The per-stream health check (admn_ros.core.health) and its place in StreamSync: frozen
content, stalled and jumping stamps, recovery, and no false alarm on clean simulated streams
(a parked target with live sensor noise, an empty scene, clean radar maps)."""
from __future__ import annotations

import numpy as np
import pytest

from admn_ros.core.health import (HEALTH_OFF, HealthConfig, StreamHealth, content_signature, stream_status,
                                  unhealthy)
from admn_ros.core.preprocess import to_model_input
from admn_ros.core.runtime import FrameWindow
from admn_ros.core.streams import allocation_fields, split_stream_id
from admn_ros.core.sync import StreamSync

P = 66_666_667          # 15 Hz in ns
T0 = 1_700_000_000 * 10**9
CFG = HealthConfig()


def _noisy(rng, shape=(3, 64, 64)) -> np.ndarray:
    return content_signature(np.clip(0.5 + 0.01 * rng.standard_normal(shape), 0, 1).astype(np.float32))


def _feed(h: StreamHealth, k: int, sig, stamp_ns: int | None = None, now: float | None = None) -> str:
    return h.update(T0 + k * P if stamp_ns is None else stamp_ns, (k * P) * 1e-9 if now is None else now, sig)


def test_frozen_after_frozen_frames_repeats_and_rejoins_after_recover_frames():
    """Break tried: freezing only after more than frozen_frames repeats, and rejoining at the
    first changed message (recover_frames ignored), both fail here."""
    rng = np.random.default_rng(0)
    h = StreamHealth(CFG)
    for k in range(10):
        assert _feed(h, k, _noisy(rng)) == "ok"
    held = _noisy(rng)
    states = [_feed(h, 10 + j, held.copy()) for j in range(CFG.frozen_frames + 1)]
    # the first held message is new content; the next frozen_frames repeat it
    assert states[:CFG.frozen_frames] == ["ok"] * CFG.frozen_frames and states[-1] == "frozen"
    assert h.events["frozen"] == 1 and not h.healthy
    for j in range(20):                          # still frozen while it repeats
        assert _feed(h, 20 + j, held.copy()) == "frozen"
    back = [_feed(h, 40 + j, _noisy(rng)) for j in range(CFG.recover_frames)]
    assert back == ["frozen"] * (CFG.recover_frames - 1) + ["ok"]
    assert h.events["frozen"] == 1


def test_a_change_below_the_tolerance_is_a_repeat_and_off_means_off():
    """Break tried: comparing the change with 0 instead of the tolerance never froze the stream;
    ignoring frozen_frames = 0 (rule off) froze it."""
    rng = np.random.default_rng(1)
    base = _noisy(rng)
    h = StreamHealth(HealthConfig(frozen_frames=3, frozen_tolerance=1e-3))
    states = [_feed(h, k, base + 1e-4 * (k % 2)) for k in range(5)]
    assert states[-1] == "frozen"
    off = StreamHealth(HEALTH_OFF)
    assert {_feed(off, k, base) for k in range(50)} == {"ok"}


def test_stalled_stamps_and_recovery():
    """Break tried: treating an equal stamp as advancing never stalled; not resetting the stall
    count on an advancing stamp stalled a stream with one reordered message per frame."""
    rng = np.random.default_rng(2)
    h = StreamHealth(CFG)
    for k in range(5):
        _feed(h, k, _noisy(rng))
    stuck = T0 + 4 * P
    states = [_feed(h, 5 + j, _noisy(rng), stamp_ns=stuck) for j in range(CFG.stall_frames)]
    assert states == ["ok"] * (CFG.stall_frames - 1) + ["stalled"]
    back = [_feed(h, 10 + j, _noisy(rng)) for j in range(CFG.recover_frames)]
    assert back[-1] == "ok" and back[:-1] == ["stalled"] * (CFG.recover_frames - 1)
    # one message a frame arriving out of order (within max_jump_s) never stalls
    r = StreamHealth(CFG)
    for k in range(60):
        _feed(r, k, _noisy(rng))
        assert _feed(r, k, _noisy(rng), stamp_ns=T0 + (k - 3) * P) == "ok"


def test_jumping_stamps_back_and_ahead_of_the_clock_but_not_a_silent_gap():
    """Break tried: measuring the forward jump without subtracting the clock's advance flagged
    a stream that came back after 3 s of silence; not re-anchoring the newest stamp after a jump
    kept the stepped-back stream stalled."""
    rng = np.random.default_rng(3)
    jump = int(CFG.max_jump_s * 1e9)
    h = StreamHealth(CFG)
    for k in range(10):
        _feed(h, k, _noisy(rng))
    # silence for 3 s: stamps and clock advance alike
    assert _feed(h, 55, _noisy(rng)) == "ok"
    assert _feed(h, 56, _noisy(rng), stamp_ns=T0 + 52 * P) == "ok"       # reordered
    # a step back beyond reordering (from the newest stamp, 55)
    assert _feed(h, 57, _noisy(rng), stamp_ns=T0 + 54 * P - jump) == "stalled"
    states = [_feed(h, 58 + j, _noisy(rng), stamp_ns=T0 + (55 + j) * P - jump) for j in range(CFG.recover_frames)]
    assert states[-1] == "ok"                  # re-anchored: its new stamps advance again
    # a step ahead of the clock
    g = StreamHealth(CFG)
    for k in range(10):
        _feed(g, k, _noisy(rng))
    assert _feed(g, 10, _noisy(rng), stamp_ns=T0 + 10 * P + 2 * jump) == "stalled"
    assert g.events["stalled"] == 1


def _sim_streams(task: str, frames: int, target: str):
    from admn_ros.core.tasks import get_task

    sim = get_task(task).simulator(seed=0, episode=0)
    if task == "tracking":   # parked where it is at 3 s, or out of every view (an empty scene)
        pose = sim.scene.trajectory.pose(3.0) if target == "still" else (50.0, 50.0, 0.0)
        object.__setattr__(sim.scene, "trajectory", type("Still", (), {"pose": lambda self, t: pose})())
    else:                    # the subject holds one pose
        p0 = sim.performance.params(np.array([2.0]))
        sim.performance.params = lambda times: np.repeat(p0, np.size(times), 0)
    for _ in range(frames):
        yield {sid: sf.data for sid, sf in sim.step().streams.items()}


@pytest.mark.parametrize("task,target", [("tracking", "still"), ("tracking", "empty"), ("activity", "still")])
def test_no_false_alarm_on_clean_simulated_streams(task, target):
    """A parked target (or none) with live sensor noise and clean radar maps stays ok, and
    every change of content is far above the tolerance (only exact repeats of the simulator's
    noise bank come close: 1 frame in 6 of an empty scene's cameras, 1 in 4 of a still subject's).

    Break tried: frozen_frames = 2 froze the empty scene's and the still subject's cameras; a
    tolerance of 1e-5 left the parked target's depth changes within 10x of it; a signature of
    one pixel per 8x8 block missed the parked target, so its cameras repeated exactly 9% of
    the time (0 with every second pixel)."""
    healths: dict[str, StreamHealth] = {}
    prev: dict[str, np.ndarray] = {}
    changes: list[float] = []
    rate = 15.0 if task == "tracking" else 10.0
    for k, streams in enumerate(_sim_streams(task, 90, target)):
        for sid, a in streams.items():
            sig = content_signature(to_model_input(split_stream_id(sid)[1], a))
            if sid in prev:
                changes.append(float(np.mean(np.abs(sig - prev[sid]))))
            prev[sid] = sig
            st = healths.setdefault(sid, StreamHealth(CFG)).update(T0 + int(k * 1e9 / rate), k / rate, sig)
            assert st == "ok", (sid, k)
    assert len(healths) == (9 if task == "tracking" else 3)
    c = np.array(changes)
    assert c[c > 0].min() > 10 * CFG.frozen_tolerance
    assert np.mean(c == 0) < (0.02 if target == "still" and task == "tracking" else 0.35)


def test_streamsync_leaves_an_unhealthy_input_out_and_says_why():
    """Break tried: keeping an unhealthy input among the live ones made the frames wait for its
    frozen messages (status ok); taking a timed-out input's status from its health check
    reported a silent frozen stream as frozen instead of missing."""
    rng = np.random.default_rng(4)
    sync = StreamSync(["a", "b"], slop=0.01, queue_size=5, timeout=0.5, health=HealthConfig(frozen_frames=3))
    held = _noisy(rng)
    sets = []
    for k in range(20):
        t = k / 15
        sets += sync.add("a", T0 + k * P, f"a{k}", t, _noisy(rng))
        sig_b = held if 5 <= k < 12 else _noisy(rng)
        sets += sync.add("b", T0 + k * P + 1000, f"b{k}", t, sig_b)
    by_k = {int(s.items["a"][1:]): s for s in sets}
    assert sorted(by_k) == list(range(20))          # every frame fired
    frozen = [k for k, s in by_k.items() if s.status["b"] == "frozen"]
    # repeats 1..3 at k = 6..8; the 3rd changed message (k = 14) rejoins, after frame 14 fired on "a"
    assert frozen == list(range(8, 15))
    for k in frozen:
        assert by_k[k].items["b"] is None and "b" in by_k[k].missing
    assert by_k[15].items["b"] == "b15" and by_k[15].status == {"a": "ok", "b": "ok"}
    # a frozen input that goes silent is missing
    for k in range(20, 24):
        sync.add("b", T0 + k * P, "b", k / 15, held)
        sync.add("b", T0 + k * P + 1, "b", k / 15, held)
    assert sync.status()["b"] == "frozen"
    assert sync.status(30.0)["b"] == "missing"
    assert sync.health["b"].events["frozen"] == 2


def test_stream_status_and_allocation_fields():
    """Break tried: passing the synchronizer's ``ok`` through for a stream without data (it was in
    the frame but has no input) reported it ok; allocation_fields ignoring stream_status."""
    ids = ["node1/rgb", "node1/depth", "node1/radar"]
    st = stream_status(ids, [True, False, False], {"node1/rgb": "ok", "node1/depth": "frozen", "node1/radar": "ok"})
    assert st == ["ok", "frozen", "missing"]
    assert stream_status(ids, [False] * 3, {}) == ["missing"] * 3
    assert unhealthy({"a": "ok", "b": "stalled", "c": "missing", "d": "frozen"}) == ["b", "d"]
    f = allocation_fields(np.zeros((3, 12), bool), ids, present=[True, False, True])
    assert f["stream_status"] == ["ok", "missing", "ok"]
    assert allocation_fields(np.zeros((3, 12), bool), ids, stream_status=st)["stream_status"] == st
    with pytest.raises(ValueError, match="stream_status has 2 entries"):
        allocation_fields(np.zeros((3, 12), bool), ids, stream_status=st[:2])


def test_window_forgets_an_unhealthy_stream_everywhere():
    """Break tried: keeping the cached embeddings of a forgotten stream."""
    w = FrameWindow(3, ["a", "b"])
    for k in range(3):
        f = w.push(k, {"a": np.zeros(1), "b": np.ones(1)})
        f.cache["b"] = (b"", np.ones(1))
    w.forget(["b"])
    assert all("b" not in f.inputs and "a" in f.inputs and "b" not in f.cache for f in w.items)
    assert len(w) == 3 and set(w.newest_inputs()) == {"a"}


def test_health_config_checks_and_from_params():
    """Break tried: from_params without the type conversion kept max_jump_s an int."""
    with pytest.raises(ValueError, match="frozen_frames must be >= 0"):
        HealthConfig(frozen_frames=-1)
    p = {"frozen_frames": 4, "frozen_tolerance": 0, "stall_frames": 2, "max_jump_s": 3, "recover_frames": 1, "x": 0}
    c = HealthConfig.from_params(p)
    assert c == HealthConfig(4, 0.0, 2, 3.0, 1) and isinstance(c.max_jump_s, float)


@pytest.mark.parametrize("offset_s", [0.8, -0.8, -3600.0])
def test_a_stream_whose_clock_is_off_is_stalled_and_the_frames_go_on(offset_s):
    """A sensor whose clock is off (stamps 0.8 s ahead or behind the others', or an hour behind)
    never matches them; it is stalled after ``stall_frames`` such messages, every frame still fires
    without it, and it rejoins once its clock is right again (after it went ahead: once its stamps
    pass those it sent ahead). Break tried: no stamp comparison across the streams (no frame fired
    from the offset on, the stream stayed ok); comparing with the clock instead of the other
    streams flagged every stream of a replay whose clock is not the stamps'."""
    rng = np.random.default_rng(5)
    keys = ["a", "b", "c", "d"]
    sync = StreamSync(keys, slop=0.03, queue_size=10, timeout=0.5, health=CFG)
    fired: dict[int, object] = {}
    for k in range(60):
        t = 1000.0 + k / 15          # the node clock is not the stamps' clock
        off = int(offset_s * 1e9) if 10 <= k < 40 else 0
        for key in keys:
            stamp = T0 + k * P + (off if key == "d" else 0)
            for s in sync.add(key, stamp, k, t, _noisy(rng)):
                fired[s.items["a"]] = s
    assert sorted(fired) == list(range(60))           # every frame fired
    stalled = [k for k, s in fired.items() if s.status["d"] == "stalled"]
    assert stalled[0] == 10 and all(fired[k].items["d"] is None for k in stalled)
    # back in step: stamps that went ahead stall it until they are passed, then recover_frames
    assert max(stalled) <= 40 + max(offset_s, 0) * 15 + CFG.recover_frames
    assert fired[59].status == dict.fromkeys(keys, "ok")
    assert all(s.status[key] == "ok" for s in fired.values() for key in "abc")
    assert sync.health["d"].events["stalled"] >= 1


def test_a_late_delivery_is_not_a_clock_that_is_off():
    """Two messages of one stream delivered 0.2 s late (a busy node or link; twice the stream timeout)
    cannot join their frames, which fire without them, but the stream stays ok and is in every frame
    from the next on time. Break tried: stalling on the first message whose stamp lies apart (the stream left
    out of the next recover_frames frames too)."""
    rng = np.random.default_rng(7)
    keys = ["a", "b", "c", "d"]
    sync = StreamSync(keys, slop=0.03, queue_size=10, timeout=0.1, health=CFG)
    fired: dict[int, object] = {}
    late: list[int] = []
    for k in range(40):
        t = 1000.0 + k / 15
        for key in keys:
            if key == "d" and k in (20, 21):
                late.append(k)
                continue
            for s in sync.add(key, T0 + k * P, k, t, _noisy(rng)):
                fired[s.items["a"]] = s
            if key == "d" and k == 23:
                for j in late:
                    for s in sync.add("d", T0 + j * P, j, t, _noisy(rng)):
                        fired[s.items["a"]] = s
        for s in sync.poll(t + 0.5 / 15):
            fired[s.items["a"]] = s
    assert sorted(fired) == list(range(40))
    assert all(fired[k].items["d"] is not None for k in range(23, 40))  # 22: d silent for 2 timeouts
    assert all(s.status["d"] in ("ok", "missing") for s in fired.values()) and not sync.health["d"].events


def test_turning_a_rule_off_at_run_time_releases_the_streams_it_holds():
    """frozen_frames / stall_frames and max_jump_s set to 0 while a stream is frozen / stalled (an
    operator silencing a false alarm): it rejoins after recover_frames messages although its content
    still repeats / its stamps still do not advance. Break tried: recovery that still asks for changed
    content and advancing stamps kept both streams out for good."""
    rng = np.random.default_rng(6)
    sync = StreamSync(["a", "b", "c"], slop=0.01, queue_size=5, timeout=0.5, health=CFG)
    held, stuck = _noisy(rng), T0 + 10 * P
    for k in range(30):
        if k == 20:
            sync.configure(health=HealthConfig(frozen_frames=0, stall_frames=0, max_jump_s=0.0))
        sync.add("a", T0 + k * P, k, k / 15, _noisy(rng))
        sync.add("b", T0 + k * P, k, k / 15, held if k >= 5 else _noisy(rng))
        sync.add("c", min(T0 + k * P, stuck), k, k / 15, _noisy(rng))
        if k == 19:
            assert sync.status() == {"a": "ok", "b": "frozen", "c": "stalled"}
    assert sync.status() == {"a": "ok", "b": "ok", "c": "ok"}
    assert sync.health["b"].events["frozen"] == 1 and sync.health["c"].events["stalled"] == 1
