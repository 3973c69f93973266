"""The pluggable per-frame pipeline interface of ``admn-ros replay``, and a baseline.

A pipeline turns one synchronized frame into a :class:`FrameResult`::

    class MyPipeline:
        name = "admn_L27"
        def process(self, stamp: float, streams: dict[str, np.ndarray | None]) -> FrameResult: ...

``streams`` holds one decoded array per stream id in the topic mapping's order (``None`` =
no data in this frame); rows of ``FrameResult.mask`` and entries of ``est_noise`` follow
that same order. Any object with these two members satisfies :class:`FramePipeline`
(structural typing; no base class needed).

Pipelines are found by name in :data:`PIPELINES` or as an import string
``package.module:factory``; a factory is called as
``factory(stream_ids=[...], budget=<int or None>)`` and returns a pipeline.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from admn_ros.core.streams import DEPTH, POLICIES, budget_from_fraction, naive_allocation


@dataclass
class FrameResult:
    """One frame's pipeline output.

    Attributes:
        mean: estimated target position ``(2,)``, metres in ``map``.
        cov: its covariance ``(2, 2)``, m^2.
        mask: layer allocation ``bool (n_streams, 12)`` or ``None`` (no allocation).
        est_noise: estimated noise sigma per stream ``(n_streams,)`` or ``None``.
        budget: the budget ``L`` the allocation was made for (``None`` = ``mask.sum()``).
        extra: anything else worth a CSV column (numbers or strings), by name.
    """

    mean: np.ndarray
    cov: np.ndarray
    mask: np.ndarray | None = None
    est_noise: np.ndarray | None = None
    budget: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validated(self, n_streams: int) -> "FrameResult":
        """Shapes checked and arrays normalised (float64 mean/cov, bool mask, float32 noise)."""
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1)
        cov = np.asarray(self.cov, dtype=np.float64)
        if mean.shape != (2,):
            raise ValueError(f"FrameResult.mean must have shape (2,), got {np.shape(self.mean)}")
        if cov.shape != (2, 2):
            raise ValueError(f"FrameResult.cov must have shape (2, 2), got {cov.shape}")
        mask = None
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.ndim != 2 or mask.shape[0] != n_streams:
                raise ValueError(f"FrameResult.mask must have shape ({n_streams}, depth), got {mask.shape}")
        noise = None
        if self.est_noise is not None:
            noise = np.asarray(self.est_noise, dtype=np.float32).reshape(-1)
            if noise.shape != (n_streams,):
                raise ValueError(f"FrameResult.est_noise must have shape ({n_streams},), got {noise.shape}")
        return FrameResult(mean, cov, mask, noise, self.budget, dict(self.extra))


@runtime_checkable
class FramePipeline(Protocol):
    """What ``admn-ros replay`` runs per frame (see the module docstring)."""

    name: str

    def process(self, stamp: float, streams: dict[str, np.ndarray | None]) -> FrameResult:
        """Estimate the target of one frame stamped ``stamp`` (s)."""
        ...


class TrackCentreBaseline:
    """BASELINE, not ADMN: needs no model and ignores the data.

    Predicts the track centre (default ``(0, 0)``, the centre of the simulated track in
    ``map``) with identity covariance, and allocates layers with the paper's input-agnostic
    Naive Allocation (:func:`admn_ros.core.streams.naive_allocation`: an even split of the
    budget, every-other blocks), minus the streams that have no data in the frame. It exists
    to test the replay plumbing and as the "know nothing" error floor of a recording.

    Args:
        stream_ids: stream order of the frames.
        budget: layer budget ``L``; default 25 % of all blocks (27 of 108 for 9 streams).
        centre: the constant prediction.
    """

    name = "baseline_track_centre"

    def __init__(self, stream_ids: Sequence[str], budget: int | None = None,
                 centre: Sequence[float] = (0.0, 0.0)) -> None:
        self.stream_ids = list(stream_ids)
        n = len(self.stream_ids)
        self.budget = budget_from_fraction(0.25, n) if budget is None else int(budget)
        self._mask = naive_allocation(n, self.budget, DEPTH)
        self.centre = np.asarray(centre, dtype=np.float64).reshape(2)

    def process(self, stamp: float, streams: dict[str, np.ndarray | None]) -> FrameResult:
        present = np.array([streams.get(s) is not None for s in self.stream_ids], dtype=bool)
        mask = self._mask & present[:, None]
        return FrameResult(self.centre.copy(), np.eye(2), mask, None, self.budget)


def _baseline_factory(stream_ids: Sequence[str], budget: int | None = None, **_: Any) -> FramePipeline:
    return TrackCentreBaseline(stream_ids, budget)


#: Pipelines by name: ``name -> factory(stream_ids=..., budget=...)``. Others register here.
class AdmnPipeline:
    """The ADMN tracking pipeline on recorded frames, through the same
    :class:`admn_ros.core.runtime.TrackingRuntime` the ROS nodes use (offline, fast).

    ``policy``: ``"admn"`` (the runtime's controller for the budget), ``"naive"`` (even
    split, every-other blocks) or ``"upper_bound"`` (all blocks). Missing streams get 0
    blocks in every policy.
    """

    POLICIES = POLICIES

    def __init__(self, stream_ids: Sequence[str], budget: int | None = None, *, policy: str = "admn",
                 model_dir: str | None = None, backend: str = "auto") -> None:
        from admn_ros.core.paths import models_dir
        from admn_ros.core.runtime import TrackingRuntime

        if policy not in self.POLICIES:
            raise ValueError(f"unknown policy {policy!r}; known: {list(self.POLICIES)}")
        self.rt = TrackingRuntime.load(model_dir or models_dir(), backend=backend)
        if list(stream_ids) != list(self.rt.stream_ids):
            raise ValueError(f"bag mapping streams {list(stream_ids)} != model streams {list(self.rt.stream_ids)}")
        n = len(self.rt.stream_ids)
        self.policy = policy
        self.budget = int(budget) if budget is not None else budget_from_fraction(0.25, n)
        self.name = f"{policy}_L{self.budget}" if policy != "upper_bound" else "upper_bound"
        # Build the engines now (auto times the backends, ONNX exports): set-up, not per-frame time.
        self.rt.warmup(("allocate", "embed", "fuse") if policy == "admn" else ("embed", "fuse"))

    def process(self, stamp: float, streams: dict[str, np.ndarray | None]) -> FrameResult:
        rt = self.rt
        inputs = {sid: (None if streams.get(sid) is None else rt.preprocess(sid, streams[sid]))
                  for sid in rt.stream_ids}
        present = np.array([inputs[s] is not None for s in rt.stream_ids])
        if not present.any():
            raise ValueError("no stream present in this frame")
        alloc = rt.allocate(inputs, self.budget, self.policy)
        mask, who = alloc.mask, alloc.controller
        noise = alloc.est_noise if self.policy == "admn" else None
        mean, cov = rt.fuse(rt.embed(rt.stream_ids, inputs, mask))
        from admn_ros.core.flops import allocation_gflops

        gflops = float(allocation_gflops(rt.cfg, mask, include_controller=self.policy == "admn", present=present))
        return FrameResult(mean, cov, mask, noise, int(mask.sum()), {"controller": who, "gflops": gflops})


def _admn_factory(policy: str) -> Callable[..., FramePipeline]:
    def make(stream_ids: Sequence[str], budget: int | None = None, **kw: Any) -> FramePipeline:
        return AdmnPipeline(stream_ids, budget, policy=policy, **kw)
    return make


PIPELINES: dict[str, Callable[..., FramePipeline]] = {
    "baseline": _baseline_factory, "admn": _admn_factory("admn"), "naive": _admn_factory("naive"),
    "upper_bound": _admn_factory("upper_bound")}


def make_pipeline(spec: str, stream_ids: Sequence[str], budget: int | None = None,
                  **options: Any) -> FramePipeline:
    """A pipeline from a :data:`PIPELINES` name or a ``module:factory`` import string."""
    if spec in PIPELINES:
        factory = PIPELINES[spec]
    elif ":" in spec:
        mod, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load pipeline factory {spec!r}: {e}") from None
    else:
        raise ValueError(f"unknown pipeline {spec!r}; known: {sorted(PIPELINES)} or 'module:factory'")
    p = factory(stream_ids=list(stream_ids), budget=budget, **options)
    if not isinstance(p, FramePipeline):
        raise ValueError(f"pipeline {spec!r} returned {type(p).__name__}, which lacks name/process()")
    return p


__all__ = ["FrameResult", "FramePipeline", "TrackCentreBaseline", "AdmnPipeline", "PIPELINES", "make_pipeline"]
