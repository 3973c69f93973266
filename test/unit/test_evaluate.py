"""Table-1 evaluation on a tiny model: baseline masks, per-modality masks, identical noise for every
method, report structure (markdown / CSV / JSON / plots), targets, CLI errors; the real-world
failure rows (which streams fail, frozen frames, absent streams, paired statistics)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from admn_ros.core.checkpoint import save_checkpoint, weights_id
from admn_ros.core.controller import AllocationController, ControllerConfig
from admn_ros.core.evaluate import cli as ecli
from admn_ros.core.evaluate.methods import baseline_methods, build_methods, per_modality_mask, static_method
from admn_ros.core.evaluate.report import check_targets
from admn_ros.core.evaluate.table import (NAIVE, EarlierFrames, EvalSettings, Record, failure_geometry, find,
                                          run_table)
from admn_ros.core.model import ADMNConfig, ADMNModel
from admn_ros.core.streams import StreamSet, naive_allocation
from admn_ros.core.sim.corruptions import APPLIES_TO, REAL_WORLD
from admn_ros.core.tasks import get_task
from admn_ros.core.train.common import apply_failures, draw_failures, open_split, to_torch
from admn_ros.core.train.stage1 import dataset_bounds
from fixtures.shipped import committed
from fixtures.train import TINY_CONTROLLER, TINY_MODEL, make_tiny_dataset

SS = StreamSet()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    # 5 frames per episode: the 10 test samples span 2 episodes (groups of the paired interval)
    return make_tiny_dataset(tmp_path_factory.mktemp("ds") / "sim", n_samples=80, seed=1, frames_per_episode=5)


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """Untrained tiny stage-1 model + controllers saved as real checkpoints (structure tests only)."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    ds = open_split(data, "test")
    mcfg = ADMNConfig(**{**TINY_MODEL, "bounds": dataset_bounds(ds)})
    model = ADMNModel(mcfg)
    wid = weights_id(model.state_dict())
    save_checkpoint(d / "tracking.safetensors", kind="stage1", state_dict=model.state_dict(),
                    meta={"model_config": mcfg.to_dict(), "epoch": 0})
    for L in (27, 36, 54, 72):
        c = AllocationController(ControllerConfig.for_model(mcfg, budget=L, **TINY_CONTROLLER))
        save_checkpoint(d / f"controller_L{L}.safetensors", kind="controller", state_dict=c.state_dict(),
                        meta={"controller_config": c.cfg.to_dict(), "variant": "budget", "budget": L,
                              "stage1_weights_id": wid})
    u = AllocationController(ControllerConfig.for_model(mcfg, universal=True, **TINY_CONTROLLER))
    save_checkpoint(d / "controller_universal.safetensors", kind="controller", state_dict=u.state_dict(),
                    meta={"controller_config": u.cfg.to_dict(), "variant": "universal", "stage1_weights_id": wid})
    return d


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize("L", [27, 36, 54, 72])
def test_baseline_masks_have_the_budget(L):
    x = {}
    for meth in baseline_methods(SS, 12):
        m = meth.allocate(x, L, 2)
        if meth.key == "upper_bound":
            assert m.shape == (2, 9, 12) and m.all()
            continue
        if meth.from_sigmas is not None:  # the oracle needs the true sigmas: tested below
            assert m is None
            continue
        if m is None:  # single modality cannot hold L blocks
            assert meth.key.endswith("_only") and L > 6 + 3 * 11
            continue
        assert m.shape == (2, 9, 12) and (m.reshape(2, -1).sum(1) == L).all(), meth.name
        assert m[:, :, 0].all(), meth.name  # first-block rule
    by_key = {meth.key: meth for meth in baseline_methods(SS, 12)}
    nv = by_key["naive"].allocate(x, 27, 1)[0]
    assert (nv.sum(1) == 3).all() and np.array_equal(nv, naive_allocation(9, 27))
    rgb = by_key["rgb_only"].allocate(x, 27, 1)[0]
    assert rgb.sum(1).tolist() == [7, 1, 1, 7, 1, 1, 7, 1, 1]


@pytest.mark.parametrize("L", [27, 28, 36, 54, 72, 100])
def test_per_modality_mask_is_shared_across_nodes(L):
    torch.manual_seed(L)
    logits = torch.randn(4, 9, 12)
    m = per_modality_mask(logits, L, SS)
    assert m.shape == (4, 9, 12) and (m.reshape(4, -1).sum(1) == L).all() and m[:, :, 0].all()
    per = m.reshape(4, 3, 3, 12)
    differing = (per != per[:, :1]).any(-1).sum((1, 2))  # node streams that differ from node1's
    if (L - 9) % 3 == 0:
        assert (per == per[:, :1]).all()
    else:
        assert (differing <= 3).all()


def test_per_modality_mask_follows_the_mean_logits():
    logits = torch.full((1, 9, 12), -5.0)
    logits[0, [1, 4, 7], 1:7] = 5.0  # depth of every node: blocks 1-6 best
    m = per_modality_mask(logits, 27, SS)[0]
    assert m.reshape(3, 3, 12)[:, 1, :7].all() and m.sum() == 27


# ----------------------------------------------------------------------------- table
def test_every_method_sees_identical_noise(data, models):
    from admn_ros.core.train.stage2 import load_stage1

    model, _ = load_stage1(models / "tracking.safetensors")
    ds = open_split(data, "test")
    nv = naive_allocation(9, 27)
    a = static_method("A", "a", lambda L: nv)
    b = static_method("B", "b", lambda L: nv)
    s = EvalSettings(regimes=("binary", "continuous"), draws=("stream",), fractions=(0.25,), samples=10)
    recs, _ = run_table(model, [a, b], ds, s, show_progress=False, n_examples=0)
    by = {(r.regime, r.method): r.value for r in recs}
    assert by[("binary", "A")] == by[("binary", "B")] and by[("continuous", "A")] == by[("continuous", "B")]
    recs2, _ = run_table(model, [b], ds, s, show_progress=False, n_examples=0)  # same seed, other method set
    assert {(r.regime, r.value) for r in recs2} == {(r.regime, r.value) for r in recs if r.method == "B"}


def test_table_cells_match_an_independent_recomputation_on_the_shipped_model(data):
    """Table 1 cells of the shipped tracking model on 64 fresh samples (seed-1 tiny set, binary
    noise per stream, 25%): Upper Bound, Naive and ADMN cells, ADMN's paired difference to Naive
    and its noisy share equal a plain recomputation (the documented seeds and draw order, the
    model called with each mask, errors averaged per sample), and the values mean something:
    Upper Bound and ADMN beat Naive on the same noisy samples, ADMN gives the noisy streams
    few blocks; the markdown report shows these cells.

    Break tried: ``run_table`` giving each method its own noise draw (``apply_noise`` per method
    instead of once per batch): Upper Bound 9.53 cm against 9.68 recomputed, the test failed;
    the noisy share counted over the forced first blocks too: 0.26 against 0.00, failed; every
    markdown row filled with the first method's cells: the row check failed."""
    from admn_ros.core.evaluate.methods import build_methods
    from admn_ros.core.noise import draw_stream_sigmas
    from admn_ros.core.paths import models_dir
    from admn_ros.core.streams import MODALITIES, full_allocation
    from admn_ros.core.train.common import apply_noise, derive_seed, to_torch
    from admn_ros.core.train.stage2 import load_controller, load_stage1

    model, wid = load_stage1(models_dir() / "tracking.safetensors")
    ctrl, _ = load_controller(models_dir() / "controller_L27.safetensors", model, wid, strict_parent=True)
    ds = open_split(data, "train")
    n, L, seed, bs = len(ds), 27, 3, 16
    s = EvalSettings(regimes=("binary",), draws=("stream",), fractions=(0.25,), seed=seed, batch_size=bs)
    methods = [m for m in build_methods(SS, 12, per_budget={L: ctrl}) if m.key in ("admn", "upper_bound", "naive")]
    recs, _ = run_table(model, methods, ds, s, show_progress=False, n_examples=0)
    cell = {r.key: r for r in recs}

    rng = np.random.default_rng(derive_seed(seed, "eval", "binary", "stream"))
    sig = np.stack([draw_stream_sigmas(SS, "binary", rng, mode="stream") for _ in range(n)])
    gen = torch.Generator().manual_seed(derive_seed(seed, "eval-gauss", "binary", "stream"))
    smax = np.array([MODALITIES[SS.modality_of(i)].sigma_max for i in range(len(SS))])
    err: dict[str, list[np.ndarray]] = {"upper_bound": [], "naive": [], "admn": []}
    share = []
    with torch.no_grad():
        for start in range(0, n, bs):
            sel = np.arange(start, min(n, start + bs))
            x, gt = to_torch(ds.batch(sel), SS.modalities, get_task("tracking"))
            x = apply_noise(x, sig[sel], SS, gen)
            adm = (ctrl.allocate(x, budget=L)["mask"] > 0.5).numpy()
            for key, m in (("upper_bound", full_allocation(9, 12)), ("naive", naive_allocation(9, L)), ("admn", adm)):
                out = model(x, torch.from_numpy(np.broadcast_to(m, (len(sel), 9, 12)).copy()))["mean"]
                err[key].append(((out - gt) ** 2).sum(-1).sqrt().numpy() * 100.0)
            extra = adm.copy()
            extra[:, :, 0] = False
            share += list((extra.sum(2) * (sig[sel] >= 0.5 * smax)).sum(1) / (L - 9))
    e = {k: np.concatenate(v).astype(np.float64) for k, v in err.items()}
    for k in e:
        assert cell[k].value == pytest.approx(e[k].mean(), abs=1e-3), k
        assert cell[k].n == n
    assert cell["admn"].vs_naive == pytest.approx((e["admn"] - e["naive"]).mean(), abs=1e-3)
    assert cell["admn"].noisy_share == pytest.approx(np.mean(share), abs=1e-9)
    # the report shows these cells
    from admn_ros.core.evaluate.report import markdown

    md = markdown(recs, [], None, [], s, [L], {"task": "tracking", "total_blocks": 108})
    rows: dict[str, str] = {}
    for line in md.splitlines():   # the first table holds the errors (later ones: differences)
        if line.startswith("| binary | "):
            rows.setdefault(line.split("|")[2].strip(), line.split("|")[3].strip())
    assert {k: rows[k] for k in ("ADMN", "Upper Bound", "Naive Allocation")} == \
        {r.method: f"{r.value:.1f}" for r in recs}, md
    msg = ", ".join(f"{k} {v.mean():.2f} cm" for k, v in e.items()) + f", ADMN noisy share {np.mean(share):.3f}"
    print(msg)
    # thresholds: 1/3 of the committed Table 1 margins in this setting (docs/results/table1/)
    ref = {k: committed("table1", "binary", "stream", k, None if k == "Upper Bound" else L)
           for k in ("ADMN", "Naive Allocation", "Upper Bound")}
    ub_margin = ref["Naive Allocation"]["value"] - ref["Upper Bound"]["value"]
    assert (e["upper_bound"] - e["naive"]).mean() <= -ub_margin / 3, msg
    assert (e["admn"] - e["naive"]).mean() <= ref["ADMN"]["vs_naive"] / 3, msg
    assert np.mean(share) <= ref["ADMN"]["noisy_share"] + (0.5 - ref["ADMN"]["noisy_share"]) / 3, msg


def test_evaluate_writes_table_csv_json_and_plots(data, models, tmp_path):
    """The report files of an evaluation (untrained tiny model: structure, and numbers that do
    not need training): the CSV values are the JSON records, and the depth curve is the clean
    error recomputed with the plain model. (The untrained model's errors agree to 0.1 cm
    across methods, so the markdown cells are checked on the shipped model above.)

    Break tried: the depth curve running ``k`` blocks on the first stream and one on the others
    (``mask_from_counts([k] + [1] * 8)``): the curve check failed."""
    s = EvalSettings(samples=10, batch_size=8)
    res = ecli.evaluate(str(data), str(tmp_path / "out"), str(models), settings=s, latency_reps=1,
                        show_progress=False, log=lambda m: None)
    for k in ("markdown", "csv", "json", "error_plot", "latency_plot", "examples_modality", "examples_stream"):
        assert res.files[k].is_file() and res.files[k].stat().st_size > 0, k
    md = res.files["markdown"].read_text()
    assert "| binary | ADMN |" in md and "Naive Allocation" in md and "ADMN per-modality" in md
    assert "## Noise drawn per modality" in md and "## Noise drawn per stream" in md and "## Targets" in md
    rows = list(csv.DictReader(res.files["csv"].open()))
    methods = {r["method"] for r in rows}
    assert {"ADMN", "ADMN universal", "Upper Bound", "Naive Allocation", "QoI oracle", "ADMN per-modality",
            "RGB only", "Depth only", "Radar only"} <= methods
    # 3 regimes x 2 draws x (8 budgeted methods x 4 budgets + Upper Bound)
    assert len(rows) == 3 * 2 * (8 * 4 + 1)
    assert [k for k, _ in res.depth_curve] == [1, 2, 3, 4, 6, 9, 12]
    assert all(v > 0 for _, v in res.depth_curve) and "## Depth sensitivity" in md
    admn = [r for r in rows if r["method"] == "ADMN"]
    assert all(float(r["error_cm"]) > 0 and int(r["n_samples"]) == 10 for r in admn)
    assert all(float(r["gflops_controller"]) > 0 for r in admn)
    assert {r["error_cm"] for r in rows if r["method"] == "RGB only" and r["budget_blocks"] == "72"} == {"n/a"}
    # every budgeted method is compared with Naive sample by sample: the paired mean is the
    # difference of the two cells, inside its interval; Naive and Upper Bound have none
    n_episodes = len(np.unique(open_split(data, "test").episode[:10]))
    naive = {(r["regime"], r["draw"], r["budget_blocks"]): float(r["error_cm"]) for r in rows
             if r["method"] == "Naive Allocation"}
    for r in admn:
        d = float(r["vs_naive"])
        assert d == pytest.approx(float(r["error_cm"]) - naive[(r["regime"], r["draw"], r["budget_blocks"])],
                                  abs=2e-3)
        assert int(r["vs_naive_groups"]) == n_episodes
        if n_episodes >= 2:
            assert float(r["vs_naive_ci_lo"]) <= d <= float(r["vs_naive_ci_hi"])
        else:  # one episode: nothing to resample, no interval
            assert r["vs_naive_ci_lo"] == r["vs_naive_ci_hi"] == "n/a"
    assert all(r["vs_naive"] == "n/a" for r in rows if r["method"] in ("Naive Allocation", "Upper Bound"))
    assert "## Paired difference to Naive Allocation" in md and "episodes" in md
    assert any("paired ADMN - Naive" in t.detail for t in res.targets)
    js = json.loads(res.files["json"].read_text())
    assert js["budgets"] == [27, 36, 54, 72] and js["latency"]["full_ms"] > 0
    names = [t.name for t in res.targets]
    assert any("ADMN/UpperBound <= 1.15" in n for n in names) and any("controller share" in n for n in names)
    # the three files carry the same numbers
    by_json = {(r["regime"], r["draw"], r["method"], r["budget"]): r["value"] for r in js["records"]}
    for r in rows:
        if r["error_cm"] != "n/a":
            key = (r["regime"], r["draw"], r["method"], int(r["budget_blocks"]))
            assert float(r["error_cm"]) == pytest.approx(by_json[key], abs=1e-3), key
    # the depth curve: clean error with k blocks on every stream, from the plain model
    from admn_ros.core.streams import mask_from_counts
    from admn_ros.core.train.common import to_torch
    from admn_ros.core.train.stage2 import load_stage1

    model, _ = load_stage1(models / "tracking.safetensors")
    x, gt = to_torch(open_split(data, "test").batch(np.arange(10)), SS.modalities, get_task("tracking"))
    with torch.no_grad():
        for k, v in res.depth_curve:
            m = torch.from_numpy(np.broadcast_to(mask_from_counts([k] * 9, 12), (10, 9, 12)).copy())
            assert v == pytest.approx(float(((model(x, m)["mean"] - gt).norm(dim=-1) * 100).mean()), abs=1e-3), k
    assert all(t.passed is not None for t in res.targets if "FLOPs" in t.name or "share" in t.name)


def test_targets_pass_and_fail_on_constructed_numbers():
    from admn_ros.core.evaluate.cost import FlopsRow

    def rec(regime, method, L, e):
        return Record(regime, "modality", method, method, L, L / 108, e, e, 10)

    recs = [rec("binary", "ADMN", 27, 22.0), rec("binary", "Upper Bound", 108, 20.0),
            rec("binary", "Naive Allocation", 27, 60.0)]
    for regime in ("discrete", "continuous"):
        recs += [rec(regime, "ADMN", L, 30.0) for L in (27, 36)] + [rec(regime, "Naive Allocation", L, 40.0)
                                                                      for L in (27, 36)]
    fl = [FlopsRow("Upper Bound", 108, 1.0, 0.0), FlopsRow("ADMN", 27, 0.27, 0.004)]
    s = EvalSettings(draws=("modality",), fractions=(0.25, 0.33))
    t = {x.name.split(":")[-1].strip(): x for x in check_targets(recs, fl, [27, 36], s)}
    assert t["ADMN/UpperBound <= 1.15"].passed and "1.100" in t["ADMN/UpperBound <= 1.15"].detail
    assert t["Naive/ADMN >= 2.0"].passed
    assert all(x.passed for x in t.values()), [x.line() for x in t.values()]
    recs[0] = rec("binary", "ADMN", 27, 40.0)
    bad = {x.name.split(":")[-1].strip(): x for x in check_targets(recs, fl, [27, 36], s)}
    assert bad["ADMN/UpperBound <= 1.15"].passed is False and bad["Naive/ADMN >= 2.0"].passed is False


def test_build_methods_without_controllers_has_baselines_only():
    names = [m.name for m in build_methods(SS, 12)]
    assert names == ["Upper Bound", "Naive Allocation", "QoI oracle", "RGB only", "Depth only", "Radar only"]


@pytest.mark.parametrize("L", [9, 27, 54, 100])
def test_qoi_oracle_spends_the_budget_on_the_clean_streams(L):
    from admn_ros.core.evaluate.methods import qoi_oracle
    from admn_ros.core.streams import MODALITIES

    oracle = qoi_oracle(SS, 12)
    smax = np.array([MODALITIES[SS.modality_of(i)].sigma_max for i in range(len(SS))])
    sig = np.zeros((3, len(SS)), np.float32)
    sig[0, [SS.modality_of(i) == "rgb" for i in range(len(SS))]] = smax[0]  # every camera noisy
    sig[1, 4] = smax[4]  # one stream noisy
    sig[2] = smax  # everything noisy: an even split
    m = oracle.from_sigmas(sig, L)
    assert m.shape == (3, 9, 12) and (m.sum((1, 2)) == L).all() and m[:, :, 0].all()
    noisy = sig >= 0.5 * smax
    for b in range(2):
        extra = m[b].sum(1) - 1
        n_clean = int((~noisy[b]).sum())
        if L - 9 <= n_clean * 11:  # fits in the clean streams: noisy ones keep block 0 only
            assert (extra[noisy[b]] == 0).all() and extra[~noisy[b]].max() - extra[~noisy[b]].min() <= 1
        else:  # clean streams run everything, the rest is spread over the noisy ones
            assert m[b][~noisy[b]].all()
    assert np.ptp(m[2].sum(1)) <= 1  # all noisy: an even split


def test_cli_errors(data, tmp_path, capsys):
    rc = ecli.main(["--data", str(data), "--models", str(tmp_path / "nomodels"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "models directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    rc = ecli.main(["--data", str(data), "--models", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no stage-1 model" in capsys.readouterr().err
    rc = ecli.main(["--data", str(data), "--models", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                    "--regimes", "binary,foggy"])
    assert rc == 2 and "foggy" in capsys.readouterr().err


# ----------------------------------------------------------------------------- real-world failures
@pytest.mark.parametrize("kind", REAL_WORLD)
def test_failures_are_drawn_per_stream_or_per_modality_on_their_modalities(kind):
    """Break tried: drawing per stream in "modality" mode (the three nodes' flags no longer agree)."""
    rng = np.random.default_rng(0)
    mods = np.array([SS.modality_of(i) for i in range(len(SS))])
    applies = np.isin(mods, list(APPLIES_TO[kind]))
    for mode in ("stream", "modality"):
        sev = np.stack([draw_failures(kind, SS, rng, mode) for _ in range(400)])
        assert set(np.unique(sev)) <= {0.0, 1.0} and (sev[:, ~applies] == 0).all()
        assert 0.35 < sev[:, applies].mean() < 0.65  # each failure with probability about 1/2
        per_node = sev.reshape(-1, 3, 3)
        shared = (per_node == per_node[:, :1]).all(1)  # a modality's flag equal on every node
        assert shared.all() if mode == "modality" else not shared.all()
        if kind == "dropout":  # one stream (modality) stays: the graph must have something to fuse
            assert (sev.sum(1) < len(SS)).all()


def test_failures_change_only_the_failed_streams_and_dropout_masks_them(data):
    """Break tried: corrupting a failed stream's whole modality (every node); dropout without present=False."""
    ds = open_split(data, "test")
    clean, _ = to_torch(ds.batch(np.arange(4)), SS.modalities)
    sev = np.zeros((4, 9), np.float32)
    sev[0, 0] = sev[1, 4] = sev[2, 2] = sev[3, 8] = 1.0  # node1/rgb, node2/depth, node1/radar, node3/radar
    radar, scale = failure_geometry(ds)
    for kind in ("low_light", "motion_blur", "clutter", "dropout"):
        s = sev * np.isin([SS.modality_of(i) for i in range(9)], list(APPLIES_TO[kind]))[None]
        out, present = apply_failures(clean, kind, s, SS, np.random.default_rng(1), radar=radar, pixel_scale=scale)
        for b in range(4):
            for i in range(9):
                node, mi = divmod(i, 3)
                m = SS.modalities[mi]
                same = torch.equal(out[m][b, node], clean[m][b, node])
                assert same == (s[b, i] == 0), (kind, b, i)
                assert 0.0 <= float(out[m][b, node].min()) and float(out[m][b, node].max()) <= 1.0
        assert (present == (s == 0) if kind == "dropout" else present).all(), kind
    zero = apply_failures(clean, "dropout", sev, SS, np.random.default_rng(0))[0]
    assert float(zero["rgb"][0, 0].abs().max()) == 0.0


def test_frozen_streams_show_an_earlier_frame_of_their_own_episode(data):
    """Break tried: ``EarlierFrames`` without the episode clamp (frames of the previous episode leak in)."""
    ds = open_split(data, "test")
    hist = EarlierFrames(ds)
    rows = np.arange(len(ds))
    ages = np.random.default_rng(0).integers(1, 4, size=(len(rows), 9))
    earlier, age = hist.frames(rows, ages, SS)
    ep = np.asarray(ds.episode)
    assert (age <= ages).all() and (age >= 0).all()
    for r in rows:
        for i in range(9):
            src = r - age[r, i]
            assert ep[src] == ep[r] and (age[r, i] == ages[r, i] or src == 0 or ep[src - 1] != ep[r])
            node, mi = divmod(i, 3)
            m = SS.modalities[mi]
            want, _ = to_torch(ds.batch(np.array([src])), SS.modalities)
            assert torch.equal(earlier[m][r, node], want[m][0, node])
    assert (age > 0).any()


def test_failure_table_masks_absent_streams_and_pairs_every_failure_with_naive(data, models):
    """Break tried: not cutting the masks to the present streams under dropout (absent streams kept blocks)."""
    from admn_ros.core.train.stage2 import load_controller, load_stage1

    model, _ = load_stage1(models / "tracking.safetensors")
    ds = open_split(data, "test")
    ctrl = {27: load_controller(models / "controller_L27.safetensors", model)[0]}
    methods = build_methods(SS, 12, ctrl)
    s = EvalSettings(regimes=REAL_WORLD, draws=("stream", "modality"), fractions=(0.25,), samples=10,
                     frozen_max_age=3)
    notes: dict = {}
    recs, exs = run_table(model, methods, ds, s, show_progress=False, n_examples=4, notes=notes)
    assert 0 <= notes["frozen_age"]["mean"] <= 3 and notes["frozen_age"]["max"] <= 3
    for kind in REAL_WORLD:
        for draw in ("stream", "modality"):
            a, nv = find(recs, kind, draw, "ADMN", 27), find(recs, kind, draw, NAIVE, 27)
            assert a.n == 10 and np.isfinite(a.value) and np.isfinite(find(recs, kind, draw, "Upper Bound").value)
            assert a.vs_naive == pytest.approx(a.value - nv.value, abs=1e-4) and a.vs_naive_groups >= 1
    drops = [ex for ex in exs if ex.regime == "dropout"]
    assert len(drops) == 8 and any((ex.sigmas > 0).any() for ex in drops)
    for ex in drops:
        gone = ex.sigmas > 0
        for name, m in ex.masks.items():
            assert not m[gone].any(), name
        assert ex.masks["ADMN"].sum() == 27 and ex.masks["Upper Bound"][~gone].all()
        assert ex.masks[NAIVE].sum() == 27 - 3 * gone.sum()  # Naive loses the absent streams' 3 blocks each


def test_failure_targets_and_report(data, models, tmp_path):
    from admn_ros.core.evaluate.cost import FlopsRow

    def rec(regime, method, L, e, d=float("nan")):
        return Record(regime, "stream", method, method, L, L / 108, e, e, 10, vs_naive=d, vs_naive_lo=d - 1,
                      vs_naive_hi=d + 1)

    recs = [rec("frozen", "ADMN", 27, 21.0, -1.0), rec("frozen", "Upper Bound", 108, 20.0),
            rec("frozen", NAIVE, 27, 22.0), rec("low_light", "ADMN", 27, 9.0, 1.0),
            rec("low_light", NAIVE, 27, 8.0)]
    s = EvalSettings(regimes=("frozen", "low_light"), draws=("stream",), fractions=(0.25,))
    t = {x.name: x for x in check_targets(recs, [FlopsRow("Upper Bound", 108, 1.0, 0.0)], [27], s)}
    assert t["frozen per stream, 25% (L=27): ADMN/UpperBound <= 1.10"].passed
    assert t["frozen per stream: ADMN <= Naive at every budget"].passed
    assert t["low_light per stream: ADMN <= Naive at every budget"].passed is False
    assert "paired +1.0 [+0.0, +2.0]" in t["low_light per stream: ADMN <= Naive at every budget"].detail
    rc = ecli.main(["--data", str(data), "--models", str(models), "--out", str(tmp_path / "rw"), "--samples", "6",
                    "--regimes", "realworld", "--draws", "stream", "--fractions", "0.25", "--no-latency",
                    "--no-plots", "--no-progress"])
    md = (tmp_path / "rw" / "table1.md").read_text()
    assert rc == 0 and "## Real-world failures" in md and "## Failures drawn per stream" in md
    assert all(f"| {k} | ADMN |" in md for k in REAL_WORLD) and "realised age" in md
    rows = list(csv.DictReader((tmp_path / "rw" / "table1.csv").open()))
    assert {r["regime"] for r in rows} == set(REAL_WORLD)


def test_real_world_failures_are_refused_for_a_model_of_frame_windows(tmp_path, capsys):
    """An activity model (windows of frames per stream) under ``--regimes realworld`` or any single
    failure: refused before a regime is evaluated, the error naming the failures and why, exit 2, no report.
    Break tried: no check in run_table ('frozen' needs episodes for realworld; low_light: a ValueError
    traceback from apply_failures after the clean rows)."""
    from admn_ros.core.data.activity import generate_activity_dataset
    from fixtures import write_random_activity_models

    data = tmp_path / "act"
    generate_activity_dataset(data, n_subjects=4, val_subjects=1, test_subjects=1, windows_per_activity=1,
                              frames=2, seed=3, workers=1, progress=False)
    classes = json.loads((data / "meta.json").read_text())["classes"]
    write_random_activity_models(tmp_path / "m", frames=2, classes=classes)
    for regimes, named in (("realworld", "low_light, motion_blur, frozen, clutter, dropout"),
                           ("none,low_light", "low_light")):
        rc = ecli.main(["--data", str(data), "--models", str(tmp_path / "m"), "--out", str(tmp_path / "rep"),
                        "--regimes", regimes, "--no-latency", "--no-plots", "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and f"real-world failures ({named}) corrupt one image per stream" in err, err
        assert "2-frame windows" in err and not (tmp_path / "rep" / "table1.md").exists()
