"""The robot install path: the top-level CMakeLists.txt (what colcon builds) installs the
interfaces, the Python package next to the generated ``admn_ros.msg``, one executable per
entry in resource/executables under lib/admn_ros (``ros2 run``), and launch/config/models
under share/admn_ros (``ros2 launch``). Built here with the venv's ROS wheels; where launch and
launch_ros are installed, the installed launch files are run with them."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from admn_ros.core.paths import SOURCE_ROOT

PREFIX = Path(sys.prefix)


def _executables() -> list[str]:
    lines = (SOURCE_ROOT / "resource" / "executables").read_text().splitlines()
    return [ln.split()[0] for ln in lines if ln and not ln.startswith("#")]


@pytest.fixture(scope="module")
def install(tmp_path_factory) -> Path:
    """A CMake install of a copy of the tracked sources (as colcon builds a clone)."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    tmp_path = tmp_path_factory.mktemp("install")
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
    return inst


def test_cmake_install_layout_matches_ros2_run_and_launch(install: Path, tmp_path: Path) -> None:
    inst = install
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




LAUNCH = """\
import sys, threading
import launch
from launch.actions import GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import SetRemap
f, secs, remap, args = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
inc = IncludeLaunchDescription(PythonLaunchDescriptionSource(f), launch_arguments=[a.split(":=", 1) for a in args])
remaps = [SetRemap(src=remap.split(":=")[0], dst=remap.split(":=")[1])] if remap else []
ls = launch.LaunchService()
ls.include_launch_description(launch.LaunchDescription([GroupAction([*remaps, inc])]))
t = threading.Timer(secs, ls.shutdown)
t.daemon = True
t.start()
sys.exit(ls.run())
"""


@pytest.mark.ros
@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros not installed")
def test_launch_files_run_on_the_install_layout(install: Path, tmp_path: Path) -> None:
    """``ros2 launch``'s machinery (launch.LaunchService, launch_ros) runs the installed
    launch files: every node of the graph starts from lib/admn_ros, parameters reach the
    nodes (read back over the parameter services), the namespace and a remapping of the
    including launch file (SetRemap) apply, use_sim_time follows a /clock the test publishes,
    composed:=true and the activity graph publish their outputs, sim_sensors:=false starts no
    sensor node."""
    import rclpy
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rcl_interfaces.srv import GetParameters
    from rosgraph_msgs.msg import Clock

    from admn_ros.msg import ActivityLabel

    site = next(install.glob("lib/python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               LD_LIBRARY_PATH=os.pathsep.join([str(install / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]),
               AMENT_PREFIX_PATH=os.pathsep.join([str(install), os.environ.get("AMENT_PREFIX_PATH", str(PREFIX))]),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    script = tmp_path / "launch_service.py"
    script.write_text(LAUNCH)
    launch_dir = install / "share" / "admn_ros" / "launch"
    cases = [  # launch file, arguments, SetRemap, namespace, output topic and type, /clock start (s)
        ("tracking.launch.py", [], "", "", "admn/target", PoseWithCovarianceStamped, None),
        ("tracking.launch.py", ["composed:=true", "namespace:=robot1", "budget:=36", "use_sim_time:=true"],
         "admn/target:=tracked", "/robot1", "tracked", PoseWithCovarianceStamped, 5000.0),
        ("tracking.launch.py", ["sim_sensors:=false"], "", "", None, None, None),
        ("activity.launch.py", ["budget:=12"], "", "", "admn/activity", ActivityLabel, None),
    ]
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("install_launch_probe", context=ctx)
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        for lf, args, remap, ns, topic, mtype, clock0 in cases:
            got: list = []
            sub = node.create_subscription(mtype, f"{ns}/{topic}", got.append, 10) if topic else None
            clock = node.create_publisher(Clock, "/clock", 10) if clock0 else None
            log = tmp_path / f"launch_{len(list(tmp_path.glob('launch_*.log')))}.log"
            with open(log, "w") as fh:   # a file: an unread pipe would stall launch and its nodes' output
                proc = subprocess.Popen([sys.executable, str(script), str(launch_dir / lf), "300", remap, *args],
                                        env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
            failure = None
            try:
                t0 = time.monotonic()
                while time.monotonic() - t0 < 150 and (len(got) < 5 if topic else time.monotonic() - t0 < 30):
                    if clock is not None:
                        c = clock0 + time.monotonic() - t0
                        clock.publish(Clock(clock=Time(sec=int(c), nanosec=int(c % 1 * 1e9))))
                    ex.spin_once(timeout_sec=0.02)
                names = {f"{n_ns.rstrip('/')}/{n}" for n, n_ns in node.get_node_names_and_namespaces()}
                want = {f"{ns}/{n}" for n in ({"controller_node", "fusion_node", "viz_node", "backbone_node1",
                                               "backbone_node2", "backbone_node3"} if lf.startswith("tracking")
                                              else {"activity_node"})}
                assert want <= names, f"{lf} {args}: nodes missing: {want - names}"
                assert (f"{ns}/sensor_node" in names) == ("sim_sensors:=false" not in args), names
                if topic:
                    assert len(got) >= 5, f"{lf} {args}: {len(got)} messages on {ns}/{topic}"
                if clock0:
                    stamps = [m.header.stamp.sec for m in got]
                    assert all(clock0 - 1 <= s <= clock0 + 100 for s in stamps), stamps
                target = f"{ns}/{'activity_node' if lf.startswith('activity') else 'controller_node'}"
                cli = node.create_client(GetParameters, f"{target}/get_parameters")
                assert cli.wait_for_service(timeout_sec=30.0), f"{target}/get_parameters"
                fut = cli.call_async(GetParameters.Request(names=["budget", "use_sim_time", "sensor_nodes"]))
                end = time.monotonic() + 30
                while not fut.done() and time.monotonic() < end:
                    ex.spin_once(timeout_sec=0.05)
                assert fut.done(), f"{target}/get_parameters: no answer within 30 s"
                budget, sim, nodes = fut.result().values
                exp_budget = {"tracking.launch.py": 36 if "budget:=36" in args else 27, "activity.launch.py": 12}[lf]
                assert (budget.integer_value, sim.bool_value) == (exp_budget, bool(clock0)), (lf, args)
                assert list(nodes.string_array_value) == (["node1"] if lf.startswith("activity")
                                                          else ["node1", "node2", "node3"])
                node.destroy_client(cli)
            except AssertionError as exc:
                failure = exc
            finally:
                proc.send_signal(signal.SIGINT)     # what Ctrl-C does to `ros2 launch`
                try:
                    proc.wait(timeout=60)
                    out = log.read_text()
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    out = log.read_text() + "\n(launch did not stop within 60 s of SIGINT)"
                if sub is not None:
                    node.destroy_subscription(sub)
                if clock is not None:
                    node.destroy_publisher(clock)
            # every node ends on launch's SIGINT or SIGTERM (never SIGKILL), launch itself ends
            assert failure is None and "Traceback" not in out and "did not stop" not in out \
                and "exit code -9" not in out, \
                f"{lf} {args}: {failure}\n{out[-4000:]}"
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
