"""Streams, modalities, budgets and layer-allocation masks: the one place for them.

A *stream* is one modality of one sensor node, ``"<node>/<modality>"``. A *layer allocation*
is a bool mask ``(n_streams, DEPTH)``; the *budget* ``L`` counts every active block, forced
first blocks included. Pure numpy, so the simulator, the ROS nodes and the model share it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import numpy as np

#: Blocks per backbone (the paper's ViT-B depth, so budgets mean the same thing).
DEPTH: int = 12

#: Maximum depth range used to scale depth images to [0, 1] (metres).
DEPTH_MAX_M: float = 8.0


@dataclass(frozen=True)
class Modality:
    channels: int                       # of the model input
    sigma_max: float                    # largest noise std on [0, 1] data (paper: image 3, depth 0.75)
    encoding: str                       # sensor_msgs/Image encoding the sensor node publishes


MODALITIES: dict[str, Modality] = {
    "rgb": Modality(3, 3.0, "rgb8"),
    "depth": Modality(1, 0.75, "16UC1"),
    "radar": Modality(1, 1.0, "32FC1"),
}
#: The modalities in stream order (rgb, depth, radar).
MODALITY_NAMES: tuple[str, ...] = tuple(MODALITIES)

#: Default sensor nodes of the GDTM-style network.
DEFAULT_NODES: tuple[str, ...] = ("node1", "node2", "node3")


def stream_id(node: str, modality: str) -> str:
    """The validated id ``"<node>/<modality>"``."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; known: {sorted(MODALITIES)}")
    if not node or "/" in node:
        raise ValueError(f"invalid node name {node!r}: must be non-empty and contain no '/'")
    return f"{node}/{modality}"


def split_stream_id(sid: str) -> tuple[str, str]:
    """Split ``"node1/rgb"`` into ``("node1", "rgb")``, validating both parts."""
    parts = sid.split("/")
    if len(parts) != 2:
        raise ValueError(f"invalid stream id {sid!r}: expected '<node>/<modality>'")
    stream_id(*parts)
    return parts[0], parts[1]


@dataclass(frozen=True)
class StreamSet:
    """An ordered set of streams, node-major (``node1/rgb, node1/depth, ..., node2/rgb``): the
    row order of every mask."""

    nodes: tuple[str, ...] = DEFAULT_NODES
    modalities: tuple[str, ...] = MODALITY_NAMES

    def __post_init__(self) -> None:
        if not self.nodes or not self.modalities:
            raise ValueError("a StreamSet needs at least one node and one modality")
        for n in self.nodes:
            for m in self.modalities:
                stream_id(n, m)
        if len(set(self.nodes)) != len(self.nodes) or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"duplicate nodes or modalities in {self}")

    @property
    def ids(self) -> list[str]:
        return [stream_id(n, m) for n in self.nodes for m in self.modalities]

    def __len__(self) -> int:
        return len(self.nodes) * len(self.modalities)

    def index(self, sid: str) -> int:
        """Row index of stream ``sid``; raises ``KeyError`` naming the known ids."""
        ids = self.ids
        if sid not in ids:
            raise KeyError(f"unknown stream {sid!r}; known streams: {ids}")
        return ids.index(sid)

    def modality_of(self, i: int) -> str:
        return self.modalities[i % len(self.modalities)]

    @property
    def total_blocks(self) -> int:
        return len(self) * DEPTH

    @classmethod
    def from_ids(cls, ids: Sequence[str]) -> "StreamSet":
        """Build a node-major StreamSet from ids; they must form a full node x modality grid."""
        pairs = [split_stream_id(s) for s in ids]
        nodes = tuple(dict.fromkeys(p[0] for p in pairs))
        mods = tuple(dict.fromkeys(p[1] for p in pairs))
        ss = cls(nodes, mods)
        if sorted(ss.ids) != sorted(ids) or len(ids) != len(ss):
            raise ValueError(f"streams {list(ids)} do not form a full node x modality grid")
        return ss


class StreamGridMixin:
    """``streams`` / ``n_streams`` / ``stream_modalities``, ``to_dict`` and ``from_dict`` for a config
    dataclass with ``nodes`` and ``modalities`` fields."""

    nodes: tuple[str, ...]
    modalities: tuple[str, ...]
    #: Fields that no longer exist, each with the one value that behaves like the code does
    #: now: a saved config may still name them, with that value only.
    RETIRED: ClassVar[Mapping[str, Any]] = {}
    #: What a field missing from a saved config that names a retired field (one saved before
    #: that field existed) meant then; checked like a retired field.
    LEGACY_DEFAULTS: ClassVar[Mapping[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        """The fields, tuples as lists (JSON)."""
        def plain(v: Any) -> Any:
            return [plain(x) for x in v] if isinstance(v, tuple) else v
        return {k: plain(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        """Inverse of ``to_dict``. Raises ``ValueError`` naming the key for an unknown key or
        a retired one with a value other than the behaviour that remains."""
        d = dict(d)
        if any(k in d for k in cls.RETIRED):
            d = {**cls.LEGACY_DEFAULTS, **d}
        for key, keep in cls.RETIRED.items():
            got = d.pop(key, keep)
            if (list(got) if isinstance(got, (list, tuple)) else got) != keep:
                raise ValueError(f"{cls.__name__}.{key} = {got!r} is no longer supported: only {keep!r} "
                                 "remains (a checkpoint saved with it needs the version that trained it)")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    @property
    def streams(self) -> StreamSet:
        return StreamSet(self.nodes, self.modalities)

    @property
    def n_streams(self) -> int:
        return len(self.nodes) * len(self.modalities)

    @property
    def stream_modalities(self) -> list[str]:
        """The modality of every stream, in stream order."""
        return [m for _ in self.nodes for m in self.modalities]


def budget_from_fraction(fraction: float, n_streams: int, depth: int = DEPTH) -> int:
    """Budget ``L`` (active blocks) for a fraction of all blocks, e.g. 0.25 -> 27 of 108."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
    return int(round(fraction * n_streams * depth))


def budget_range(n_streams: int, depth: int = DEPTH, first_block: bool = True) -> tuple[int, int]:
    """``(lo, hi)`` valid budgets: every stream's forced first block (without the rule: one block) .. all blocks."""
    return (n_streams if first_block else 1), n_streams * depth


def validate_budget(budget: int, n_streams: int, depth: int = DEPTH, first_block: bool = True) -> int:
    """Check a budget against :func:`budget_range`; return it as int."""
    lo, hi = budget_range(n_streams, depth, first_block)
    if not lo <= int(budget) <= hi:
        raise ValueError(f"budget {budget} out of range [{lo}, {hi}] for {n_streams} streams x {depth} blocks"
                         + (" (the first block of every stream is always on)" if first_block else ""))
    return int(budget)


def every_other_blocks(n_keep: int, depth: int = DEPTH) -> list[int]:
    """Evenly spaced blocks to keep (LayerDrop's "every-other" rule): 3 of 12 -> ``[0, 4, 8]``."""
    if not 0 <= n_keep <= depth:
        raise ValueError(f"cannot keep {n_keep} of {depth} blocks")
    return [(i * depth) // n_keep for i in range(n_keep)]


def mask_from_counts(counts: Iterable[int], depth: int = DEPTH) -> np.ndarray:
    """Allocation mask with ``counts[i]`` every-other blocks on in stream ``i``."""
    counts = list(counts)
    mask = np.zeros((len(counts), depth), dtype=bool)
    for i, c in enumerate(counts):
        mask[i, every_other_blocks(int(c), depth)] = True
    return mask


#: Allocation policies at run time: the ADMN controllers and the paper's two input-agnostic baselines.
POLICIES: tuple[str, ...] = ("admn", "naive", "upper_bound")


def naive_allocation(n_streams: int, budget: int, depth: int = DEPTH) -> np.ndarray:
    """The paper's Naive baseline: ``budget`` split evenly over the streams (the first
    ``budget % n_streams`` get one more), every-other blocks; 0 blocks is the empty mask."""
    if not 0 <= int(budget) <= n_streams * depth:
        raise ValueError(f"cannot place {budget} blocks in {n_streams} streams x {depth} blocks")
    base, extra = divmod(int(budget), n_streams)
    return mask_from_counts([base + (1 if i < extra else 0) for i in range(n_streams)], depth)


def modality_allocation(streams: StreamSet, budget: int, keep: Sequence[str],
                        first_block: bool = True, depth: int = DEPTH) -> np.ndarray:
    """:func:`spread_allocation` over the streams of the modalities ``keep``."""
    chosen = [i for i in range(len(streams)) if streams.modality_of(i) in keep]
    if not chosen:
        raise ValueError(f"no stream of modalities {list(keep)} in {streams.ids}")
    return spread_allocation(len(streams), budget, chosen, first_block, depth)


def spread_allocation(n_streams: int, budget: int, chosen: Sequence[int], first_block: bool = True,
                      depth: int = DEPTH) -> np.ndarray:
    """Spread ``budget`` evenly (round-robin, every-other blocks) over the streams ``chosen``;
    the others keep only their forced first block (if ``first_block``), or nothing."""
    n = int(n_streams)
    validate_budget(budget, n, depth, first_block)
    chosen = list(dict.fromkeys(int(i) for i in chosen))
    if not chosen or any(not 0 <= i < n for i in chosen):
        raise ValueError(f"chosen streams {chosen} must be a non-empty subset of range({n})")
    counts = [1 if first_block else 0] * n
    remaining = int(budget) - sum(counts)
    if remaining > sum(depth - counts[i] for i in chosen):
        raise ValueError(f"budget {budget} exceeds the blocks of streams {chosen}")
    k = 0
    while remaining > 0:  # terminates: the check above leaves room on a chosen stream
        i = chosen[k % len(chosen)]
        if counts[i] < depth:
            counts[i] += 1
            remaining -= 1
        k += 1
    return mask_from_counts(counts, depth)


def spread_order(depth: int = DEPTH) -> list[int]:
    """Blocks in the order :func:`every_other_blocks` first uses them as ``n_keep`` grows:
    for 12 blocks ``[0, 6, 4, 8, 3, 9, 2, 7, 10, 1, 5, 11]``."""
    return list(dict.fromkeys(j for k in range(1, depth + 1) for j in every_other_blocks(k, depth)))


def full_allocation(n_streams: int, depth: int = DEPTH) -> np.ndarray:
    """Upper Bound: every block of every stream."""
    return np.ones((n_streams, depth), dtype=bool)


def allocation_fields(mask: np.ndarray, stream_ids: Sequence[str], *, budget: int | None = None,
                      present: Sequence[bool] | np.ndarray | None = None,
                      estimated_noise: Sequence[float] | np.ndarray | None = None, controller: str = "",
                      decision_ms: float = 0.0, first_block_forced: bool = True,
                      stream_status: Sequence[str] | None = None) -> dict:
    """The fields of an ``admn_ros/LayerAllocation`` for a bool ``(n_streams, depth)`` mask, for
    the ROS message and the bag message alike (``estimated_noise`` default NaN: not estimated,
    ``stream_status`` default ``ok`` / ``missing`` by ``present``)."""
    m, ids = np.asarray(mask), list(stream_ids)
    if m.ndim != 2:
        raise ValueError(f"allocation mask must be 2-D (n_streams, depth), got shape {m.shape}")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("allocation mask must be boolean (or 0/1)")
        m = m.astype(bool)
    n, depth = m.shape
    if n != len(ids):
        raise ValueError(f"allocation mask has {n} rows but {len(ids)} stream_ids were given")
    if not 0 < depth < 2**16:
        raise ValueError(f"allocation depth {depth} out of range")
    for sid in ids:
        split_stream_id(sid)
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate stream ids in {ids}")
    pres = np.ones(n, bool) if present is None else np.asarray(present, dtype=bool).reshape(-1)
    noise = (np.full(n, np.nan, np.float32) if estimated_noise is None
             else np.asarray(estimated_noise, dtype=np.float32).reshape(-1))
    status = [("ok" if p else "missing") for p in pres] if stream_status is None else [str(x) for x in stream_status]
    for name, v in (("stream_present", pres), ("estimated_noise", noise), ("stream_status", status)):
        if len(v) != n:
            raise ValueError(f"{name} has {len(v)} entries, expected {n}")
    b = int(m.sum()) if budget is None else int(budget)
    if not 0 <= b < 2**16:
        raise ValueError(f"budget {b} out of range for uint16")
    return {"budget": b, "depth": depth, "first_block_forced": bool(first_block_forced), "stream_ids": ids,
            "active_blocks": m.reshape(-1).copy(), "stream_present": pres.copy(), "estimated_noise": noise.copy(),
            "controller": str(controller), "decision_ms": float(decision_ms), "stream_status": status}
