"""Broken model files at start-up: missing, truncated, corrupt, of the wrong shape, or a
controller trained for another stage-1 network. Each gives one error that names the file and
the mismatch, and the same text reaches the user from every entry point: ``Runtime.load``, a
node's configure (the process exits with code 2 and prints it) and the CLI (``admn-ros
replay`` exits with code 2). Nothing is unpickled: loading is safetensors only.

The messages asserted here are the ones docs/DEPLOY.md ("Troubleshooting") shows.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from admn_ros.core.checkpoint import CheckpointError, read_metadata, save_checkpoint
from fixtures import write_random_models

SMALL = dict(vit_dim=16, vit_heads=2, vit_mlp_ratio=2.0, fusion_dim=16, fusion_depth=1, fusion_heads=2)
REPO = Path(__file__).resolve().parents[2]


def _missing(d: Path) -> str:
    (d / "tracking.safetensors").unlink()
    return (rf"{re.escape(str(d))}: no stage1 tracking model \(e\.g\. tracking\.safetensors\) among 1 "
            r"checkpoint\(s\) \(kinds found: \['controller'\]\)")


def _truncated(d: Path) -> str:   # a copy cut off half-way (disk full, interrupted transfer)
    p = d / "tracking.safetensors"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return (rf"{re.escape(str(p))}: not a readable safetensors file \(corrupt or truncated\?\): "
            r"Error while deserializing header: incomplete metadata, file not fully covered")


def _corrupt(d: Path) -> str:     # the header intact, some weight bytes changed
    p = d / "tracking.safetensors"
    data = bytearray(p.read_bytes())
    for i in range(len(data) - 4000, len(data) - 3000, 7):
        data[i] ^= 0x40
    p.write_bytes(bytes(data))
    return (rf"{re.escape(str(p))}: weights do not match the content hash recorded when the file was saved "
            r"\(weights_id [0-9a-f]{16} != [0-9a-f]{16}\); the file is corrupt, copy or train it again")


def _wrong_shape(d: Path) -> str:  # weights of one network under the config of another
    from safetensors.torch import load_file

    p = d / "tracking.safetensors"
    meta = read_metadata(p)
    save_checkpoint(p, kind="stage1", state_dict=load_file(p), meta={"model_config": dict(meta["model_config"],
                                                                                          vit_dim=32)})
    return (rf"{re.escape(str(p))}: 462 of 496 weights do not fit the network its config describes: "
            r"key backbones\.rgb\.patch_embed\.cls shape \(1,1,16\) != expected \(1,1,32\);")


def _foreign_controller(d: Path) -> str:   # stage 1 retrained, the controller left from before
    old = read_metadata(d / "tracking.safetensors")["weights_id"]
    write_random_models(d, seed=5, universal=False, budgets=(), **SMALL)
    new = read_metadata(d / "tracking.safetensors")["weights_id"]
    return (rf"{re.escape(str(d / 'controller_L27.safetensors'))}: controller trained for a different stage-1 "
            rf"network \(stage1_weights_id {old}\), not for tracking\.safetensors \(weights_id {new}\); train it "
            rf"again on this model \(`admn-ros train stage2 --stage1 {re.escape(str(d / 'tracking.safetensors'))}`\)"
            rf" or remove it from {re.escape(str(d))}")


def _pickle(d: Path) -> str:      # a torch.save / pickle file under the checkpoint's name
    p = d / "tracking.safetensors"
    p.write_bytes(pickle.dumps({"state_dict": _Evil()}))
    return (rf"{re.escape(str(p))}: not a readable safetensors file \(corrupt or truncated\?\): "
            r"Error while deserializing header: ")


class _Evil:
    """Unpickling this creates ``marker``: the proof that nothing was unpickled is its absence."""

    marker = ""

    def __reduce__(self):
        return (open, (_Evil.marker, "w"))


CASES = {"missing": _missing, "truncated": _truncated, "corrupt": _corrupt, "wrong_shape": _wrong_shape,
         "foreign_controller": _foreign_controller, "pickle": _pickle}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """case -> (model directory, regex of the one error it must give)."""
    root = tmp_path_factory.mktemp("model_files")
    _Evil.marker = str(root / "unpickled")
    good = root / "good"
    write_random_models(good, seed=1, universal=False, budgets=(27,), **SMALL)
    out = {}
    for name, make in CASES.items():
        d = root / name
        shutil.copytree(good, d)
        out[name] = (d, make(d))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_runtime_load_names_the_file_and_the_mismatch(broken, case):
    """Break tried: ``load_checkpoint`` without the content-hash check: the corrupt file loaded
    (wrong weights, no error) and the ``corrupt`` case failed; the runtime skipping a
    controller of another stage-1 network: the ``foreign_controller`` case failed."""
    from admn_ros.core.runtime import Runtime

    d, want = broken[case]
    with pytest.raises(CheckpointError) as ei:
        Runtime.load(d, backend="torch")
    assert re.fullmatch(want + r".*", str(ei.value), re.S), f"{case}: {ei.value}"
    assert not Path(_Evil.marker).exists()


@pytest.mark.ros
def test_node_configure_fails_with_the_same_error(broken):
    """Every case in a controller node (autostart, in this process): configure fails with the
    message, the node stays unconfigured (no publishers, no model).

    Break tried: ``on_configure`` catching ``CheckpointError`` as a generic ``Exception`` (the
    message became "CheckpointError: ..." behind the type name): the test failed."""
    import rclpy
    from rclpy.parameter import Parameter

    from admn_ros.ros.controller_node import ControllerNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        for case, (d, want) in broken.items():
            node = ControllerNode(context=ctx, parameter_overrides=[Parameter("model_dir", value=str(d)),
                                                                    Parameter("backend", value="torch")])
            try:
                assert node.configure_error is not None and re.fullmatch(want + r".*", node.configure_error, re.S), \
                    f"{case}: {node.configure_error}"
                assert node.runtime is None and node.diag_pub is None
            finally:
                node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
    assert not Path(_Evil.marker).exists()


@pytest.mark.ros
def test_node_process_exits_with_code_2_and_the_error(broken):
    """A controller node process started on a directory whose controller belongs to another
    stage-1 network exits with code 2 and prints ``[controller_node] error: <the message>``.

    Break tried: ``AdmnNode.main`` ignoring a failed autostart (the node kept spinning unconfigured):
    the process did not exit and the test failed on the timeout."""
    d, want = broken["foreign_controller"]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-m", "admn_ros.ros.controller_node", "--ros-args",
                          "-p", f"model_dir:={d}", "-p", "backend:=torch"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=90.0)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 2, f"exit code {p.returncode}\n{err}"
    assert re.search(r"^\[controller_node\] error: " + want, err, re.M), err


def test_cli_exits_with_the_same_error(broken, tmp_path, capsys):
    """``admn-ros replay`` with each broken directory: exit code 2, ``admn-ros replay: error:``
    and the message.

    Break tried: the replay CLI catching only ``BagError`` (a ``CheckpointError`` escaped as a
    traceback): the test failed."""
    from admn_ros.bags.record import record_sim
    from admn_ros.bags.replay_cli import main as replay_main

    bag = tmp_path / "bag"
    record_sim(bag, frames=2, seed=1)
    for case, (d, want) in broken.items():
        rc = replay_main([str(bag), "--model-dir", str(d), "--out", str(tmp_path / case), "--backend", "torch",
                          "--no-progress", "--no-bag"])
        err = capsys.readouterr().err
        assert rc == 2 and re.search(r"^admn-ros replay: error: " + want, err, re.M), f"{case}: rc {rc}\n{err}"
    assert not Path(_Evil.marker).exists()


def test_no_code_path_unpickles():
    """No module of the package, its scripts or benchmarks loads a pickle (``torch.load``,
    ``pickle.load``, ``np.load(allow_pickle=True)``, ...): checkpoints are safetensors only.

    Break tried: a ``torch.load(path)`` fallback added to ``load_checkpoint``: the test failed."""
    pat = re.compile(r"torch\.load\(|torch\.jit\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|"
                     r"joblib\.load\(|dill\.loads?\(|cloudpickle|\bUnpickler\b")
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}"
            for top in ("admn_ros", "scripts", "benchmarks") for p in sorted((REPO / top).rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if pat.search(line)]
    assert not hits, "\n".join(hits)
