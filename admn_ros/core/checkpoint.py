"""Checkpoints that carry their configuration and never execute code on load.

One ``.safetensors`` file: the weights (float32, float16 when shipped), optionally the optimizer
state for ``--resume`` (tensors under ``__optim__/``, the rest JSON), and a JSON document in the
header metadata (key ``admn_ros``: ``format``, ``version``, ``kind``, ``model_config``,
``train_config``, ``epoch``, ``metrics``, ``weights_id``). Loading refuses weights that no longer
match their ``weights_id``; every failure raises :class:`CheckpointError` naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import torch

FORMAT = "admn_ros.checkpoint"   # meta["format"] of our checkpoints
VERSION = 1                      # bumped when the layout changes incompatibly
META_KEY = "admn_ros"            # safetensors header-metadata key of the JSON document
OPTIM_PREFIX = "__optim__/"      # tensor-name prefix of the optimizer state

T = TypeVar("T")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, corrupt or does not fit the model/config."""


def _shape(t: Iterable[int]) -> str:
    return "(" + ",".join(str(int(s)) for s in t) + ")"


def weights_id(state_dict: Mapping[str, torch.Tensor]) -> str:
    """16 hex digits of a content hash of the weights, the same for a float32 checkpoint and
    its float16 shipped copy (floating tensors are hashed as float16)."""
    h = hashlib.sha256()
    for k in sorted(state_dict):   # model weights only: the optimizer state is stored apart
        t = state_dict[k].detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float16)
        h.update(k.encode())
        h.update(_shape(t.shape).encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


@dataclass
class Checkpoint:
    """A loaded checkpoint: the JSON document, the weights (floating as float32) and the optimizer state."""

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind"))

    @property
    def model_config(self) -> dict[str, Any]:
        return dict(self.meta.get("model_config") or {})

    @property
    def train_config(self) -> dict[str, Any]:
        return dict(self.meta.get("train_config") or {})

    @property
    def epoch(self) -> int:
        """Completed epochs (0 if none)."""
        return int(self.meta.get("epoch", 0))

    def load_into(self, module: torch.nn.Module) -> None:
        load_into(module, self.tensors, path=self.path)


def _flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into tensors and a JSON-able remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state.get("state", {}).items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIM_PREFIX}{pid}/{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: v.item() if isinstance(v, torch.Tensor) else list(v) if isinstance(v, tuple) else v
               for k, v in g.items()} for g in state.get("param_groups", [])]
    return tensors, {"scalars": scalars, "param_groups": groups}


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], js: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, t in tensors.items():
        pid, name = key[len(OPTIM_PREFIX):].split("/", 1)
        state.setdefault(int(pid), {})[name] = t
    for pid, vals in js.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(vals)
    groups = [{**g, "betas": tuple(g["betas"])} if isinstance(g.get("betas"), list) else dict(g)
              for g in js.get("param_groups", [])]
    return {"state": state, "param_groups": groups}


def save_checkpoint(path: str | os.PathLike[str], *, kind: str, state_dict: Mapping[str, torch.Tensor],
                    meta: Mapping[str, Any] | None = None, optimizer_state: Mapping[str, Any] | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename); ``kind`` (``"stage1"``, ``"controller"``,
    ...) is what loaders can insist on, ``dtype`` that of the floating weights (default float32)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state_dict.items():
        if k.startswith(OPTIM_PREFIX):
            raise CheckpointError(f"{path}: model key {k!r} uses the reserved prefix {OPTIM_PREFIX!r}")
        t = v.detach().cpu()
        if t.is_floating_point():
            t = t.to(dtype or torch.float32)
        tensors[k] = t.contiguous().clone()
    doc: dict[str, Any] = dict(meta or {})
    doc.update(format=FORMAT, version=VERSION, kind=kind, weights_id=weights_id(tensors),
               saved_at=time.strftime("%Y-%m-%dT%H:%M:%S"), torch=torch.__version__)
    if optimizer_state is not None:
        otensors, ojs = _flatten_optimizer(optimizer_state)
        tensors.update(otensors)
        doc["optimizer"] = ojs
    try:
        text = json.dumps(doc, sort_keys=True, allow_nan=True)
    except TypeError as exc:
        raise CheckpointError(f"{path}: metadata is not JSON-serialisable: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: text})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's JSON document without loading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found"
                              + ("" if path.parent.is_dir() else f" (directory {path.parent} does not exist)"))
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file (corrupt or truncated?): {exc}") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file has no {META_KEY!r} metadata; not an admn_ros checkpoint")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata format {doc.get('format') if isinstance(doc, dict) else doc!r} "
                              f"!= {FORMAT!r}")
    if int(doc.get("version", -1)) != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {doc.get('version')} != supported {VERSION}")
    return doc


def load_checkpoint(path: str | os.PathLike[str], *, kind: str | None = None,
                    with_optimizer: bool = True) -> Checkpoint:
    from safetensors.torch import load_file

    path = Path(path)
    doc = read_metadata(path)
    if kind is not None and doc.get("kind") != kind:
        raise CheckpointError(f"{path}: checkpoint kind {doc.get('kind')!r} != expected {kind!r}")
    try:
        raw = load_file(str(path))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: cannot read tensors (corrupt or truncated?): {exc}") from exc
    otensors = {k: t for k, t in raw.items() if k.startswith(OPTIM_PREFIX)}
    tensors = {k: t.float() if t.is_floating_point() else t for k, t in raw.items() if not k.startswith(OPTIM_PREFIX)}
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: key {k} contains NaN/Inf values")
    recorded = doc.get("weights_id")
    if recorded is not None and weights_id(tensors) != recorded:
        raise CheckpointError(f"{path}: weights do not match the content hash recorded when the file was saved "
                              f"(weights_id {weights_id(tensors)} != {recorded}); the file is corrupt, copy or "
                              "train it again")
    optim = _unflatten_optimizer(otensors, doc["optimizer"]) if with_optimizer and "optimizer" in doc else None
    return Checkpoint(path=path, meta=doc, tensors=tensors, optimizer=optim)


def load_into(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], *,
              path: str | os.PathLike[str] = "<checkpoint>", strict: bool = True) -> None:
    """Check keys and shapes against ``module.state_dict()`` (:class:`CheckpointError` naming the file
    and every missing/unexpected/mis-shaped key), then copy the weights in."""
    expected = module.state_dict()
    problems: list[str] = []
    for k, t in expected.items():
        if k not in tensors:
            problems.append(f"missing key {k} (expected shape {_shape(t.shape)})")
        elif tuple(tensors[k].shape) != tuple(t.shape):
            problems.append(f"key {k} shape {_shape(tensors[k].shape)} != expected {_shape(t.shape)}")
    if strict:
        problems += [f"unexpected key {k} shape {_shape(tensors[k].shape)}" for k in tensors if k not in expected]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CheckpointError(f"{path}: {len(problems)} of {len(expected)} weights do not fit the network its "
                              "config describes: " + "; ".join(problems[:5]) + more)
    module.load_state_dict({k: v for k, v in tensors.items() if k in expected}, strict=strict)


def stored_config(path: str | os.PathLike[str], meta: Mapping[str, Any], key: str, cls: type[T]) -> T:
    """``cls.from_dict(meta[key])``: the config a checkpoint's metadata stores under ``key``
    (``"model_config"``, ``"controller_config"``); :class:`CheckpointError` naming the file if it
    is missing or invalid."""
    try:
        return cls.from_dict(meta[key])  # type: ignore[attr-defined]
    except KeyError:
        raise CheckpointError(f"{path}: metadata has no {key}") from None
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid {key}: {exc}") from exc


def check_config(path: str | os.PathLike[str], stored: Mapping[str, Any], expected: Mapping[str, Any],
                 keys: Iterable[str] | None = None, what: str = "model_config") -> None:
    """Raise if ``stored[k] != expected[k]`` for the given keys (all shared keys by default)."""
    keys = list(keys) if keys is not None else [k for k in expected if k in stored]
    bad = [f"{what}.{k} = {stored.get(k)!r} != expected {expected.get(k)!r}"
           for k in keys if _norm(stored.get(k)) != _norm(expected.get(k))]
    if bad:
        raise CheckpointError(f"{path}: " + "; ".join(bad))


def _norm(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v
