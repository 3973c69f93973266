#!/usr/bin/env python3
"""Build and install admn_ros's rosidl interfaces (msg/) into a virtual environment (``make`` runs it
with the venv's interpreter): fix the ROS 2 wheels' CMake exports, which hard-code the wheel builder's
include directories; build this repository's CMakeLists.txt with ``ADMN_ROS_INSTALL_PYTHON=OFF``
into the venv prefix; then remove rosidl's empty ``admn_ros/__init__.py`` and its ``admn_ros``
egg-info (our editable sources provide the package; pip would delete the generated files).
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
    """Point the wheels' CMake exports at this interpreter's Python and numpy include directories."""
    import numpy

    py_inc = sysconfig.get_paths()["include"]
    np_inc = numpy.get_include()
    fixed = 0
    for f in (prefix / "share").rglob("*.cmake"):
        text = f.read_text(errors="surrogateescape")
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
