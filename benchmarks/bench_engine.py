"""Engine benchmark: latency vs active blocks, controller budgets, real skipping vs blend, FLOPs.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_engine [--reps N]``: 1 thread, median
of ``--reps`` runs after warm-up, on the shipped tracking model and its 25%-budget controller.
"""
from __future__ import annotations

import argparse
import time

import torch

from admn_ros.core.controller import select_blocks
from admn_ros.core.evaluate.cost import median_ms
from admn_ros.core.engine import InferenceEngine
from admn_ros.core.flops import allocation_gflops, controller_flops, flops_breakdown
from admn_ros.core.model import random_inputs
from admn_ros.core.paths import models_dir
from admn_ros.core.runtime import Runtime
from admn_ros.core.streams import budget_from_fraction, full_allocation, naive_allocation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30, help="timed runs per figure (median)")
    reps = ap.parse_args().reps
    torch.manual_seed(0)

    rt = Runtime.load(models_dir(), backend="torch", task="tracking")
    model, cfg = rt.model, rt.cfg
    n, depth = cfg.n_streams, cfg.vit_depth
    L25 = budget_from_fraction(0.25, n, depth)
    if L25 not in rt.budget_controllers:
        raise SystemExit(f"{models_dir()}: no controller for budget {L25} (run `make models`)")
    ctrl = rt.budget_controllers[L25]
    t0 = time.perf_counter()
    engines = {be: InferenceEngine(model, ctrl, backend=be) for be in ("torch", "onnx")}
    build_s = time.perf_counter() - t0
    names = list(engines)
    print(f"ADMN engine benchmark: {n} streams x {depth} blocks, ViT dim {cfg.vit_dim}, fusion depth "
          f"{cfg.fusion_depth}, input {cfg.img_size}x{cfg.img_size}, torch {torch.__version__}, 1 thread")
    print(f"backends built in {build_s:.1f} s; max |diff| to torch: "
          + ", ".join(f"{k} {v:.1e}" for e in engines.values() for k, v in e.check.items()))

    g = torch.Generator().manual_seed(0)
    x1 = random_inputs(cfg, 1, g)

    print("\n[1] batch-1 latency vs active blocks (main model, median ms)")
    print(f"{'blocks':>6} " + " ".join(f"{b:>8}" for b in names))
    for k in (0, 9, 18, 27, 36, 54, 72, 90, 108):
        mask = torch.from_numpy(naive_allocation(n, k, depth))[None]
        row = [median_ms(lambda e=e: e.infer(x1, mask=mask), reps) for e in engines.values()]
        print(f"{k:>6} " + " ".join(f"{t:8.2f}" for t in row))

    print(f"\n[2] batch-1 end to end (median ms): full = all {n * depth} blocks, no controller; "
          f"ctrl+25% = controller + {L25} blocks; ctrl-only = controller alone")
    print(f"{'':>11} " + " ".join(f"{b:>8}" for b in names))
    full = torch.ones(1, n, depth, dtype=torch.bool)
    rows = {
        "full": [median_ms(lambda e=e: e.infer(x1, mask=full), reps) for e in engines.values()],
        "ctrl+25%": [median_ms(lambda e=e: e.infer(x1, budget=L25), reps) for e in engines.values()],
        "ctrl+full": [median_ms(lambda e=e: e.infer(x1, budget=n * depth), reps) for e in engines.values()],
        "ctrl-only": [median_ms(lambda e=e: e.allocate(x1), reps) for e in engines.values()],
    }
    for k, row in rows.items():
        print(f"{k:>11} " + " ".join(f"{t:8.2f}" for t in row))
    best = {k: min(zip(row, names)) for k, row in rows.items()}
    print(f"best: full {best['full'][0]:.2f} ms ({best['full'][1]}, target <= 15), "
          f"ctrl+25% {best['ctrl+25%'][0]:.2f} ms ({best['ctrl+25%'][1]}, target <= 6); "
          f"latency ratio 25%/full {best['ctrl+25%'][0] / best['full'][0]:.2f}")

    B = 32  # mixed 25% allocations: real skipping vs compute-and-blend
    xb = random_inputs(cfg, B, g)
    masks = select_blocks(torch.randn(B, n, depth, generator=g), L25) > 0.5
    distinct = len({tuple(m.flatten().tolist()) for m in masks})
    with torch.no_grad():
        ref = model(xb, masks, blend=True)
        skip = engines["torch"].infer(xb, mask=masks)
    diff = float((ref["mean"] - skip["mean"]).abs().max())
    blend_ms = median_ms(lambda: model(xb, masks, blend=True), max(3, reps // 3))
    skip_ms = {b: median_ms(lambda e=e: e.infer(xb, mask=masks), max(3, reps // 3)) for b, e in engines.items()}
    print(f"\n[3] batch {B}, {distinct} distinct 25% allocations ({L25} blocks each), main model (median ms)")
    print(f"compute-and-blend (torch): {blend_ms:8.2f}")
    for b, t in skip_ms.items():
        print(f"real skipping ({b:>5}):     {t:8.2f}   blend / skip = {blend_ms / t:.2f}x")
    print(f"max |mean diff| skip vs blend: {diff:.1e}; target ratio >= 2x "
          f"(torch vs torch: {blend_ms / skip_ms['torch']:.2f}x)")

    ccfg = ctrl.cfg
    q = naive_allocation(n, L25, depth)
    g_q = allocation_gflops(cfg, q, include_controller=True, controller_cfg=ccfg)
    g_full = allocation_gflops(cfg, full_allocation(n, depth), include_controller=False)
    g_full_c = allocation_gflops(cfg, full_allocation(n, depth), include_controller=True, controller_cfg=ccfg)
    c = controller_flops(ccfg) / 1e9
    br = flops_breakdown(cfg, q, ccfg)
    print("\n[4] analytic FLOPs per sample (2 x MACs)")
    print("25% budget: " + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in br.items()))
    print(f"full model {g_full * 1e3:.1f} MFLOPs (with controller {g_full_c * 1e3:.1f}); "
          f"25% + controller {g_q * 1e3:.1f} MFLOPs")
    print(f"ratio 25%+controller / full = {g_q / g_full:.4f} (target <= 0.30; "
          f"{g_q / g_full_c:.4f} if full also runs the controller)")
    print(f"controller {c * 1e3:.2f} MFLOPs = {100 * c / g_q:.2f}% of the 25% total (target <= 2%), "
          f"{100 * c / g_full:.2f}% of the full model")


if __name__ == "__main__":
    main()
