"""Checkpoints (admn_ros.core.checkpoint): round trip, optimizer resume, safe loading, named errors."""
from __future__ import annotations

import pickle

import pytest
import torch

from admn_ros.core.checkpoint import (CheckpointError, check_config, load_checkpoint, load_into, read_metadata,
                                      save_checkpoint, stored_config, weights_id)
from admn_ros.core.controller import ControllerConfig
from admn_ros.core.model import ADMNConfig


def _net(out: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, out))


def _step(net: torch.nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 4, generator=g)
    loss = net(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_round_trip_keeps_weights_meta_and_kind(tmp_path):
    net = _net()
    meta = {"model_config": {"dim": 8, "nodes": ["node1"]}, "train_config": {"lr": 1e-3}, "stage": 1, "epoch": 4}
    p = save_checkpoint(tmp_path / "a" / "m.safetensors", kind="stage1", state_dict=net.state_dict(), meta=meta)
    ck = load_checkpoint(p, kind="stage1")
    assert ck.kind == "stage1" and ck.epoch == 4 and ck.model_config == meta["model_config"]
    assert ck.train_config == {"lr": 1e-3} and ck.optimizer is None
    other = _net()
    with torch.no_grad():
        for q in other.parameters():
            q.zero_()
    ck.load_into(other)
    for k, v in net.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
    assert read_metadata(p)["weights_id"] == weights_id(net.state_dict())


def test_float16_storage_loads_as_float32_with_same_weights_id(tmp_path):
    net = _net()
    p = save_checkpoint(tmp_path / "h.safetensors", kind="stage1", state_dict=net.state_dict(), dtype=torch.float16)
    ck = load_checkpoint(p)
    assert all(t.dtype == torch.float32 for t in ck.tensors.values())
    assert ck.meta["weights_id"] == weights_id(net.state_dict())
    w = net.state_dict()["0.weight"]
    assert torch.allclose(ck.tensors["0.weight"], w, atol=1e-3)


def test_optimizer_state_resumes_identically(tmp_path):
    net = _net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.05)
    _step(net, opt, 1)
    p = save_checkpoint(tmp_path / "r.safetensors", kind="stage1", state_dict=net.state_dict(),
                        meta={"epoch": 1}, optimizer_state=opt.state_dict())
    _step(net, opt, 2)  # the uninterrupted run
    ref = {k: v.clone() for k, v in net.state_dict().items()}

    ck = load_checkpoint(p)
    net2 = _net()
    ck.load_into(net2)
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-2, weight_decay=0.05)
    opt2.load_state_dict(ck.optimizer)
    _step(net2, opt2, 2)
    for k, v in ref.items():
        assert torch.allclose(net2.state_dict()[k], v, atol=1e-7), k


def test_shape_mismatch_names_file_key_and_shapes(tmp_path):
    p = save_checkpoint(tmp_path / "tracking.safetensors", kind="stage1", state_dict=_net(3).state_dict())
    ck = load_checkpoint(p)
    with pytest.raises(CheckpointError) as ei:
        ck.load_into(_net(2))
    msg = str(ei.value)
    assert msg.startswith(str(p)) and "key 2.weight shape (3,8) != expected (2,8)" in msg


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = _net().state_dict()
    sd.pop("1.bias")
    sd["extra.w"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"missing key 1\.bias.*unexpected key extra\.w"):
        load_into(_net(), sd, path="x.safetensors")
    load_into(_net(), {k: v for k, v in sd.items() if k != "extra.w"} | {"1.bias": torch.zeros(8)}, path="x")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: checkpoint file not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("payload", [b"", b"garbage" * 10, b"\xff" * 64])
def test_corrupt_file_is_named(tmp_path, payload):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(payload)
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(p)


def test_truncated_file_is_named(tmp_path):
    p = save_checkpoint(tmp_path / "t.safetensors", kind="stage1", state_dict=_net().state_dict())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    with pytest.raises(CheckpointError, match="t.safetensors"):
        load_checkpoint(p)


def test_changed_weights_are_refused(tmp_path):
    """A file whose header is intact but whose weight bytes changed after saving (a bad copy)
    loads no wrong weights: the content hash saved with them no longer matches.

    Break tried: ``load_checkpoint`` without the ``weights_id`` comparison: the file loaded and
    the test failed."""
    p = save_checkpoint(tmp_path / "c.safetensors", kind="stage1", state_dict=_net().state_dict())
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x40    # the top exponent bit of the last weight (float32, little-endian)
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"c\.safetensors: weights do not match the content hash recorded "
                                              r"when the file was saved \(weights_id [0-9a-f]{16} != "
                                              r"[0-9a-f]{16}\); the file is corrupt"):
        load_checkpoint(p)


def test_foreign_safetensors_and_wrong_kind_are_refused(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="not an admn_ros checkpoint"):
        load_checkpoint(p)
    q = save_checkpoint(tmp_path / "c.safetensors", kind="controller", state_dict=_net().state_dict())
    with pytest.raises(CheckpointError, match="kind 'controller' != expected 'stage1'"):
        load_checkpoint(q, kind="stage1")


class _Evil:
    marker = None

    def __reduce__(self):
        return (open, (str(_Evil.marker), "w"))


def test_loading_never_executes_code(tmp_path):
    """A pickle that would create a file when unpickled, disguised as a checkpoint."""
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    p = tmp_path / "evil.safetensors"
    p.write_bytes(pickle.dumps({"state_dict": _Evil()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(p)
    assert not marker.exists()


def test_nan_weights_are_refused(tmp_path):
    sd = _net().state_dict()
    sd["0.weight"][0, 0] = float("nan")
    p = save_checkpoint(tmp_path / "n.safetensors", kind="stage1", state_dict=sd)
    with pytest.raises(CheckpointError, match="key 0.weight contains NaN"):
        load_checkpoint(p)


def test_check_config_names_the_differing_field():
    with pytest.raises(CheckpointError, match=r"run/last.safetensors: model_config.vit_dim = 32 != expected 64"):
        check_config("run/last.safetensors", {"vit_dim": 32, "nodes": ["a"]}, {"vit_dim": 64, "nodes": ("a",)})
    check_config("x", {"nodes": ["a", "b"]}, {"nodes": ("a", "b")})  # lists == tuples


def test_stored_config_names_the_file_and_key():
    """A config stored in a checkpoint's metadata is rebuilt; a missing or invalid one raises a
    CheckpointError naming the file and the key.

    Break tried: ``stored_config`` without its ``KeyError`` branch: a bare KeyError escaped and
    the test failed."""
    meta = {"model_config": {"vit_dim": 32}, "controller_config": {"bogus": 1}}
    assert stored_config("m.safetensors", meta, "model_config", ADMNConfig).vit_dim == 32
    with pytest.raises(CheckpointError, match=r"m\.safetensors: invalid controller_config: .*unknown keys \['bogus'\]"):
        stored_config("m.safetensors", meta, "controller_config", ControllerConfig)
    with pytest.raises(CheckpointError, match=r"m\.safetensors: metadata has no controller_config"):
        stored_config("m.safetensors", {}, "controller_config", ControllerConfig)


def test_reserved_prefix_and_non_json_meta_are_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="reserved prefix"):
        save_checkpoint(tmp_path / "x.safetensors", kind="stage1", state_dict={"__optim__/0/x": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path / "y.safetensors", kind="stage1", state_dict={"w": torch.zeros(1)},
                        meta={"bad": object()})
    assert not list(tmp_path.glob(".*tmp*"))
