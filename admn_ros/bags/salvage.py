"""Read what is intact of a rosbag2 whose storage file was cut off, and say what was lost.

sqlite3: rows in order up to the first one the cut went through (read-only, ``writable_schema``); MCAP: records
up to the last complete one. :class:`SalvagedReader` offers the part of ``AnyReader`` the bag readers use
(docs/DEPLOY.md, "A bag cut off while it was recorded").
"""
from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence
from urllib.parse import quote

import yaml
from rosbags.rosbag2.storage_mcap import decompress

from admn_ros.bags.typestore import get_admn_typestore

MCAP_MAGIC = b"\x89MCAP0\r\n"


class SalvagedConnection(NamedTuple):
    """One topic of a salvaged bag (the fields of a rosbags ``Connection`` the readers use)."""

    id: int
    topic: str
    msgtype: str
    msgcount: int
    owner: Any


@dataclass
class TopicLoss:
    topic: str
    msgtype: str
    expected: int | None     # from metadata.yaml (None: not listed there / no metadata.yaml)
    recovered: int

    @property
    def lost(self) -> int | None:
        return None if self.expected is None else max(self.expected - self.recovered, 0)


@dataclass
class BagLoss:
    """What a cut-off bag lost: per topic the count ``metadata.yaml`` lists and the count read."""

    bag: Path
    file: Path                # its storage file
    reason: str               # why rosbags could not open it
    topics: list[TopicLoss]
    has_metadata: bool

    @property
    def recovered(self) -> int:
        return sum(t.recovered for t in self.topics)

    def text(self) -> str:
        head = f"bag {self.bag}: storage file {self.file} is cut off or damaged ({self.reason})"
        if not self.has_metadata:
            per = ", ".join(f"{t.topic} {t.recovered}" for t in self.topics) or "none"
            return (f"{head}: recovered {self.recovered} messages ({per}); the bag has no metadata.yaml, so "
                    "what was lost is unknown")
        lost = ", ".join(f"{t.topic} {t.lost} of {t.expected}" for t in self.topics if t.lost) or "nothing"
        expected = sum(t.expected or 0 for t in self.topics)
        return f"{head}: recovered {self.recovered} of {expected} messages listed in metadata.yaml; lost: {lost}"


def bag_loss(bag: Path, file: Path, reason: str, got: dict[str, tuple[str, int]]) -> BagLoss:
    """What the bag lost when ``got`` (``topic -> (type, count)``) is what could be read of it, by the
    ``topic -> (type, count)`` of its ``metadata.yaml`` (unknown without a readable one)."""
    exp: dict[str, tuple[str, int]] | None = None
    if (bag / "metadata.yaml").is_file():
        with contextlib.suppress(yaml.YAMLError, AttributeError, TypeError, ValueError):
            info = (yaml.safe_load((bag / "metadata.yaml").read_text()) or {}).get("rosbag2_bagfile_information") or {}
            exp = {str((t.get("topic_metadata") or {}).get("name")):
                   (str((t.get("topic_metadata") or {}).get("type", "")), int(t.get("message_count", 0)))
                   for t in info.get("topics_with_message_count") or []}
    topics = [TopicLoss(t, ty, n, got[t][1] if t in got else 0) for t, (ty, n) in (exp or {}).items()]
    topics += [TopicLoss(t, ty, None, n) for t, (ty, n) in got.items() if t not in (exp or {})]
    return BagLoss(bag, file, reason, topics, has_metadata=exp is not None)


class _SqliteSource:
    """Rows of a cut-off rosbag2 sqlite3 file, in row order up to the first unreadable one."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(f"file:{quote(str(path))}?immutable=1", uri=True)
        try:
            self.con.execute("PRAGMA writable_schema=ON")   # use the pages the file has
            self.topics = {int(i): (str(n), str(t)) for i, n, t in
                           self.con.execute("SELECT id, name, type FROM topics")}
            self.index: list[tuple[int, int, int]] = []      # (timestamp, row id, topic id)
            cur = self.con.execute("SELECT id, topic_id, timestamp, data FROM messages")
            with contextlib.suppress(sqlite3.DatabaseError):  # the rest of the file is missing
                for mid, tid, ts, data in cur:
                    if not (isinstance(ts, int) and isinstance(tid, int) and isinstance(data, bytes)):
                        break                                 # a row the cut went through
                    self.index.append((ts, int(mid), tid))
        except BaseException:
            self.con.close()
            raise

    def read(self, ref: int) -> bytes:
        return bytes(self.con.execute("SELECT data FROM messages WHERE id = ?", (ref,)).fetchone()[0])

    def close(self) -> None:
        self.con.close()


class _McapSource:
    """Messages of a cut-off MCAP file: its records scanned up to the last complete one."""

    def __init__(self, path: Path) -> None:
        self.f = f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.schemas: dict[int, str] = {}
        self.topics: dict[int, tuple[str, str]] = {}
        self.index: list[tuple[int, int, int]] = []          # (log time, ref, channel id)
        self.refs: list[tuple[int, int, int]] = []            # ref -> (chunk record offset or -1, offset, length)
        self._cached: tuple[int, bytes] = (-1, b"")          # the chunk read last: (offset, its records)
        try:
            if f.read(8) != MCAP_MAGIC:
                raise ValueError("not an MCAP file (bad magic)")
            pos, size = 8, path.stat().st_size
            while pos + 9 <= size:
                f.seek(pos)
                op, length = struct.unpack("<BQ", f.read(9))
                end = pos + 9 + length
                if end > size or op in (0x02, 0x0F):           # cut off here, or the data section ended
                    break
                body = f.read(length)
                if op == 0x06:                                 # chunk: its records, decompressed
                    data, p = self._chunk(body), 0
                    while p + 9 <= len(data):
                        op, length = struct.unpack_from("<BQ", data, p)
                        self._record(op, data[p + 9:p + 9 + length], pos, p + 9)
                        p += 9 + length
                else:
                    self._record(op, body, -1, pos + 9)
                pos = end
        except BaseException:
            f.close()
            raise

    @staticmethod
    def _chunk(body: bytes) -> bytes:
        _, _, usize, crc, n = struct.unpack_from("<QQQII", body, 0)   # ..., compression name length
        (csize,) = struct.unpack_from("<Q", body, 32 + n)
        return decompress(body[40 + n:40 + n + csize], body[32:32 + n].decode(), usize, crc)

    def _record(self, op: int, body: bytes, chunk_pos: int, offset: int) -> None:
        def string(at: int) -> str:
            (n,) = struct.unpack_from("<I", body, at)
            return body[at + 4:at + 4 + n].decode()

        if op == 0x03:                                         # schema: id, name, ...
            (sid,) = struct.unpack_from("<H", body, 0)
            self.schemas[sid] = string(2)
        elif op == 0x04:                                       # channel: id, schema id, topic, ...
            cid, sid = struct.unpack_from("<HH", body, 0)
            self.topics[cid] = (string(4), self.schemas.get(sid, ""))
        elif op == 0x05:                                       # message: channel, seq, log time, ...
            cid, _, log_time, _ = struct.unpack_from("<HIQQ", body, 0)
            self.index.append((int(log_time), len(self.refs), int(cid)))
            self.refs.append((chunk_pos, offset + 22, len(body) - 22))

    def read(self, ref: int) -> bytes:
        chunk_pos, offset, length = self.refs[ref]
        if chunk_pos < 0:
            self.f.seek(offset)
            return self.f.read(length)
        if self._cached[0] != chunk_pos:
            self.f.seek(chunk_pos)
            _, n = struct.unpack("<BQ", self.f.read(9))
            self._cached = (chunk_pos, self._chunk(self.f.read(n)))
        return self._cached[1][offset:offset + length]

    def close(self) -> None:
        self.f.close()


class SalvagedReader:
    """The intact messages of a cut-off bag, with the ``AnyReader`` members the bag readers use (messages in
    log-time order) and :attr:`loss`."""

    def __init__(self, bag: Path, file: Path, reason: str) -> None:
        self.source = src = _SqliteSource(file) if file.suffix == ".db3" else _McapSource(file)
        src.index.sort()
        counts = Counter(cid for _, _, cid in src.index)
        self.connections = [SalvagedConnection(cid, topic, msgtype, counts.get(cid, 0), self)
                            for cid, (topic, msgtype) in sorted(src.topics.items())]
        self.topics = {c.topic: c for c in self.connections}  # .msgtype, .msgcount as AnyReader's
        self.start_time = src.index[0][0] if src.index else 0
        self.duration = src.index[-1][0] + 1 - self.start_time if src.index else 0
        self.loss = bag_loss(bag, file, reason, {t: (c.msgtype, c.msgcount) for t, c in self.topics.items()})

    def messages(self, connections: Sequence[SalvagedConnection] | None = None
                 ) -> Iterator[tuple[SalvagedConnection, int, bytes]]:
        by_id = {c.id: c for c in (connections if connections is not None else self.connections)}
        for ts, ref, cid in self.source.index:
            if (c := by_id.get(cid)) is not None:
                yield c, ts, self.source.read(ref)

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return get_admn_typestore().deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        self.source.close()


def storage_file(path: Path) -> Path | None:
    """The one ``.db3`` / ``.mcap`` file of a bag (directory or file), or None."""
    if path.is_file():
        return path if path.suffix in (".db3", ".mcap") else None
    files = [*path.glob("*.db3"), *path.glob("*.mcap")] if path.is_dir() else []
    return files[0] if len(files) == 1 else None


def open_salvaged(path: Path, reason: str) -> SalvagedReader | None:
    """A :class:`SalvagedReader` for the bag at ``path`` whose storage file rosbags could not open
    (``reason``), or None when nothing can be read from it (not one sqlite3 / MCAP file,
    unreadable tables, no intact message)."""
    if (file := storage_file(path)) is None:
        return None
    try:
        r = SalvagedReader(path, file, reason)
    except (sqlite3.Error, ValueError, OSError, struct.error, UnicodeDecodeError):
        return None
    if r.loss.recovered == 0:
        r.close()
        return None
    return r
