"""What the dataset generators and converters share: the worker pool with its progress bar,
the generation summary, byte counts, and the converters' command-line exit codes.

* :class:`WorkerPool`: ``fn`` over tasks in spawned worker processes (in this process for
  ``workers <= 1``), with a tqdm bar (:mod:`admn_ros.core.data.generate`,
  :mod:`admn_ros.core.data.activity`);
* :func:`generation_summary`, :func:`split_bytes`, :func:`fmt_bytes`: ``meta.json["generation"]``
  and the printed summary;
* :func:`cli_exit_code`: 0, or 2 with a one-line error (the generators' and converters'
  command lines).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Sequence

from admn_ros.core.data.simdata import SPLITS


def worker_init() -> None:
    """Initializer of a generator's worker processes: one thread for OpenMP and OpenCV."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


class WorkerPool:
    """Results of ``fn`` over ``tasks``, computed by ``workers`` spawned processes
    (:func:`worker_init`), or in this process when ``workers <= 1``::

        with WorkerPool(fn, tasks, workers, total=n, unit="sample", desc="...") as pool:
            for res in pool:
                pool.advance(k)        # progress bar (when ``progress``)

    Args:
        ordered: results in task order (``imap``) rather than as they finish (``imap_unordered``).
        progress: show a tqdm bar on stderr of ``total`` ``unit`` s labelled ``desc``.

    Leaving the block closes the pool (waiting for the workers), or terminates it when an
    exception leaves the block, and closes the bar.
    """

    def __init__(self, fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int, *, ordered: bool = True,
                 progress: bool = True, total: int = 0, unit: str = "it", desc: str = "") -> None:
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr)
        self.pool = None
        if workers <= 1:
            self.results: Iterable[Any] = map(fn, tasks)
        else:
            self.pool = mp.get_context("spawn").Pool(min(int(workers), len(tasks)), initializer=worker_init)
            self.results = self.pool.imap(fn, tasks) if ordered else self.pool.imap_unordered(fn, tasks)

    def __enter__(self) -> WorkerPool:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def advance(self, n: int) -> None:
        """``n`` more units done (the progress bar)."""
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.pool is not None:
                if exc_type is None:
                    self.pool.close()
                else:
                    self.pool.terminate()
                self.pool.join()
        finally:
            if self.bar is not None:
                self.bar.close()


def split_bytes(out: str | Path) -> dict[str, int]:
    """Bytes of the ``.npy`` files of every split of the dataset in ``out``."""
    out = Path(out)
    return {s: sum(p.stat().st_size for p in (out / s).glob("*.npy")) for s in SPLITS}


def generation_summary(out: str | Path, n_samples: int, workers: int, elapsed: float, busy: float) -> dict[str, Any]:
    """``meta.json["generation"]`` of a generator run: samples, workers, seconds, rate, bytes."""
    nbytes = split_bytes(out)
    return {"n_samples": n_samples, "workers": int(workers), "elapsed_s": round(elapsed, 3),
            "samples_per_s": round(n_samples / max(elapsed, 1e-9), 1), "worker_busy_s": round(busy, 3),
            "bytes": nbytes, "total_bytes": sum(nbytes.values())}


def fmt_bytes(n: float) -> str:
    """``"512 B"``, ``"1.5 KB"``, ``"2.0 MB"``, ``"3.1 GB"``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def cli_exit_code(convert: Callable[[], Any]) -> int:
    """Run a generator or converter for its command line: 0 on success, 2 after printing
    ``error: ...`` to stderr for an ``OSError``, ``ValueError`` or ``ImportError``."""
    try:
        convert()
    except (OSError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
