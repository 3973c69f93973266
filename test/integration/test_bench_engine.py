"""The engine benchmark runs on the shipped model and prints every section (one timed run per figure)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_engine_benchmark_prints_every_section():
    """Break tried: naive_allocation refusing 0 blocks (the benchmark's first row): exit 1 at section [1]."""
    p = subprocess.run([sys.executable, "-m", "benchmarks.bench_engine", "--reps", "1"], cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    for head in ("[1] batch-1 latency", "[2] batch-1 end to end", "[3] batch 32", "[4] analytic FLOPs"):
        assert head in p.stdout, p.stdout[-3000:]
    assert "\n     0 " in p.stdout  # the no-block row
