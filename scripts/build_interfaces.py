#!/usr/bin/env python3
"""Build and install admn_ros's rosidl interfaces (msg/) into a virtual environment.

Run with the venv's interpreter (``make`` does this). Steps:

1. The ROS 2 Kilted PyPI wheels ship CMake export files that hard-code the wheel
   builder's Python and numpy include directories (``/opt/python/cp311-cp311/...``);
   rewrite them to this interpreter's directories (idempotent).
2. Configure, build and install this repository's CMakeLists.txt with
   ``ADMN_ROS_INSTALL_PYTHON=OFF`` (interfaces only) into the venv prefix, so the
   generated ``admn_ros.msg`` module and its typesupport libraries are found
   without extra PYTHONPATH / LD_LIBRARY_PATH.
3. Remove rosidl's empty ``site-packages/admn_ros/__init__.py`` (our editable
   sources provide the package and extend ``__path__`` to the generated ``msg``)
   and the ``admn_ros`` egg-info it registers (pip would take it for our
   distribution and delete the generated files when installing ours).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

BUILDER_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILDER_NP_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def fix_exports(prefix: Path) -> int:
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    fixed = 0
    for f in (prefix / "share").rglob("*.cmake"):
        text = f.read_text(errors="surrogateescape")
        if "/opt/python/cp311-cp311" not in text:
            continue
        new = text.replace(BUILDER_NP_INCLUDE, np_inc).replace(BUILDER_PY_INCLUDE, py_inc)
        if new != text:
            f.write_text(new, errors="surrogateescape")
            fixed += 1
    return fixed


def main() -> int:
    repo = Path(__file__).resolve().parents[1]
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        print("error: run this with a virtual environment's python (make does)", file=sys.stderr)
        return 2
    for tool in ("cmake", "cc"):
        if shutil.which(tool) is None:
            print(f"error: '{tool}' not found; install it (Debian: apt-get install cmake gcc)", file=sys.stderr)
            return 2
    t0 = time.monotonic()
    print(f"[interfaces] rewrote builder paths in {fix_exports(prefix)} CMake export file(s)", flush=True)
    build = repo / "build" / "interfaces"
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    env.pop("PYTHONPATH", None)
    cfg = [
        "cmake", "-S", str(repo), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DCMAKE_PREFIX_PATH={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
        "-DADMN_ROS_INSTALL_PYTHON=OFF", "-Wno-dev",
    ]
    for cmd in (cfg, ["cmake", "--build", str(build), "-j", str(os.cpu_count() or 1)],
                ["cmake", "--install", str(build)]):
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print(r.stdout[-6000:], file=sys.stderr)
            print(f"error: {' '.join(cmd[:3])} failed (exit {r.returncode})", file=sys.stderr)
            return r.returncode
    site = Path(sysconfig.get_paths()["purelib"]) / "admn_ros"
    init = site / "__init__.py"
    if init.exists() and init.stat().st_size == 0:
        init.unlink()
    # rosidl's install registers an 'admn_ros' egg-info; pip would treat it as our
    # distribution and delete the generated files on `pip install -e .`.
    for info in site.parent.glob("admn_ros-*.egg-info"):
        shutil.rmtree(info) if info.is_dir() else info.unlink()
    if not (site / "msg").is_dir():
        print(f"error: generated module not found at {site / 'msg'}", file=sys.stderr)
        return 1
    print(f"[interfaces] built and installed into {prefix} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
