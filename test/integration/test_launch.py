"""launch/tracking.launch.py and launch/activity.launch.py start exactly the processes
``admn-ros run`` starts (:func:`admn_ros.ros.graph.graph_processes`), for the default,
composed:=true, sim_sensors:=false and activity cases and with namespace, use_sim_time,
budget, sensor nodes and respawn changed.

Where ``launch_ros`` is importable the real launch file runs under ``launch.LaunchService``
with recording executables in a package prefix of their own (each writes its command line
and the parameter files launch_ros made, exits 1 the first time, and is recorded again when
launch respawns it). Elsewhere (CI) the launch file is evaluated against
``fixtures/launch_standin.py``, which checks each call against launch/launch_ros's documented
signatures and builds the command line launch_ros documents. Both are compared, process by
process (executable, arguments, node name, namespace, parameter files, parameters,
remappings, respawn), with the commands of the runner's ``GraphProcesses``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from admn_ros.core.paths import SOURCE_ROOT
from admn_ros.ros.graph import options_processes
from admn_ros.ros.runner import options_from_args, parse_args
from fixtures import launch_standin

REAL = importlib.util.find_spec("launch_ros") is not None
EXECUTABLES = {ln.split()[1].split(":")[0]: ln.split()[0] for ln in
               (SOURCE_ROOT / "resource" / "executables").read_text().splitlines() if ln and not ln.startswith("#")}
#: launch argument -> the `admn-ros run` flag that means the same
FLAGS = {"namespace": "--namespace", "budget": "--budget", "sensor_nodes": "--sensor-nodes",
         "respawn_delay": "--respawn-delay", "model_dir": "--model-dir", "params_file": "--params-file",
         "allocation_mode": "--allocation-mode", "seed": "--seed", "subject_id": "--subject-id"}
SWITCHES = {("composed", "true"): "--composed", ("use_sim_time", "true"): "--use-sim-time",
            ("sim_sensors", "false"): "--no-sim-sensors", ("respawn", "false"): "--no-respawn"}

CASES = [
    ("tracking", {}),
    ("tracking", {"composed": "true"}),
    ("tracking", {"sim_sensors": "false"}),
    ("activity", {}),
    ("tracking", {"namespace": "robot1", "use_sim_time": "true", "budget": "36", "sensor_nodes": "node1,node2",
                  "respawn_delay": "0.2", "allocation_mode": "pipelined"}),
    ("activity", {"composed": "true", "respawn": "false", "seed": "3"}),
]
IDS = ["default", "composed", "no_sim_sensors", "activity", "ns_simtime_budget", "activity_composed_norespawn"]


def runner_argv(task: str, args: dict[str, str]) -> list[str]:
    argv = ["--task", task]
    for k, v in args.items():
        argv += [FLAGS[k], v] if k in FLAGS else [SWITCHES[(k, v)]]
    return argv


def normalize(cmd: list[str], files: dict[str, str] | None = None) -> dict:
    """A command line -> executable, arguments, name, namespace, parameter files, parameters,
    remappings. ``launch_params_*`` files (launch_ros's parameter dicts; contents in ``files``
    or on disk) count as parameters of the node's fully qualified name."""
    if cmd[1:2] == ["-m"]:
        exe, rest = EXECUTABLES[cmd[2]], cmd[3:]
    else:
        exe, rest = Path(cmd[0]).name, cmd[1:]
    k = rest.index("--ros-args")
    out = {"executable": exe, "arguments": rest[:k], "name": None, "namespace": "/", "files": [],
           "params": {}, "remaps": []}
    ros, dicts, i = rest[k:], [], 0
    while i < len(ros):
        flag = ros[i]
        if flag == "--ros-args":
            i += 1
            continue
        val = ros[i + 1]
        i += 2
        if flag == "-r":
            a, b = val.split(":=", 1)
            if a == "__node":
                out["name"] = b
            elif a == "__ns":
                out["namespace"] = b
            else:
                out["remaps"].append((a, b))
        elif flag == "-p":
            a, b = val.split(":=", 1)
            out["params"][a] = yaml.safe_load(b)
        elif flag == "--params-file":
            if Path(val).name.startswith("launch_params_"):
                # launch_ros dumps list values as tuples (!!python/tuple), which rcl reads as lists
                text = (files or {}).get(val) or Path(val).read_text()
                dicts.append(yaml.safe_load(text.replace("!!python/tuple", "")))
            else:
                out["files"].append(val)
        else:
            raise AssertionError(f"unexpected --ros-args item {flag!r} in {cmd}")
    fqn = out["namespace"].rstrip("/") + "/" + out["name"]
    for d in dicts:
        assert list(d) == [fqn], f"parameter dict of {fqn} written for {list(d)}"
        out["params"].update(d[fqn]["ros__parameters"])
    return out


def runner_processes(task: str, args: dict[str, str]) -> dict[str, dict]:
    opts = options_from_args(parse_args("admn-ros run", runner_argv(task, args)))
    return {p.name: {**normalize(p.command(sys.executable)), "respawn": (p.respawn, p.respawn_delay)}
            for p in options_processes(opts)}


def standin_processes(task: str, args: dict[str, str], tmp: Path) -> dict[str, dict]:
    nodes = launch_standin.evaluate(SOURCE_ROOT / "launch" / f"{task}.launch.py", args)
    out = {}
    for n in nodes:
        assert n.package == "admn_ros" and n.kwargs.get("output") == "screen"
        out[n.name] = {**normalize(n.command(tmp)),
                       "respawn": (n.kwargs.get("respawn", False), n.kwargs.get("respawn_delay"))}
    return out


RECORDER = """\
#!{python}
import json, os, sys, time
rec = os.environ["ADMN_LAUNCH_RECORD"]
name = next(a.split(":=")[1] for a in sys.argv if a.startswith("__node:="))
files = {{f: open(f).read() for p, f in zip(sys.argv, sys.argv[1:])
         if p == "--params-file" and os.path.basename(f).startswith("launch_params_")}}
n = len([f for f in os.listdir(rec) if f.startswith(name + ".")])
with open(os.path.join(rec, f"{{name}}.{{n}}.json"), "w") as fh:
    json.dump({{"argv": sys.argv, "files": files, "t": time.monotonic()}}, fh)
if n == 0:
    sys.exit(1)          # die once: launch must respawn us
time.sleep(120)
"""

SERVICE = """\
import os, sys, threading, time
import launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
f, want, rec, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
ls = launch.LaunchService()
ls.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(f), launch_arguments=[a.split(":=", 1) for a in args])]))
def watch():
    end = time.monotonic() + 60
    while time.monotonic() < end and len(os.listdir(rec)) < want:
        time.sleep(0.1)
    time.sleep(1.0)
    ls.shutdown()
threading.Thread(target=watch, daemon=True).start()
sys.exit(ls.run())
"""


def real_processes(task: str, args: dict[str, str], tmp: Path, expected: dict[str, dict]) -> dict[str, dict]:
    prefix, rec = tmp / "prefix", tmp / "records"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "admn_ros").write_text("")
    (prefix / "lib" / "admn_ros").mkdir(parents=True)
    rec.mkdir()
    for exe in set(EXECUTABLES.values()):
        f = prefix / "lib" / "admn_ros" / exe
        f.write_text(RECORDER.format(python=sys.executable))
        f.chmod(0o755)
    respawning = sum(1 for p in expected.values() if p["respawn"][0])
    want = len(expected) + respawning
    env = dict(os.environ, AMENT_PREFIX_PATH=f"{prefix}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}",
               ADMN_LAUNCH_RECORD=str(rec))
    script = tmp / "service.py"
    script.write_text(SERVICE)
    r = subprocess.run([sys.executable, str(script), str(SOURCE_ROOT / "launch" / f"{task}.launch.py"), str(want),
                        str(rec), *[f"{k}:={v}" for k, v in args.items()]], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {}
    for f in sorted(rec.glob("*.json")):
        d = json.loads(f.read_text())
        runs.setdefault(f.name.split(".")[0], []).append(d)
    for name, rs in runs.items():
        norm = [normalize(d["argv"], d["files"]) for d in rs]
        assert all(n == norm[0] for n in norm), f"{name}: the respawned command differs"
        # respawned, after at least the delay asked for (then reported as that delay)
        exp_delay = expected.get(name, {}).get("respawn", (False, 0.0))[1]
        delay = rs[1]["t"] - rs[0]["t"] if len(rs) > 1 else exp_delay
        out[name] = {**norm[0], "respawn": (len(rs) > 1, exp_delay if delay >= exp_delay else delay)}
    return out


@pytest.mark.parametrize("task, args", CASES, ids=IDS)
def test_launch_file_starts_the_runners_processes(task, args, tmp_path) -> None:
    """Break tried: the launch files starting only admn_container under composed:=true (no
    simulated sensor process) fails both composed cases (stand-in and real launch); dropping
    respawn_delay from the Node actions fails every respawning case against the stand-in (the
    real launch only shows the restart happened no sooner than the delay)."""
    expected = runner_processes(task, args)
    got = real_processes(task, args, tmp_path, expected) if REAL else standin_processes(task, args, tmp_path)
    assert list(got) == list(expected) if not REAL else sorted(got) == sorted(expected)
    for name, exp in expected.items():
        assert got[name] == exp, f"{name}: launch {got[name]} != runner {exp}"
    if args.get("composed") == "true":
        assert "sensor_node" in got and "admn_container" in got


def test_launch_arguments_are_described_and_rviz_is_optional(tmp_path) -> None:
    for task in ("tracking", "activity"):
        with launch_standin.installed():
            import runpy

            ld = runpy.run_path(str(SOURCE_ROOT / "launch" / f"{task}.launch.py"))["generate_launch_description"]()
        declared = {e.name: e for e in ld.entities if isinstance(e, launch_standin.DeclareLaunchArgument)}
        assert {"namespace", "params_file", "budget", "use_sim_time", "use_rviz", "sim_sensors", "model_dir",
                "composed", "respawn", "respawn_delay"} <= set(declared)
        assert all(len(e.description) > 10 for e in declared.values())
        assert declared["respawn"].default_value == "true"
        rviz = [n for n in launch_standin.evaluate(SOURCE_ROOT / "launch" / f"{task}.launch.py", {"use_rviz": "true"})
                if n.package == "rviz2"]
        assert len(rviz) == 1 and Path(rviz[0].arguments[1]).name == "admn.rviz"
        assert not [n for n in launch_standin.evaluate(SOURCE_ROOT / "launch" / f"{task}.launch.py", {})
                    if n.package == "rviz2"]
