"""A bag whose storage file was cut off while it was written (a robot losing power, an
interrupted copy), in both storages: the intact messages are replayed, frame for frame as in
the whole bag, and the reader, the replay summary and the CLI name every topic with the
message counts its metadata.yaml lists and the ones recovered. A file with nothing intact
gives one error that lists the same topics and counts, all lost."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from admn_ros.bags.reader import BagFrames, BagReadError
from admn_ros.bags.record import record_sim

FRAMES = 12
CUT = 0.6   # the share of the storage file that reached the disk


def _storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def bags(request, tmp_path_factory):
    """(whole bag, the same bag cut at ``CUT`` of its storage file, storage)."""
    d = tmp_path_factory.mktemp(f"cut_{request.param}")
    whole = d / "whole"
    record_sim(whole, frames=FRAMES, seed=2, storage=request.param)
    cut = d / "cut"
    shutil.copytree(whole, cut)
    f = _storage_file(cut)
    data = f.read_bytes()
    f.write_bytes(data[: int(len(data) * CUT)])
    return whole, cut, request.param


def _frames(bag: Path) -> tuple[list, object]:
    with BagFrames(bag) as fr:
        return list(fr), fr.loss


def test_cut_bag_replays_what_is_intact(bags, caplog):
    """The frames of the cut bag are the whole bag's first frames, identical; the loss names
    every topic of metadata.yaml with its count and what was recovered, and a warning says so.

    Break tried: the sqlite3 salvage without ``PRAGMA writable_schema=ON`` (SQLite refuses the
    short file): no reader, the bag failed to open, the test failed; the MCAP scan stopping after
    the first chunk: 0 frames, the frame-count check failed."""
    whole, cut, storage = bags
    ref, no_loss = _frames(whole)
    assert no_loss is None and len(ref) == FRAMES
    with caplog.at_level(logging.WARNING, logger="admn_ros.bags.reader"):
        got, loss = _frames(cut)
    assert 0.4 * CUT * FRAMES <= len(got) < FRAMES, f"{storage}: {len(got)} of {FRAMES} frames"
    for a, b in zip(got, ref):   # the last frame may lack the streams the cut went through
        assert a.stamp_ns == b.stamp_ns and a.bad == {} and set(a.streams) == set(b.streams)
        for sid, arr in a.streams.items():
            assert (arr is None and a is got[-1]) or np.array_equal(arr, b.streams[sid]), \
                f"{storage} frame {a.index} {sid}"
        assert a.gt_xy is None or np.array_equal(a.gt_xy, b.gt_xy)
    assert all(x is not None for f in got[:-1] for x in f.streams.values())
    assert loss is not None and loss.has_metadata
    topics = {t.topic: t for t in loss.topics}
    assert len(topics) == 25 and all(t.expected == FRAMES for t in topics.values())
    img = topics["/node1/color/image_raw"]
    assert len(got) <= img.recovered < FRAMES and img.lost == FRAMES - img.recovered
    text = loss.text()
    assert f"recovered {loss.recovered} of {25 * FRAMES} messages listed in metadata.yaml" in text
    assert f"/node1/color/image_raw {img.lost} of {FRAMES}" in text and str(_storage_file(cut)) in text
    assert any(text in r.getMessage() for r in caplog.records), "no warning names the loss"


def test_replay_summary_and_cli_report_the_loss(bags, tmp_path, capsys):
    """``admn-ros replay`` of the cut bag exits 0, replays the intact frames and prints the
    loss; the summary JSON keeps it.

    Break tried: ``ReplaySummary.text`` without the ``bag lost`` line: the test failed."""
    import json

    from admn_ros.bags.replay_cli import main as replay_main

    _, cut, storage = bags
    rc = replay_main([str(cut), "--pipeline", "baseline", "--out", str(tmp_path / "r"), "--no-bag",
                      "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "bag lost   bag " in out and "messages listed in metadata.yaml; lost: /node1/color/image_raw" in out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["lost"].startswith(f"bag {cut}: storage file") and 0 < summary["frames"] < FRAMES


def test_nothing_intact_is_one_error_naming_what_was_lost(bags, tmp_path):
    """Cut inside the file's first records: one ``BagReadError`` naming the file and every topic
    of metadata.yaml with its count, all lost.

    Break tried: the error without the metadata.yaml listing (the former message, "database
    disk image is malformed" / "File end magic is invalid" alone): the test failed."""
    _, cut, storage = bags
    early = tmp_path / "early"
    shutil.copytree(cut, early)
    f = _storage_file(early)
    f.write_bytes(f.read_bytes()[:600])
    with pytest.raises(BagReadError) as ei:
        BagFrames(early)
    msg = str(ei.value)
    assert f"cannot read bag {early}" in msg and str(f) in msg
    assert f"recovered 0 of {25 * FRAMES} messages listed in metadata.yaml" in msg
    assert f"/node1/color/image_raw {FRAMES} of {FRAMES}" in msg and f"/ground_truth/target {FRAMES} of {FRAMES}" in msg


_KILLED_RECORDER = """
import os, sys
import numpy as np
from admn_ros.bags import msgs
from admn_ros.bags.record import open_writer
from admn_ros.bags.typestore import get_admn_typestore

w = open_writer(sys.argv[1], "sqlite3")
ts = get_admn_typestore()
cams = [w.add_connection(f"/node{i}/{m}", "sensor_msgs/msg/Image", typestore=ts) for m in ("rgb", "depth")
        for i in (1, 2, 3)]
pose = w.add_connection("/pose", "geometry_msgs/msg/PoseStamped", typestore=ts)
rng = np.random.default_rng(0)
for ms in range(0, 4440, 10):  # a pose every 10 ms, images every 70 ms, a commit each second, then the kill
    t = 1_700_000_000_000_000_000 + ms * 1_000_000
    w.write(pose, t, msgs.serialize(msgs.new_msg("geometry_msgs/msg/PoseStamped", header=msgs.header(t),
                                                 pose=msgs.pose(ms * 1e-3, 0.0))))
    for k, c in enumerate(cams if ms % 70 == 0 else ()):
        arr, enc = ((rng.integers(0, 255, (240, 320, 3), np.uint8), "rgb8") if k < 3 else
                    (rng.integers(0, 9000, (240, 320), np.uint16), "16UC1"))
        w.write(c, t + k, msgs.serialize(msgs.image(arr, enc, msgs.header(t))))
    if ms % 1000 == 990:
        w.storage.conn.commit()
os._exit(9)
"""


def test_a_sqlite3_recording_killed_inside_a_transaction_reads_what_it_committed(tmp_path, caplog):
    """A sqlite3 recorder killed between two commits (a crash or power loss of `admn-ros record`)
    leaves the .db3 with a -journal next to it and rows of the open transaction spilled into the
    file, some without their index entries. Every frame of the 4 committed seconds is read, with
    its ground truth, and a warning names the journal.
    Breaks tried: reading it as an intact bag: "is truncated: read fewer messages than its index
    lists"; the salvage opening it ``mode=ro`` (SQLite wants to roll the journal back): no reader."""
    import os
    import subprocess
    import sys

    bag = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    subprocess.run([sys.executable, "-c", _KILLED_RECORDER, str(bag)], env=env, timeout=120)
    assert (bag / "killed.db3-journal").is_file() and not (bag / "metadata.yaml").exists()
    mapping = {"streams": {f"node{i}/{m}": f"/node{i}/{m}" for m in ("rgb", "depth") for i in (1, 2, 3)},
               "ground_truth": "/pose"}
    with caplog.at_level(logging.WARNING, logger="admn_ros.bags.reader"):
        with BagFrames(bag, mapping) as bf:
            frames = list(bf)
    assert len(frames) >= 58 and all(f.present.all() and f.gt_xy is not None for f in frames)
    assert any("killed.db3-journal: the recording ended inside a transaction" in r.getMessage()
               for r in caplog.records)
