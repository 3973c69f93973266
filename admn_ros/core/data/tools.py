"""What the dataset generators and converters share: worker pool, progress, summary, exit codes."""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from admn_ros.core.data.simdata import SPLITS


def clear_dataset(out: Path, overwrite: bool, remove: bool = True) -> None:
    """Refuse an existing dataset in ``out`` (FileExistsError) unless ``overwrite``; then remove it."""
    if (out / "meta.json").exists() or any((out / s).exists() for s in SPLITS):
        if not overwrite:
            raise FileExistsError(f"{out} already holds a dataset; pass overwrite=True (--overwrite)")
        if remove:
            (out / "meta.json").unlink(missing_ok=True)
            for s in SPLITS:
                shutil.rmtree(out / s, ignore_errors=True)


@contextmanager
def splits_removed_on_error(out: Path, splits: Iterable[str] = SPLITS) -> Iterator[None]:
    """Remove the ``splits`` written in ``out`` when the block fails or is interrupted (Ctrl-C), so
    that nothing half-written looks like a dataset to the next run."""
    try:
        yield
    except BaseException:
        for s in splits:
            shutil.rmtree(out / s, ignore_errors=True)
        raise


def worker_init() -> None:
    """One thread for OpenMP and OpenCV in a worker process."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def progress_bar(enabled: bool, total: int, unit: str, desc: str, items: Iterable[Any] | None = None, *,
                 transient: bool = False) -> Any:
    """A tqdm bar on stderr (iterating over ``items`` if given) that shows nothing unless ``enabled``;
    a ``transient`` one follows the terminal's width and is erased when closed."""
    from tqdm import tqdm

    return tqdm(items, total=total, unit=unit, desc=desc, file=sys.stderr, disable=not enabled, leave=not transient,
                dynamic_ncols=transient)


def truncate_npy(path: Path, n: int) -> None:
    """Rewrite the .npy file ``path`` keeping its first ``n`` rows, 1024 rows at a time."""
    src = np.load(path, mmap_mode="r")
    tmp = path.with_name(path.stem + ".tmp.npy")
    dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=src.dtype, shape=(n, *src.shape[1:]))
    for i in range(0, n, 1024):
        dst[i:i + 1024] = src[i:min(i + 1024, n)]
    dst.flush()
    del dst, src
    os.replace(tmp, path)


class WorkerPool:
    """Results of ``fn`` over ``tasks`` from ``workers`` spawned processes (in this process for
    ``workers <= 1``), in task order if ``ordered``, with a tqdm bar that :meth:`advance` moves.
    Leaving the block waits for the workers, or terminates them after an exception."""

    def __init__(self, fn: Callable[[Any], Any], tasks: Sequence[Any], workers: int, *, ordered: bool = True,
                 progress: bool = True, total: int = 0, unit: str = "it", desc: str = "") -> None:
        self.bar = progress_bar(progress, total, unit, desc)
        self.workers, self.t0, self.busy = int(workers), time.perf_counter(), 0.0
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

    def advance(self, n: int, busy_s: float) -> None:
        """``n`` more items done, in ``busy_s`` seconds of a worker."""
        self.busy += busy_s
        self.bar.update(n)

    def summary(self, out: str | Path, n_samples: int) -> dict[str, Any]:
        """``meta.json["generation"]`` of a generator run: samples, workers, seconds, rate, bytes."""
        elapsed = time.perf_counter() - self.t0
        nbytes = {s: sum(p.stat().st_size for p in (Path(out) / s).glob("*.npy")) for s in SPLITS}
        return {"n_samples": n_samples, "workers": self.workers, "elapsed_s": round(elapsed, 3),
                "samples_per_s": round(n_samples / max(elapsed, 1e-9), 1), "worker_busy_s": round(self.busy, 3),
                "bytes": nbytes, "total_bytes": sum(nbytes.values())}

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.pool is not None:
                (self.pool.close if exc_type is None else self.pool.terminate)()
                self.pool.join()
        finally:
            self.bar.close()


def fmt_bytes(n: float) -> str:
    """``"512 B"``, ``"1.5 KB"``, ``"2.0 MB"``, ``"3.1 GB"``."""
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GB"


def cli_exit_code(convert: Callable[[], Any]) -> int:
    """0 on success, 2 after printing ``error: ...`` for an OSError, ValueError or ImportError."""
    try:
        convert()
    except (OSError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
