"""A careless user's input to ``admn-ros`` commands: one clear error naming the file / flag / key,
exit code 2 (130 after Ctrl-C), no traceback, and nothing of the user's lost."""
from __future__ import annotations

import pytest

from admn_ros import cli
from admn_ros.core.data import generate

TINY = ["--n-samples", "20", "--frames-per-episode", "5", "--workers", "1", "--quiet"]


def _fails(capsys: pytest.CaptureFixture, argv: list[str], *expect: str, rc: int = 2) -> str:
    """Run ``admn-ros argv``: exit code ``rc``, one error without a traceback holding every ``expect``;
    returns stdout + stderr."""
    assert cli.main(argv) == rc
    out, err = capsys.readouterr()
    assert "Traceback" not in err and all(e in err for e in expect), err
    return out + err


def test_interrupted_dataset_leaves_nothing_and_the_next_run_starts(tmp_path, capsys, monkeypatch):
    """Ctrl-C while rendering: exit 130 with one line, no half-written split; the same command then
    runs without --overwrite. Break tried: no cleanup in generate_dataset (the splits stay and the next
    run is refused as "already holds a dataset"); no KeyboardInterrupt handling in cli.main."""
    out = tmp_path / "ds"
    run = generate._run_task

    def interrupted(task, **_):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "_run_task", interrupted)
    _fails(capsys, ["dataset", "--out", str(out), *TINY], "admn-ros dataset: interrupted", rc=130)
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.setattr(generate, "_run_task", run)
    assert cli.main(["dataset", "--out", str(out), *TINY]) == 0 and (out / "meta.json").is_file()


def test_os_errors_are_one_line(tmp_path, capsys):
    """An output path below a file: the OSError names the path. Break tried: no OSError handling in
    cli.main (a FileNotFoundError traceback from the bag writer)."""
    (tmp_path / "f").write_text("mine")
    _fails(capsys, ["record", "--out", str(tmp_path / "f" / "bag"), "--frames", "2", "--no-progress"],
           "admn-ros record: error:", str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "mine"


@pytest.mark.parametrize("name", ["mapping.yaml", "sensors.yaml", "scenario.yaml", "train.yaml"])
def test_binary_yaml_names_the_file(tmp_path, name):
    """A binary file given as a YAML file: the error names it. Break tried: read_yaml without
    UnicodeDecodeError (a bare "'utf-8' codec can't decode" without the file)."""
    from admn_ros.bags.mapping import load_mapping
    from admn_ros.core.sim.config import load_sim_config
    from admn_ros.core.sim.timeline import Timeline
    from admn_ros.core.train.config import load_config_file

    p = tmp_path / name
    p.write_bytes(b"\x89PNG\r\n\x1a\n\xe0\xff\x00")
    load = {"mapping.yaml": load_mapping, "sensors.yaml": load_sim_config, "scenario.yaml": Timeline.load,
            "train.yaml": load_config_file}[name]
    with pytest.raises(ValueError, match=f"{p}: cannot read the .*utf-8"):
        load(str(p))


def test_scenario_unknown_top_level_key(tmp_path):
    """A typo of ``name`` in a scenario file is an error, not ignored. Break tried: no top-level
    key check in Timeline.parse."""
    from admn_ros.core.sim.timeline import Timeline

    p = tmp_path / "s.yaml"
    p.write_text("nmae: mine\nphases:\n  - {name: a, seconds: 1}\n")
    with pytest.raises(ValueError, match=r"s.yaml: \['nmae'\]: unknown key"):
        Timeline.load(p)


@pytest.mark.parametrize("config, expect", [
    ("epochs: many\n", "Stage1Config.epochs must be of type int, got 'many'"),
    ("model: 5\n", "Stage1Config.model must be of type"),
    ("noise_regimes: [binary]\n", "Stage1Config.noise_regimes must be of type"),
])
def test_train_config_of_the_wrong_type(tmp_path, capsys, config, expect):
    """A value of the wrong type in a training config file names the field. Break tried: no type
    check in _Base.from_dict (TypeError / AttributeError tracebacks from the range checks)."""
    (tmp_path / "c.yaml").write_text(config)
    _fails(capsys, ["train", "stage1", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                    "--config", str(tmp_path / "c.yaml")], "admn-ros train stage1: error:", expect)


@pytest.mark.parametrize("model, expect", [
    ('{"vit_dim": -3}', "ADMNConfig.vit_dim must be an integer >= 1, got -3"),
    ('{"fusion_heads": "many"}', "ADMNConfig.fusion_heads must be an integer >= 1, got 'many'"),
    ('{"vit_dim": 15}', "ADMNConfig.vit_dim 15 is not a multiple of vit_heads 4"),
    ('[1]', "--model: expected a JSON object"),
])
def test_train_model_flag_out_of_range(tmp_path, capsys, model, expect):
    """``--model`` with a negative, non-integer or indivisible size names the field. Break tried:
    no size checks in ADMNConfig.__post_init__ (RuntimeError / TypeError / ValueError tracebacks from
    torch while building the network); no TypeError handling of --model in the train CLI."""
    from admn_ros.core.data import generate_dataset

    generate_dataset(tmp_path / "ds", n_samples=20, frames_per_episode=5, workers=1, progress=False)
    _fails(capsys, ["train", "stage1", "--data", str(tmp_path / "ds"), "--out", str(tmp_path / "run"),
                    "--epochs", "1", "--train-samples", "4", "--no-progress", "--model", model], expect)
    assert not (tmp_path / "run" / "last.safetensors").exists()


def test_evaluate_checks_out_and_stage1_first(tmp_path, capsys, monkeypatch):
    """``--out`` naming a file fails before any model is loaded, the file untouched; ``--stage1``
    alone outside the package root names the checkpoint, not a missing ``models``. Break tried: the
    --out directory created after the evaluation (a FileExistsError once it ran); --models defaulting
    to "models" with --stage1 ("models: models directory not found")."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("mine")
    _fails(capsys, ["evaluate", "--data", "d", "--stage1", "s.safetensors", "--out", "f"],
           "admn-ros evaluate: error:", "File exists", "'f'")
    assert (tmp_path / "f").read_text() == "mine"
    _fails(capsys, ["evaluate", "--data", "d", "--stage1", "s.safetensors", "--out", "o"],
           "s.safetensors: checkpoint file not found")


def test_failed_replay_leaves_no_output_bag(tmp_path, capsys):
    """A replay that fails on its first frame (budget out of range) removes its unfinished output
    bag, so the same command with a valid budget then runs; a bad --budgets names the flag. Break
    tried: record.new_bag aborting after an error without removing the bag ("output bag .../outputs
    exists already" on the next run); int() of --budgets without a message of ours."""
    bag, out = str(tmp_path / "bag"), str(tmp_path / "out")
    assert cli.main(["record", "--out", bag, "--frames", "3", "--no-progress"]) == 0
    _fails(capsys, ["replay", bag, "--out", out, "--budget", "0", "--no-progress"], "budget 0 out of range")
    assert not (tmp_path / "out" / "outputs").exists()
    assert cli.main(["replay", bag, "--out", out, "--budget", "27", "--no-progress"]) == 0
    _fails(capsys, ["replay", bag, "--out", str(tmp_path / "o2"), "--budgets", "27,x"], "--budgets:", "'27,x'")


@pytest.mark.parametrize("text, expect", [
    (None, "cannot read the parameter file: No such file"),
    ("a: [1, 2\n", "invalid YAML"),
    ("rate_hz: 5\n", "not a ROS 2 parameter file"),
])
def test_run_refuses_a_bad_params_file_before_starting(tmp_path, capsys, text, expect):
    """``admn-ros run/demo --params-file`` that is missing, not YAML or not a parameter file: one
    error naming it, exit 2, no node started. Break tried: no check in runner._run (every node died
    with an rcl traceback, was respawned, and run exited 0)."""
    p = tmp_path / "params.yaml"
    if text is not None:
        p.write_text(text)
    for cmd in ("run", "demo"):
        printed = _fails(capsys, [cmd, "--params-file", str(p), "--duration", "1"], f"[admn-ros {cmd}] error: {p}",
                         expect)
        assert "graph nodes" not in printed


def test_from_bag_overwrite_never_empties_a_directory_of_other_files(tmp_path):
    """``dataset --from-bag --overwrite`` into a directory of the user's files that is no dataset:
    refused, the files kept. Break tried: no meta.json check before rmtree (the directory emptied)."""
    from admn_ros.bags.dataset import build_dataset

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no dataset"):
        build_dataset([tmp_path / "some.bag"], "default", tmp_path, overwrite=True, progress=False, log=None)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("duration", ["nan", "-1", "inf"])
def test_record_duration_out_of_range(tmp_path, capsys, duration):
    """``record --duration`` NaN, negative or infinite names the flag. Break tried: no --duration
    check (NaN: "cannot convert float NaN to integer", inf: an OverflowError traceback)."""
    _fails(capsys, ["record", "--out", str(tmp_path / "b"), "--duration", duration], "--duration must be")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args, expect", [
    (["--source", "live", "--corrupt", "node1/rgb=dropout", "--seed", "3"],
     "--seed, --corrupt: sim source options, not for --source live"),
    (["--source", "live", "--frames", "5"], "--frames: sim source options, not for --source live"),
    (["--topics", "/x", "--wait", "1"], "--topics, --wait: live source options, not for --source sim"),
])
def test_record_refuses_options_of_the_other_source(tmp_path, capsys, monkeypatch, args, expect):
    """``record`` with an option of the other source (its help group): argparse's error naming it,
    exit 2, nothing recorded. Break tried: no refuse_unused call in record.main (--source live
    recorded without the corruption; --source sim recorded the simulator, ignoring --topics)."""
    from admn_ros.bags import record

    for name in ("record_sim", "record_live"):
        monkeypatch.setattr(record, name, lambda *a, **k: pytest.fail("a recording started"))
    with pytest.raises(SystemExit) as stop:
        cli.main(["record", "--out", str(tmp_path / "b"), *args])
    assert stop.value.code == 2 and expect in capsys.readouterr().err


@pytest.mark.parametrize("args, expect", [
    (["--realtime", "--pipeline", "naive"], "--pipeline: not with --realtime"),
    (["--realtime", "--budgets", "9,18", "--backend", "onnx"], "--budgets, --backend: not with --realtime"),
    (["--realtime", "--no-bag", "--no-health-check"], "--no-bag, --no-health-check: not with --realtime"),
    (["--rate", "0.5"], "--rate: only with --realtime"),
])
def test_replay_refuses_options_its_mode_ignores(tmp_path, capsys, args, expect):
    """``replay`` with an option the chosen mode would ignore: argparse's error naming it, exit 2, before
    the bag is opened (it does not exist here). Break tried: no refuse_unused calls in replay_cli.main (the
    bag was opened: "bag not found", exit 2 without SystemExit)."""
    with pytest.raises(SystemExit) as stop:
        cli.main(["replay", str(tmp_path / "no_bag"), "--out", str(tmp_path / "o"), *args])
    assert stop.value.code == 2 and expect in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("rate", ["0", "-1", "nan", "inf"])
def test_realtime_replay_rate_out_of_range_fails_before_any_work(tmp_path, capsys, monkeypatch, rate):
    """``replay --realtime --rate`` zero, negative, NaN or infinite names the flag before the offline pass.
    Break tried: check_rate removed from realtime_replay (the offline pass started); play's former
    ``rate <= 0`` check (NaN and inf reached the offline pass)."""
    from admn_ros.bags import realtime

    monkeypatch.setattr(realtime, "task_frames", lambda *a, **k: pytest.fail("the offline pass started"))
    _fails(capsys, ["replay", str(tmp_path / "no_bag"), "--out", str(tmp_path / "o"), "--realtime", "--rate", rate],
           "admn-ros replay: error: playback rate (--rate) must be a finite number > 0")


@pytest.mark.parametrize("args, expect", [
    (["--sensor-nodes", ""], "--sensor-nodes '': a StreamSet needs at least one node"),
    (["--sensor-nodes", "node1,node1"], "--sensor-nodes 'node1,node1': duplicate nodes"),
    (["--duration", "-1"], "--duration must be >= 0, got -1.0"),
    (["--compare", "-5"], "--compare must be >= 0, got -5"),
    (["--respawn-delay", "nan"], "--respawn-delay must be >= 0, got nan"),
])
def test_run_refuses_bad_graph_flags_before_starting(monkeypatch, capsys, args, expect):
    """``admn-ros run/demo`` with a flag no graph can take: argparse's error naming the flag, exit 2,
    no process started. Break tried: no --sensor-nodes check in runner.parse_args (a ValueError
    traceback from StreamSet in runner._run); no check of --duration / --compare / --respawn-delay
    (the graph started, and a negative --duration stopped it at once with exit 0)."""
    from admn_ros.ros import runner

    def start(*a, **k):
        raise AssertionError("a graph process was started")

    monkeypatch.setattr(runner.GraphProcesses, "start", start)
    for cmd in ("run", "demo"):
        with pytest.raises(SystemExit) as stop:
            cli.main([cmd, *args])
        assert stop.value.code == 2 and expect in capsys.readouterr().err


@pytest.mark.parametrize("args, expect", [
    (["--samples", "-1"], "n_samples must be > 0, got -1"),
    (["--samples", "10", "--frames-per-episode", "50"], "too few for train + val (1) + test (1)"),
    (["--task", "activity", "--subjects", "2"], "2 subjects leave none for train"),
])
def test_train_all_dataset_size_out_of_range(tmp_path, capsys, args, expect):
    """``train all`` with a dataset size the generator refuses: one error naming the dataset, exit 2,
    before any training. Break tried: no ValueError handling around the generator in
    pipeline._make_dataset (a ValueError traceback, exit 1)."""
    _fails(capsys, ["train", "all", "--data", str(tmp_path / "ds"), "--runs", str(tmp_path / "runs"),
                    "--models", str(tmp_path / "models"), "--workers", "1", "--no-progress", *args],
           "admn-ros train all: error:", str(tmp_path / "ds"), expect)
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("args, expect", [
    (["--fractions", "0.01"], "--fractions 0.01: budget 1 out of range [9, 108]"),
    (["--draws", ""], "--draws: []; use modality and/or stream"),
])
def test_evaluate_flags_no_table_can_take(tmp_path, capsys, args, expect):
    """``evaluate`` with a fraction below the forced first blocks or no draw: one error naming the
    flag, exit 2. Break tried: no budget check in evaluate (a ValueError traceback from select_blocks
    mid-table); no empty check of --draws (a matplotlib ValueError traceback after the table)."""
    from fixtures import write_random_models

    write_random_models(tmp_path / "models")
    generate.generate_dataset(tmp_path / "ds", n_samples=20, frames_per_episode=5, workers=1, progress=False)
    _fails(capsys, ["evaluate", "--data", str(tmp_path / "ds"), "--models", str(tmp_path / "models"),
                    "--out", str(tmp_path / "out"), "--regimes", "binary", "--no-latency", "--no-progress", *args],
           "admn-ros evaluate: error:", expect)


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_train_out_naming_a_file_fails_before_training(tmp_path, capsys, stage):
    """``train stage1/stage2 --out`` naming a file: refused before any epoch, the file untouched.
    Break tried: no file check in common.start_run (the epoch ran, then saving failed with "File
    exists")."""
    from fixtures import write_random_models

    generate.generate_dataset(tmp_path / "ds", n_samples=20, frames_per_episode=5, workers=1, progress=False)
    stage1 = write_random_models(tmp_path / "models")["model"]
    (tmp_path / "f").write_text("mine")
    argv = ["train", stage, "--data", str(tmp_path / "ds"), "--out", str(tmp_path / "f"), "--epochs", "1",
            "--train-samples", "4", "--val-samples", "4", "--no-progress"]
    printed = _fails(capsys, argv + (["--stage1", str(stage1)] if stage == "stage2" else []),
                     f"admn-ros train {stage}: error: {tmp_path / 'f'}: --out is a file")
    assert f"[{stage}]" not in printed and (tmp_path / "f").read_text() == "mine"


@pytest.mark.parametrize("fields, expect", [
    ({"noise_warmup_epochs": -1}, "noise_warmup_epochs must be >= 0, and > 0 when epochs is 0, got -1"),
    ({"epochs": -2}, "Stage2Config.epochs must be >= 0, got -2"),
    ({"epochs": 0, "noise_warmup_epochs": 0}, "noise_warmup_epochs must be >= 0, and > 0 when epochs is 0, got 0"),
])
def test_stage2_epoch_counts_name_the_field_at_fault(fields, expect):
    """A negative ``--warmup-epochs`` names noise_warmup_epochs and its value. Break tried: the
    former combined rule (the message named ``epochs`` with its valid value 1)."""
    from admn_ros.core.train.config import Stage2Config, TrainConfigError

    with pytest.raises(TrainConfigError) as err:
        Stage2Config(**fields)
    assert expect in str(err.value)
