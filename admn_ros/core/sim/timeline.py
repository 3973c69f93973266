"""A scenario: a timeline of sensor corruptions in phases (``admn-ros demo --scenario FILE``, the
sensor node's ``timeline_file``; format: ``config/demo_tracking.yaml``). A phase corrupts the streams
it names and makes every other one clean; the last phase holds. ``ValueError`` names file, phase, key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from admn_ros.core.sim.corruptions import CorruptionSpec, parse_corruption
from admn_ros.core.streams import split_stream_id


@dataclass(frozen=True)
class Phase:
    """One phase of a scenario (seconds on its timeline); ``corrupt`` maps stream ids to corruption strings."""

    name: str
    start_s: float
    end_s: float
    corrupt: dict[str, str]


@dataclass(frozen=True)
class Timeline:
    name: str
    phases: tuple[Phase, ...]
    source: str = ""

    @property
    def duration_s(self) -> float:
        return self.phases[-1].end_s

    def index_at(self, t: float) -> int | None:
        """The phase at ``t`` seconds after the timeline's start (``None`` before it; the last
        phase after the end)."""
        if t < 0:
            return None
        return next((i for i, p in enumerate(self.phases) if t < p.end_s), len(self.phases) - 1)

    def specs(self, index: int, stream_ids: Sequence[str]) -> dict[str, CorruptionSpec]:
        """Every stream's corruption in phase ``index`` (streams the phase does not name: clean)."""
        corrupt = self.phases[index].corrupt
        return {sid: parse_corruption(corrupt.get(sid, "none")) for sid in stream_ids}

    @classmethod
    def load(cls, path: str | Path, stream_ids: Sequence[str] | None = None) -> "Timeline":
        """Read and check a scenario file; with ``stream_ids`` every named stream must be one."""
        from admn_ros.core.paths import read_yaml

        return cls.parse(read_yaml(path, "scenario file"), str(Path(path).expanduser()), stream_ids)

    @classmethod
    def parse(cls, doc: Any, source: str = "<scenario>", stream_ids: Sequence[str] | None = None) -> "Timeline":
        def bad(where: str, why: str) -> ValueError:
            return ValueError(f"{source}: {where}: {why}")

        if not isinstance(doc, dict) or not isinstance(doc.get("phases"), list) or not doc["phases"]:
            raise bad("phases", "a scenario needs a non-empty list 'phases' (each with name, seconds, corrupt)")
        if set(doc) - {"name", "phases"}:
            raise bad(str(sorted(set(doc) - {"name", "phases"})), "unknown key(s); known: name, phases")
        phases, t = [], 0.0
        for i, ph in enumerate(doc["phases"]):
            if not isinstance(ph, dict):
                raise bad(f"phases[{i}]", f"expected a mapping with name, seconds, corrupt, got {ph!r}")
            where = f"phases[{i}] ({ph.get('name', '?')!r})"
            unknown = sorted(set(ph) - {"name", "seconds", "corrupt"})
            if unknown:
                raise bad(where, f"unknown key(s) {unknown}; known: name, seconds, corrupt")
            sec = ph.get("seconds")
            if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not sec > 0:
                raise bad(where, f"'seconds' must be a number > 0, got {sec!r}")
            corrupt = ph.get("corrupt") or {}
            if not isinstance(corrupt, dict):
                raise bad(where, f"'corrupt' must map stream ids to corruption strings, got {corrupt!r}")
            for sid, text in corrupt.items():
                try:
                    if stream_ids is not None and sid not in stream_ids:
                        raise ValueError(f"unknown stream; known: {list(stream_ids)}")
                    parse_corruption(str(text), split_stream_id(str(sid))[1])
                except ValueError as e:
                    raise bad(f"{where}: corrupt: {sid}", str(e)) from None
            phases.append(Phase(str(ph.get("name") or f"phase {i + 1}"), t, t + float(sec),
                                {str(k): str(v) for k, v in corrupt.items()}))
            t += float(sec)
        return cls(str(doc.get("name") or Path(source).stem), tuple(phases), source)
