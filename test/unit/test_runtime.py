"""Runtime (admn_ros.core.runtime) with a tracking model: loading a model directory with clear
errors and the task it holds, the allocation policy, real skipping in embed, fusion with
missing streams."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from admn_ros.core.checkpoint import CheckpointError, read_metadata, save_checkpoint
from admn_ros.core.runtime import NAIVE, NONE, UNIVERSAL, FrameWindow, Runtime
from admn_ros.core.streams import DEPTH, StreamSet, naive_allocation
from fixtures import write_random_activity_models, write_random_models

NODES = ("node1", "node2")
SMALL = dict(vit_dim=16, vit_heads=2, vit_mlp_ratio=2.0, fusion_dim=16, fusion_depth=1, fusion_heads=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    write_random_models(d, NODES, seed=1, universal=True, budgets=(12,), **SMALL)
    return d


@pytest.fixture(scope="module")
def rt(model_dir):
    return Runtime.load(model_dir, backend="torch")


def frame(rt: Runtime, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s: rng.random((rt.cfg.channels(s.split("/")[1]), 64, 64), dtype=np.float32) for s in rt.stream_ids}


def window_of(rt: Runtime, inputs: dict[str, np.ndarray | None]) -> FrameWindow:
    """A window holding the one frame ``inputs``."""
    w = FrameWindow(rt.frames, rt.stream_ids)
    w.push(0, inputs)
    return w


# ------------------------------------------------------------------ loading
def test_load_finds_model_and_controllers(rt, model_dir):
    assert rt.model_path.name == "tracking.safetensors"
    assert set(rt.controllers) == {UNIVERSAL, "admn_L12"}
    assert rt.stream_ids == StreamSet(NODES).ids
    assert "admn_universal" in rt.describe()


def test_load_picks_the_task(tmp_path, model_dir):
    """The task comes from the directory's stage-1 model; models of several tasks need ``task``.
    Break tried: loading the first stage-1 file whatever its task (the activity model was used)."""
    for f in ("tracking.safetensors", "controller_L12.safetensors"):
        shutil.copy(model_dir / f, tmp_path)
    rt = Runtime.load(tmp_path, backend="torch")
    assert rt.task.name == "tracking" and rt.frames == 1 and rt.labels == []
    write_random_activity_models(tmp_path / "a", frames=2, classes=["x", "y"], budgets=())
    shutil.copy(tmp_path / "a" / "activity.safetensors", tmp_path)
    with pytest.raises(CheckpointError, match="several tasks.*'activity'.*'tracking'"):
        Runtime.load(tmp_path)
    act = Runtime.load(tmp_path, backend="torch", task="activity")
    assert act.task.name == "activity" and act.frames == 2 and act.labels == ["x", "y"]
    assert any(p.name == "tracking.safetensors" and "task 'tracking'" in why for p, why in act.skipped)
    assert Runtime.load(tmp_path, task="tracking").model_path.name == "tracking.safetensors"


def test_missing_dir_and_empty_dir(tmp_path):
    with pytest.raises(CheckpointError, match="model directory not found"):
        Runtime.load(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        Runtime.load(tmp_path)


def test_no_stage1_model_names_kinds(tmp_path, model_dir):
    shutil.copy(model_dir / "controller_L12.safetensors", tmp_path)
    with pytest.raises(CheckpointError, match="no stage1 tracking model.*'controller'"):
        Runtime.load(tmp_path, task="tracking")


def test_corrupt_file_is_named(tmp_path, model_dir):
    shutil.copy(model_dir / "tracking.safetensors", tmp_path)
    (tmp_path / "broken.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="broken.safetensors.*corrupt"):
        Runtime.load(tmp_path)


def test_stream_set_mismatch(tmp_path, model_dir):
    with pytest.raises(CheckpointError, match="stream set mismatch.*node3"):
        Runtime.load(model_dir, streams=("node1", "node2", "node3"))
    # a controller for other streams, claiming the same model (no parent id)
    shutil.copy(model_dir / "tracking.safetensors", tmp_path)
    other = tmp_path / "o"
    paths = write_random_models(other, ("node1", "node2", "node3"), universal=False, budgets=(27,), **SMALL)
    meta = read_metadata(paths["L27"])
    meta.pop("stage1_weights_id")
    from safetensors.torch import load_file

    save_checkpoint(tmp_path / "ctrl.safetensors", kind="controller", state_dict=load_file(paths["L27"]),
                    meta={k: v for k, v in meta.items() if k not in ("format", "version", "kind", "weights_id")})
    with pytest.raises(CheckpointError, match="ctrl.safetensors: stream set mismatch.*nodes"):
        Runtime.load(tmp_path)


def test_controller_of_another_model_is_an_error(tmp_path, model_dir):
    """A controller whose stage-1 network is not in the directory stops the load with the file
    and both weight ids named; next to its own stage-1 model (which fewer controllers were trained
    on) it is skipped.

    Break tried: skipping every controller of other stage-1 weights (the runtime then runs the
    naive allocation without a word): the test failed on the missing error."""
    write_random_models(tmp_path, NODES, seed=5, universal=True, budgets=(8,), **SMALL)  # a different model
    shutil.copy(model_dir / "controller_L12.safetensors", tmp_path)
    theirs = read_metadata(model_dir / "tracking.safetensors")["weights_id"]
    ours = read_metadata(tmp_path / "tracking.safetensors")["weights_id"]
    with pytest.raises(CheckpointError, match=f"controller_L12.safetensors: controller trained for a different "
                                              f"stage-1 network \\(stage1_weights_id {theirs}\\), not for "
                                              f"tracking.safetensors \\(weights_id {ours}\\)"):
        Runtime.load(tmp_path, backend="torch")
    shutil.copy(model_dir / "tracking.safetensors", tmp_path / "other.safetensors")   # its own network is here
    rt = Runtime.load(tmp_path, backend="torch")
    assert rt.model_path.name == "tracking.safetensors" and set(rt.controllers) == {UNIVERSAL, "admn_L8"}
    assert any("controller_L12" in p.name and "controller of other.safetensors" in why for p, why in rt.skipped)


def test_shape_mismatch_names_key(tmp_path, model_dir):
    meta = read_metadata(model_dir / "tracking.safetensors")
    mc = dict(meta["model_config"], vit_dim=32)
    from safetensors.torch import load_file

    save_checkpoint(tmp_path / "m.safetensors", kind="stage1", state_dict=load_file(model_dir / "tracking.safetensors"),
                    meta={"model_config": mc})
    with pytest.raises(CheckpointError, match="m.safetensors: .*shape"):
        Runtime.load(tmp_path)


# ------------------------------------------------------------------ allocation policy
def test_allocation_policy_and_budget(rt, model_dir, tmp_path):
    x = frame(rt)
    a = rt.allocate(x, 12)
    assert a.controller == UNIVERSAL and int(a.mask.sum()) == 12 and a.mask[:, 0].all()
    assert np.isfinite(a.est_noise).all() and a.ms > 0
    a2 = rt.allocate(x, 30)
    assert int(a2.mask.sum()) == 30
    with pytest.raises(ValueError, match="out of range"):
        rt.allocate(x, 5)
    # without the universal controller: exact-budget controller, else naive
    shutil.copy(model_dir / "tracking.safetensors", tmp_path)
    shutil.copy(model_dir / "controller_L12.safetensors", tmp_path)
    rt2 = Runtime.load(tmp_path, backend="torch")
    assert rt2.allocate(x, 12).controller == "admn_L12"
    n = rt2.allocate(x, 20)
    assert n.controller == NAIVE and int(n.mask.sum()) == 20 and np.isnan(n.est_noise).all()


def test_baseline_policies_are_input_agnostic(rt):
    x = frame(rt)
    x["node2/radar"] = None
    i = rt.index("node2/radar")
    n = len(rt.stream_ids)
    naive = rt.allocate(x, 12, "naive")
    want = naive_allocation(n, 12, DEPTH)
    want[i] = False
    assert naive.controller == "naive" and np.array_equal(naive.mask, want) and naive.budget == 12
    assert np.isnan(naive.est_noise).all()
    # the same split whatever the inputs hold
    assert np.array_equal(rt.allocate(frame(rt, seed=9), 12, "naive").mask, naive_allocation(n, 12, DEPTH))
    ub = rt.allocate(x, 12, "upper_bound")
    assert ub.controller == "upper_bound" and ub.budget == n * DEPTH
    assert ub.mask.sum() == (n - 1) * DEPTH and not ub.mask[i].any()
    with pytest.raises(ValueError, match="unknown allocation policy 'best'"):
        rt.allocate(x, 12, "best")


def test_missing_streams_get_no_blocks(rt):
    x = frame(rt)
    x["node2/rgb"] = None
    del x["node1/depth"]
    a = rt.allocate(x, 12)
    i, j = rt.index("node2/rgb"), rt.index("node1/depth")
    assert not a.present[i] and not a.present[j]
    assert a.mask[i].sum() == 0 and a.mask[j].sum() == 0 and int(a.mask.sum()) == 12
    assert np.isnan(a.est_noise[[i, j]]).all()
    none = rt.allocate({}, 12)
    assert none.controller == NONE and not none.mask.any()


# ------------------------------------------------------------------ embed / fuse
def test_embed_and_fuse_equal_the_model(rt):
    x = frame(rt, 3)
    x["node1/radar"] = None
    a = rt.allocate(x, 12)
    calls = []
    hooks = [blk.register_forward_hook(lambda _m, a, _o: calls.append(a[0].shape[0])) for bb in rt.model.backbones.values()
             for blk in bb.blocks]
    timings: dict[str, float] = {}
    embs = rt.embed(rt.stream_ids, x, a.mask, timings)
    for h in hooks:
        h.remove()
    assert sum(calls) == int(a.mask.sum())  # every active block runs once per stream, nothing else
    assert "node1/radar" not in embs and set(timings) == set(embs)
    est = rt.fuse(embs)
    mean, cov = est["mean"], est["cov"]
    assert mean.shape == (2,) and cov.shape == (2, 2) and np.all(np.linalg.eigvalsh(cov) > 0)
    # reference: the model's own forward with the same mask and presence
    ins = {m: torch.zeros(1, len(NODES), rt.cfg.channels(m), 64, 64) for m in rt.cfg.modalities}
    for sid, v in x.items():
        if v is not None:
            node, mod = sid.split("/")
            ins[mod][0, NODES.index(node)] = torch.from_numpy(v)
    with torch.no_grad():
        ref = rt.model(ins, torch.from_numpy(a.mask)[None], torch.from_numpy(a.present)[None])
    np.testing.assert_allclose(mean, ref["mean"][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(cov, ref["cov"][0].numpy(), atol=1e-5)
    res = rt.infer(window_of(rt, x), 12)
    np.testing.assert_allclose(res.mean, mean, atol=1e-6)


def test_fuse_rejects_bad_embeddings(rt):
    with pytest.raises(ValueError, match="no stream present"):
        rt.fuse({"node1/rgb": None})
    with pytest.raises(ValueError, match="16 values"):
        rt.fuse({"node1/rgb": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="NaN"):
        rt.fuse({"node1/rgb": np.full(16, np.nan, np.float32)})
    with pytest.raises(KeyError, match="unknown stream"):
        rt.fuse({"node9/rgb": np.zeros(16, np.float32)})


def test_model_inputs_of_the_wrong_shape_name_their_stream(rt):
    """allocate, embed and infer refuse a model input that is not the stream's (C, 64, 64), naming the
    stream, also when it sits beside good inputs of its modality.

    Break tried: ``Runtime._input`` returning the array unchecked: allocate broadcast the (1, 64, 64)
    array into the 3-channel rgb row and did not raise."""
    x = frame(rt)
    x["node2/rgb"] = np.zeros((1, 64, 64), np.float32)
    with pytest.raises(ValueError, match=r"node2/rgb: model input must have shape \(3, 64, 64\)"):
        rt.allocate(x, 12)
    with pytest.raises(ValueError, match=r"node2/rgb: model input must have shape \(3, 64, 64\), got \(1, 64, 64\)"):
        rt.embed(["node1/rgb", "node2/rgb"], x, np.ones((2, DEPTH), bool))
    with pytest.raises(ValueError, match="node2/rgb: model input must have shape"):
        rt.infer(window_of(rt, x), 12)


def test_preprocess_checks(rt):
    assert rt.preprocess("node1/rgb", np.zeros((240, 320, 3), np.uint8)).shape == (3, 64, 64)
    d = np.full((48, 64), np.nan, np.float32)
    assert rt.preprocess("node1/depth", d).max() == 0.0  # REP-118: NaN depth = no return
    r = np.zeros((64, 64), np.float32)
    r[3, 3] = np.inf
    with pytest.raises(ValueError, match="node1/radar: .*NaN/inf") as e:
        rt.preprocess("node1/radar", r)
    assert e.value.reason == "non_finite"    # the reason the nodes count on /diagnostics
    with pytest.raises(ValueError, match="node1/rgb: rgb: expected uint8"):
        rt.preprocess("node1/rgb", np.zeros((8, 8), np.uint16))


def test_warmup_auto_backend(model_dir):
    rt = Runtime.load(model_dir, backend="auto")
    rt.warmup(("embed", "fuse"))
    assert rt.engine_backend in ("torch", "onnx")


def test_depth_constant():
    assert DEPTH == 12
