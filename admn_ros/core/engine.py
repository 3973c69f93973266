"""Inference engine: per-sample allocations with REAL skipping (each block runs only on the rows whose
allocation has it on, so a mixed batch gives what per-sample execution gives). Backends: ``torch`` (the
reference), ``onnx`` (parts exported, ONNX Runtime on one CPU thread, checked against torch within
``atol``) and ``auto`` (the faster of the two at batch 1). See docs/BENCHMARKS.md.
"""
from __future__ import annotations

import io
import statistics
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from admn_ros.core.controller import AllocationController, select_blocks
from admn_ros.core.model import ADMNModel, as_present_tensor, embed_tokens, random_inputs
from admn_ros.core.streams import budget_from_fraction, naive_allocation
from admn_ros.core.vit import broadcast_mask

BACKENDS: tuple[str, ...] = ("torch", "onnx", "auto")


class _FusionPart(nn.Module):
    """``(emb [B, n, D], present bool [B, n])`` -> head outputs as a tuple (for tracing/export)."""

    def __init__(self, model: ADMNModel) -> None:
        super().__init__()
        self.fusion = model.fusion

    def forward(self, emb: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.fusion(emb, present)
        return tuple(out[k] for k in self.fusion.task.outputs)


class _ControllerPart(nn.Module):
    """``(*modality inputs, present bool [B, n], budget_frac [B])`` -> ``(logits, sigma)``."""

    def __init__(self, controller: AllocationController) -> None:
        super().__init__()
        self.controller = controller
        self.modalities = list(controller.cfg.modalities)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xs, present, frac = args[:-2], args[-2], args[-1]
        tok = self.controller.encode(dict(zip(self.modalities, xs)), present)
        return self.controller.heads(tok, frac)


class _TorchBackend:
    """Eager torch, the reference: the model's own backbones (real skipping in
    :meth:`~admn_ros.core.vit.AdaptiveViT.run_blocks`). A backend runs the parts of a model on torch
    tensors on its ``device``: ``embed`` (one backbone: ``x [N, C, H, W]``, ``on`` bool ``[N, depth]`` ->
    ``[N, D]``), ``fuse`` as :class:`_FusionPart` and ``control`` as :class:`_ControllerPart`."""

    def __init__(self, model: ADMNModel, controller: AllocationController | None) -> None:
        self.device = model.device
        self.backbones = model.backbones
        self.fuse = _FusionPart(model)
        self.control = _ControllerPart(controller) if controller is not None else None

    def embed(self, modality: str, x: torch.Tensor, on: np.ndarray) -> torch.Tensor:
        return self.backbones[modality](x, torch.tensor(on))


def _on_tensors(run: Callable[..., list[np.ndarray]]) -> Callable[..., tuple[torch.Tensor, ...]]:
    """``run`` (numpy arrays in and out) called with and returning torch tensors."""
    return lambda *args: tuple(torch.from_numpy(o) for o in run(*(a.detach().cpu().numpy() for a in args)))


class _OnnxBackend:
    """ONNX Runtime sessions per part (each part a ``run(*arrays) -> outputs``); Python-level skipping."""

    def __init__(self, model: ADMNModel, controller: AllocationController | None) -> None:
        import onnxruntime as ort

        self.ort, self.device = ort, torch.device("cpu")
        self._so = ort.SessionOptions()   # by default sequential, with every graph optimization
        self._so.intra_op_num_threads = self._so.inter_op_num_threads = 1
        cfg, dev = model.cfg, model.device
        self.patch: dict[str, Any] = {}
        self.blocks: dict[str, list[Any]] = {}
        self.head: dict[str, Any] = {}
        with torch.no_grad():
            for m, bb in model.backbones.items():
                x = torch.rand(2, cfg.channels(m), cfg.img_size, cfg.img_size, device=dev)
                tok = bb.patch_embed(x)
                self.patch[m] = self._session(bb.patch_embed, (x,), ["x"], ["tok"])
                self.blocks[m] = [self._session(b, (tok,), ["x"], ["y"]) for b in bb.blocks]
                self.head[m] = self._session(bb.head, (tok,), ["x"], ["cls"])
            emb = torch.rand(2, cfg.n_tokens, cfg.vit_dim, device=dev)
            tok_pres = torch.ones(2, cfg.n_tokens, dtype=torch.bool, device=dev)
            self.fuse = _on_tensors(self._session(_FusionPart(model), (emb, tok_pres), ["emb", "present"],
                                                  list(model.fusion.task.outputs)))
            self.control = None
            if controller is not None:
                cpart = _ControllerPart(controller)
                pres = torch.ones(2, cfg.n_streams, dtype=torch.bool, device=dev)
                ins = random_inputs(cfg, 2, device=dev)
                args = (*[ins[m] for m in cpart.modalities], pres, torch.full((2,), 0.25, device=dev))
                self.control = _on_tensors(self._session(cpart, args, [*cpart.modalities, "present", "budget_frac"],
                                                         ["logits", "sigma"]))

    def _session(self, module: nn.Module, args: tuple[torch.Tensor, ...], in_names: list[str],
                 out_names: list[str]) -> Callable[..., list[np.ndarray]]:
        buf = io.BytesIO()
        axes = {nm: {0: "batch"} for nm in in_names + out_names}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buf, dynamo=False, input_names=in_names, output_names=out_names,
                              dynamic_axes=axes, opset_version=17)
        sess = self.ort.InferenceSession(buf.getvalue(), self._so, providers=["CPUExecutionProvider"])
        # an input the graph does not use (budget_frac of a fixed-budget controller) was dropped
        used = {i.name for i in sess.get_inputs()}

        def run(*arrays: np.ndarray) -> list[np.ndarray]:
            return sess.run(None, {k: v for k, v in zip(in_names, arrays) if k in used})
        return run

    def embed(self, modality: str, x: torch.Tensor, on: np.ndarray) -> torch.Tensor:
        """Block ``j`` runs only on the rows ``on[:, j]``."""
        tok = self.patch[modality](x.detach().cpu().numpy())[0]
        for j, run in enumerate(self.blocks[modality]):
            rows = np.flatnonzero(on[:, j])
            if 0 < rows.size < tok.shape[0]:
                tok[rows] = run(tok[rows])[0]
            elif rows.size:
                tok = run(tok)[0]
        return torch.from_numpy(self.head[modality](tok)[0])


_Backend = _TorchBackend | _OnnxBackend


class InferenceEngine:
    """Batched / batch-1 ADMN inference with per-sample allocations and real skipping; without a
    ``controller``, :meth:`infer` needs a mask (or uses every block). ``threads``: ``torch.set_num_threads``
    (``None`` = leave it; torch's and ONNX Runtime's pools would fight over 2 cores). ``device``: move model
    and controller there first (``"auto"``: CUDA if present; ONNX Runtime always runs on the CPU). After
    construction ``backend`` is the one in use, ``check`` maps backends to their max abs difference to
    torch, ``timings_ms`` to the median batch-1 latency (``auto``), ``errors`` to why one was rejected."""

    def __init__(self, model: ADMNModel, controller: AllocationController | None = None,
                 backend: str = "torch", threads: int | None = 1, atol: float = 1e-4, time_reps: int = 15,
                 device: str | torch.device | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        if threads is not None:
            torch.set_num_threads(int(threads))
        if device is not None:
            dev = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" \
                else torch.device(device)
            model = model.to(dev)
            controller = controller.to(dev) if controller is not None else None
        self.model = model.eval()
        self.controller = controller.eval() if controller is not None else None
        self.cfg = model.cfg
        if controller is not None:
            cc = controller.cfg
            got, want = (cc.nodes, cc.modalities, cc.depth), (self.cfg.nodes, self.cfg.modalities, self.cfg.vit_depth)
            if got != want:
                raise ValueError(f"controller and model disagree on nodes/modalities/depth: {got} vs {want}")
        self.check: dict[str, float] = {}
        self.timings_ms: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self._backends: dict[str, _Backend] = {"torch": _TorchBackend(model, self.controller)}
        if backend != "torch":
            try:
                be = _OnnxBackend(model, self.controller)
            except Exception as exc:  # noqa: BLE001 - report and fall back
                self.errors["onnx"] = f"{type(exc).__name__}: {exc}"
                if backend != "auto":
                    raise
            else:
                self.check["onnx"] = diff = self._compare(be)
                if diff > atol:
                    self.errors["onnx"] = f"max abs difference {diff:.3g} to torch exceeds atol {atol}"
                    if backend != "auto":
                        raise RuntimeError(f"backend 'onnx' does not match torch: {self.errors['onnx']}")
                else:
                    self._backends["onnx"] = be
        if backend == "auto":
            self.timings_ms = {name: self._time(be, time_reps) for name, be in self._backends.items()}
            backend = min(self.timings_ms, key=self.timings_ms.__getitem__)
        self.backend = backend
        self._be = self._backends[self.backend]

    def _compare(self, be: _Backend) -> float:
        g = torch.Generator().manual_seed(0)
        ins = random_inputs(self.cfg, 3, g, self.model.device)
        n, depth = self.cfg.n_streams, self.cfg.vit_depth
        mask = torch.rand(3, n, depth, generator=g) < 0.5
        mask[:, :, 0] = True
        mask[0] = True
        present = torch.ones(3, n, dtype=torch.bool)
        present[-1, 1] = False
        ref = self._run(self._backends["torch"], ins, mask, present, None)
        out = self._run(be, ins, mask, present, None)
        return max(float((ref[k].cpu() - out[k].cpu()).abs().max()) for k in ref if k != "mask")

    def _time(self, be: _Backend, reps: int = 15) -> float:
        ins = random_inputs(self.cfg, 1, torch.Generator().manual_seed(0), self.model.device)
        n, depth = self.cfg.n_streams, self.cfg.vit_depth
        full = torch.ones(1, n, depth, dtype=torch.bool)
        quarter = torch.from_numpy(naive_allocation(n, budget_from_fraction(0.25, n, depth), depth))[None]
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            self._run(be, ins, full, None, None)
            self._run(be, ins, quarter, None, None)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    @torch.no_grad()
    def _run(self, be: _Backend, inputs: Mapping[str, torch.Tensor], mask: Any, present: Any,
             budget: Any) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        b = int(inputs[cfg.modalities[0]].shape[0])
        dev = be.device
        xs = {m: inputs[m].to(dev, torch.float32) for m in cfg.modalities}
        tok_pres = as_present_tensor(present, b, cfg.n_streams, dev, cfg.frames)  # [B, F*n]
        pres = tok_pres.reshape(b, cfg.frames, cfg.n_streams).any(1)  # per window stream
        out: dict[str, torch.Tensor] = {}
        if mask is None and self.controller is not None:
            mask_t, out["ctrl_logits"], out["sigma"] = self._control(be, xs, pres, budget, b, dev)
        else:
            mask_t = broadcast_mask(mask, (b, cfg.n_streams, cfg.vit_depth), dev)
            mask_t = (mask_t > 0.5) if mask_t.is_floating_point() else mask_t.to(torch.bool)
        emb = embed_tokens(cfg, lambda m, x, rows: be.embed(m, x, rows.cpu().numpy()), xs,
                           mask_t.repeat(1, cfg.frames, 1), tok_pres)
        out.update(zip(self.model.fusion.task.outputs, be.fuse(emb, tok_pres)))
        out["emb"] = emb
        out["mask"] = mask_t & pres[:, :, None]
        return out

    def _control(self, be: _Backend, xs: Mapping[str, torch.Tensor], pres: torch.Tensor, budget: Any, b: int,
                 dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Controller on ``xs`` -> ``(bool mask, logits, sigma)`` with budget ``budget`` (default the engine's)."""
        c = self.controller.cfg
        L = budget if budget is not None else c.budget
        frac = self.controller.budget_fraction(L, b).to(dev)
        logits, sigma = be.control(*[xs[m] for m in c.modalities], pres, frac)
        return select_blocks(logits.to(dev), torch.as_tensor(L), pres, c.first_block) > 0.5, logits, sigma

    def infer(self, inputs: Mapping[str, torch.Tensor], present: Any = None, mask: Any = None,
              budget: int | Sequence[int] | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The whole pipeline on a batch (``modality -> [B, S, C, H, W]`` in [0, 1], torch or numpy;
        ``present`` bool ``[B, n]``; ``mask`` ``[B, n, depth]`` / ``[n, depth]``, ``None`` = ask the
        controller or every block; ``budget`` int or ``[B]``). Returns the head's outputs plus
        ``"emb" [B, n, D]``, the executed ``"mask"`` and, with a controller, ``"ctrl_logits"`` and
        ``"sigma" [B, n]``."""
        ins = {m: torch.as_tensor(v) for m, v in inputs.items()}
        return self._run(self._be, ins, mask, present, budget)

    @torch.no_grad()
    def allocate(self, inputs: Mapping[str, torch.Tensor], present: Any = None,
                 budget: int | Sequence[int] | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Controller only: ``{"mask": bool [B, n, depth], "ctrl_logits", "sigma"}``."""
        if self.controller is None:
            raise RuntimeError("this engine has no controller")
        b = int(inputs[self.cfg.modalities[0]].shape[0])
        dev = self._be.device
        pres = as_present_tensor(present, b, self.cfg.n_streams, dev)
        xs = {m: inputs[m].to(dev) for m in self.controller.cfg.modalities}
        mask, logits, sigma = self._control(self._be, xs, pres, budget, b, dev)
        return {"mask": mask, "ctrl_logits": logits, "sigma": sigma}

    @torch.no_grad()
    def embed(self, modality: str, x: torch.Tensor, active: Any = None) -> torch.Tensor:
        """One backbone on a batch of its streams: ``x [N, C, H, W]``, ``active`` bool ``[N, depth]`` /
        ``[depth]`` / ``None`` -> ``[N, D]``."""
        a = broadcast_mask(active, (x.shape[0], self.cfg.vit_depth))
        on = a if a.dtype == torch.bool else a > 0.5
        return self._be.embed(modality, x.to(self._be.device, torch.float32), on.cpu().numpy())

    @torch.no_grad()
    def fuse(self, embeddings: torch.Tensor, present: Any = None) -> dict[str, torch.Tensor]:
        """Fusion + head on ``[B, F*n, D]`` embeddings (for a ROS fusion node); ``present``
        ``[B, n]`` or per token ``[B, F*n]``."""
        dev = self._be.device
        pres = as_present_tensor(present, embeddings.shape[0], self.cfg.n_streams, dev, self.cfg.frames)
        return dict(zip(self.model.fusion.task.outputs, self._be.fuse(embeddings.to(dev, torch.float32), pres)))
