"""Every benchmark at a quick setting, one after another, then a summary of their figures.

``make bench``, about 4 minutes: each benchmark in its own process with a time limit, its output
printed as it comes; the summary lists exit status, wall time and headline lines.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time

from admn_ros.ros.env import stop_process_groups

#: benchmark module -> (its quick arguments, time limit in s, regex of its headline lines in the summary)
BENCHES: dict[str, tuple[tuple[str, ...], float, str]] = {
    "bench_engine": (("--reps", "10"), 240, r"^(best:|ratio 25%|controller |real skipping \(torch)"),
    "bench_sensors": (("--quick",), 180, r"(frames stamped in the window|^  node\d/rgb |shipped profile\b.*\d)"),
    "bench_graph": (("--minutes", "0.5", "--configs", "pipelined:processes"), 150, r"^\[bench_graph\] .*targets/s"),
    "bench_replay": (("--duration", "10", "--storage", "mcap", "--repeat", "1"), 150,
                     r"(BagFrames \(decode\+sync\)|replay, baseline)"),
    "bench_deadline": (("--phase-s", "15"), 180, r"^(deadline mode|idle|loaded)"),
}


def run(name: str, args: tuple[str, ...], limit_s: float) -> tuple[int | None, float, list[str]]:
    """Run one benchmark, echoing its output; returns (exit code or None on timeout, seconds, lines)."""
    env = {"OMP_NUM_THREADS": "1", **os.environ}
    cmd = [sys.executable, "-m", f"benchmarks.{name}", *args]
    print(f"\n===== {name} {' '.join(args)} (limit {limit_s:.0f} s)", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            print(line, end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc: int | None = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        stop_process_groups([proc], 15.0)  # the benchmarks stop their graphs on SIGINT
        rc = None
    reader.join(timeout=5)
    return rc, time.monotonic() - t0, lines


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    results = [(name, headline, *run(name, args, limit_s)) for name, (args, limit_s, headline) in BENCHES.items()]

    print("\n" + "=" * 72 + "\nsummary (quick settings; full settings: each benchmark on its own)")
    for name, headline, rc, secs, lines in results:
        status = "ok" if rc == 0 else ("TIMEOUT" if rc is None else f"FAILED (exit {rc})")
        print(f"- {name}: {status}, {secs:.0f} s")
        for line in lines:
            if re.search(headline, line):
                print(f"    {line.strip()}")
    print(f"total {sum(secs for _, _, _, secs, _ in results):.0f} s")
    return 0 if all(rc == 0 for _, _, rc, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
