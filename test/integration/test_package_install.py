"""The robot install path: the top-level CMakeLists.txt (what colcon builds) installs the
interfaces, the Python package next to the generated ``admn_ros.msg``, one executable per
entry in resource/executables under lib/admn_ros (``ros2 run``), and launch/config/models
under share/admn_ros (``ros2 launch``). Built here with the venv's ROS wheels."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from admn_ros.core.paths import SOURCE_ROOT
from admn_ros.ros.graph import GraphOptions

PREFIX = Path(sys.prefix)


def _executables() -> list[str]:
    lines = (SOURCE_ROOT / "resource" / "executables").read_text().splitlines()
    return [ln.split()[0] for ln in lines if ln and not ln.startswith("#")]


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_install_layout_matches_ros2_run_and_launch(tmp_path: Path) -> None:
    build, inst, src = tmp_path / "build", tmp_path / "install", tmp_path / "src" / "admn_ros"
    # Build a copy of the tracked sources (as colcon sees a clone): the venv inside the
    # checkout would otherwise be an include path "prefixed in the source directory".
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=SOURCE_ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if rel.startswith(("data/", "runs/")) or not (SOURCE_ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SOURCE_ROOT / rel, src / rel)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(PREFIX), CMAKE_PREFIX_PATH=str(PREFIX))
    cfg = ["cmake", "-S", str(src), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={inst}",
           f"-DCMAKE_PREFIX_PATH={PREFIX}", f"-DPython3_EXECUTABLE={sys.executable}",
           "-DBUILD_TESTING=OFF", "-Wno-dev"]
    for cmd in (cfg, ["cmake", "--build", str(build), "-j2"], ["cmake", "--install", str(build)]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{cmd[:3]} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"

    for name in _executables():
        exe = inst / "lib" / "admn_ros" / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"missing executable {exe}"
    share = inst / "share" / "admn_ros"
    for rel in ("package.xml", "launch/tracking.launch.py", "launch/activity.launch.py", "config/fastdds.xml",
                "config/sensors.yaml", "config/activity.yaml"):
        assert (share / rel).is_file(), f"missing {share / rel}"
    assert (inst / "share" / "ament_index" / "resource_index" / "packages" / "admn_ros").is_file()

    site = next(inst.glob("lib/python3*/site-packages/admn_ros"))
    assert (site / "msg" / "_layer_allocation.py").is_file()
    init = (site / "__init__.py").read_text()
    assert "extend_path" in init, "our __init__.py must replace rosidl's empty one"
    assert (site / "core" / "streams.py").is_file() and (site / "ros" / "runner.py").is_file()

    # The installed tree imports on its own (our package + generated msg in one place).
    code = ("import admn_ros, admn_ros.core.streams as s; from admn_ros.msg import LayerAllocation; "
            "print(admn_ros.__file__)")
    env2 = dict(os.environ, PYTHONPATH=str(site.parent), PYTHONNOUSERSITE="1")
    r = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, %r); " % str(site.parent)
                        + "import site; site.main(); " + code], env=env2, capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert str(site) in r.stdout


@pytest.mark.parametrize("launch_file, options, extra", [
    ("tracking.launch.py", GraphOptions, set()),
    ("activity.launch.py", GraphOptions, {"subject_id", "seed"}),
])
def test_launch_file_declares_described_arguments_matching_graph_options(launch_file, options, extra) -> None:
    tree = ast.parse((SOURCE_ROOT / "launch" / launch_file).read_text())
    args = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and any(getattr(t, "id", "") == "ARGS" for t in n.targets))
    declared = {elt.elts[0].value: elt.elts[-1].value for elt in args.value.elts}
    required = {"namespace", "params_file", "budget", "use_sim_time", "use_rviz", "sim_sensors", "model_dir"} | extra
    assert required <= set(declared), f"missing launch arguments: {required - set(declared)}"
    assert all(len(desc) > 10 for desc in declared.values()), "every launch argument needs a description"
    fields = set(options.__dataclass_fields__)
    assert set(declared) <= fields, f"launch arguments without a graph option: {set(declared) - fields}"
    assert "generate_launch_description" in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    # every declared argument is read when building the nodes
    used = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "get"
            and n.args and isinstance(n.args[0], ast.Constant)}
    assert set(declared) - {"use_rviz"} <= used | {"composed"}, f"arguments never read: {set(declared) - used}"
