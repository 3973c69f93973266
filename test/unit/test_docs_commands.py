"""The commands and paths that README.md and docs/*.md give a user exist.

Every shell line of a fenced ``bash``/``sh``/unlabelled block and every inline code span is
read as a command: ``admn-ros <sub> ...`` (also ``python -m admn_ros.cli``) and ``python -m
<module> ...`` have each ``--flag`` checked against the argparse parser that command would use
(captured in process when it starts parsing, so nothing runs and no DDS starts), and a literal
value of a flag with choices against them; ``make X`` needs target X in the Makefile;
``ros2 launch admn_ros F`` needs launch/F and its ``name:=`` arguments declared;
``ros2 run admn_ros E`` needs E in resource/executables. Repo-relative file paths (config/,
launch/, docs/, models/, test/, ...) and markdown links (with their #anchors) must exist.

Break tried: ``--budgets`` renamed to ``--budget-list`` in a scratch edit of README.md (the replay
row): test_doc_commands_are_accepted failed naming README.md:75 and the flag; the option renamed the
same way in admn_ros/bags/replay_cli.py: it failed naming README.md:75 and OWN_ROBOT.md:167; a
``make evaluate-all`` span failed as a missing target; ``config/admn.rvz`` and a link to
``docs/FINDINGS.md#no-such-section`` failed test_doc_paths_and_links_exist.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import importlib.util
import io
import itertools
import re
import runpy
import shlex
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: FINDINGS.md is left out: it quotes commands as they ran at past commits ("at X:", scripts since removed)
DOCS = [ROOT / "README.md", *sorted(d for d in (ROOT / "docs").glob("*.md") if d.name != "FINDINGS.md")]
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
PATH_PREFIXES = ("config", "launch", "docs", "models", "test", "benchmarks", "scripts", "admn_ros", "msg",
                 "resource")
#: package-relative paths (``core/sync.py``, ``bags/reader.BagFrames``): under admn_ros/
PACKAGE_PREFIXES = ("core", "ros", "bags")


@dataclass(frozen=True)
class Command:
    doc: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}: {self.text}"


# ---------------------------------------------------------------------------------------------
# Reading the docs


def _code_spans(text: str) -> Iterator[tuple[int, str]]:
    """``(offset, content)`` of the inline code spans of markdown text (single or double backticks, possibly
    over several lines of a paragraph); ``\\|`` in tables is ``|``."""
    for m in re.finditer(r"(`+)((?:(?!\n\s*\n).)+?)\1", text, flags=re.S):
        yield m.start(), " ".join(m.group(2).split()).replace("\\|", "|")


def _split_comment(line: str) -> tuple[str, str]:
    """``code  # comment`` -> (code, comment); a ``#`` inside quotes is kept."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:]
    return line, ""


def doc_commands(doc: Path) -> Iterator[Command]:
    """Candidate command strings of one doc with their line numbers: the lines of shell blocks (continued
    lines joined) and code spans in their comments, and every inline code span of the prose."""
    prose: list[str] = []
    fence: str | None = None
    shell, pending, start = False, "", 0
    for n, raw in enumerate(doc.read_text().splitlines(), 1):
        m = re.match(r"\s*(```+|~~~+)\s*([\w-]*)", raw)
        if m and (fence is None or m.group(1).startswith(fence)):
            fence = m.group(1) if fence is None else None
            shell, pending = fence is not None and m.group(2).lower() in SHELL_LANGS, ""
            prose.append("")
            continue
        prose.append("" if fence else raw)
        if not shell:
            continue
        code, comment = _split_comment(raw)
        for _, span in _code_spans(comment):
            yield Command(doc, n, span)
        start = start if pending else n
        if code.rstrip().endswith("\\"):
            pending += code.rstrip()[:-1] + " "
            continue
        line, pending = (pending + code).strip(), ""
        if line:
            yield Command(doc, start, line)
    text = "\n".join(prose)
    for offset, span in _code_spans(text):
        yield Command(doc, text.count("\n", 0, offset) + 1, span)


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def split_commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a shell line as tokens, without environment assignments, wrappers and the
    ``[ ]`` of optional parts."""
    for part in re.split(r"\s*(?:&&|\|\||;)\s*|\s\|\s|\(|\)", text):
        toks = [t.strip("[]") for t in _tokens(part)]
        toks = [t for t in toks if t and t != "..."]
        while toks and (re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", toks[0]) or toks[0] in ("sudo", "time", "exec")):
            toks = toks[1:]
        if toks[:1] == ["nice"]:
            toks = toks[3:] if toks[1:2] == ["-n"] else toks[1:]
        if toks:
            yield toks


# ---------------------------------------------------------------------------------------------
# Parsers, make targets, launch arguments, executables


class _Captured(Exception):
    def __init__(self, parser: argparse.ArgumentParser, dispatched: list[argparse.ArgumentParser]) -> None:
        super().__init__(parser.prog)
        self.parser = parser
        #: the options of dispatchers that parsed before (``admn-ros dataset --task``) belong to the command too
        for d in dispatched:
            for flag, action in d._option_string_actions.items():
                parser._option_string_actions.setdefault(flag, action)


@contextlib.contextmanager
def _capture_parsers() -> Iterator[None]:
    """Make the first user-facing parser (one with ``-h``) that starts parsing raise :class:`_Captured`:
    a command can be driven up to its parser without running. Dispatchers that pre-parse with
    ``add_help=False`` (``admn-ros dataset --task``) parse as usual."""
    orig = argparse.ArgumentParser.parse_known_args
    dispatched: list[argparse.ArgumentParser] = []

    def capture(self: argparse.ArgumentParser, *a: object, **k: object) -> object:
        if self.add_help:
            raise _Captured(self, dispatched)
        dispatched.append(self)
        return orig(self, *a, **k)

    argparse.ArgumentParser.parse_known_args = capture  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = orig  # type: ignore[method-assign]


def _drive(fn, argv: list[str]) -> argparse.ArgumentParser | str:
    """The parser ``fn`` builds for ``argv``, or why none was captured."""
    saved = sys.argv
    out = io.StringIO()
    try:
        with (_capture_parsers(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out),
              warnings.catch_warnings()):
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before
            rc = fn(argv)
    except _Captured as c:
        return c.parser
    except SystemExit as e:
        return f"exited ({e.code}) before parsing: {out.getvalue().strip()[-300:]}"
    finally:
        sys.argv = saved
    return f"returned {rc!r} without parsing: {out.getvalue().strip()[-300:]}"


def admn_ros_parser(argv: list[str]) -> argparse.ArgumentParser | str:
    from admn_ros import cli

    if argv[0] not in cli.COMMANDS:
        return f"unknown subcommand {argv[0]!r} (known: {', '.join(cli.COMMANDS)})"
    return _drive(cli.main, argv)


def module_parser(module: str, argv: list[str]) -> argparse.ArgumentParser | str | None:
    """The parser of ``python -m module argv``; None for a module without argparse (nothing to check)."""
    if module == "admn_ros.cli":
        return admn_ros_parser(argv) if argv else None
    spec = importlib.util.find_spec(module)
    if spec is None:
        return f"no module {module!r}"
    origin = spec.origin
    if spec.submodule_search_locations:  # a package: python -m runs its __main__
        main = Path(list(spec.submodule_search_locations)[0]) / "__main__.py"
        if not main.exists():
            return f"package {module!r} has no __main__"
        origin = str(main)
    if origin is None or "ArgumentParser" not in Path(origin).read_text():
        return None

    def run(args: list[str]) -> int:
        sys.argv = [origin, *args]
        runpy.run_module(module, run_name="__main__", alter_sys=False)
        return 0

    return _drive(run, argv)


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {k: v for a in p._actions if isinstance(a, argparse._SubParsersAction) for k, v in a.choices.items()}


def _is_placeholder(word: str) -> bool:
    return not word or bool(re.fullmatch(r"[A-Z][A-Z0-9_]*|<.*>|\.\.\.|\S*\*\S*", word))


def check_flags(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Problems of ``args`` (a doc's arguments, placeholders allowed) for ``parser``."""
    subs = _subparsers(parser)
    for i, a in enumerate(args):
        if a in subs:
            return check_flags(subs[a], args[i + 1:])
    actions = dict(parser._option_string_actions)
    if subs:  # no subcommand named: a flag of any of them
        for sp in subs.values():
            actions.update(sp._option_string_actions)
    bad = []
    for i, a in enumerate(args):
        if a == "--ros-args":
            break
        if not a.startswith("--") or a == "--":
            continue
        flag, _, inline = a.partition("=")
        act = actions.get(flag)
        if act is None:
            bad.append(f"{flag}: not an option of {parser.prog}")
            continue
        value = inline or (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else "")
        if act.choices is None or act.nargs not in (None, "?") or not value:
            continue
        alts = value.strip("{}").split("," if value.startswith("{") else "|")
        wrong = [v for v in alts if not _is_placeholder(v) and v not in {str(c) for c in act.choices}]
        if wrong:
            bad.append(f"{flag} {value}: {wrong} not among {sorted(map(str, act.choices))}")
    return bad


def make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"([\w.$()/ -]+?)\s*:(?![=])", line)
        if m and not line.startswith(("\t", "#")):
            targets.update(t for t in m.group(1).split() if "$" not in t)
    return targets - {".PHONY"}


def executables() -> set[str]:
    lines = (ROOT / "resource" / "executables").read_text().splitlines()
    return {ln.split()[0] for ln in lines if ln.strip() and not ln.startswith("#")}


def command_problems(tokens: list[str]) -> list[str]:
    """What is wrong with one command (empty: fine, or not a command this test knows)."""
    prog = Path(tokens[0]).name
    if prog == "admn-ros" and len(tokens) > 1 and not tokens[1].endswith(":"):  # not a message
        subs = [s for s in re.split(r"[|/]", tokens[1]) if s]
        out = []
        for sub in subs:
            p = admn_ros_parser([sub, *tokens[2:]])
            out += [f"admn-ros {sub}: {p}"] if isinstance(p, str) else check_flags(p, tokens[2:])
        return out
    if re.fullmatch(r"python3?(\.\d+)?", prog) and len(tokens) > 2 and tokens[1] == "-m":
        if not re.fullmatch(r"(admn_ros|benchmarks)(\.\w+)*", tokens[2]):
            return []
        p = module_parser(tokens[2], tokens[3:])
        return [] if p is None else [p] if isinstance(p, str) else check_flags(p, tokens[3:])
    if prog == "make":
        known = make_targets()
        return [f"make {t}: no such target in the Makefile" for t in tokens[1:]
                if not t.startswith("-") and "=" not in t and t not in known]
    if prog == "ros2" and tokens[1:3] == ["launch", "admn_ros"] and len(tokens) > 3:
        from admn_ros.ros.graph import LAUNCH_ARGUMENTS

        out = [] if (ROOT / "launch" / tokens[3]).exists() else [f"launch/{tokens[3]} does not exist"]
        return out + [f"launch argument {t.split(':=')[0]!r} is not declared" for t in tokens[4:]
                      if ":=" in t and t.split(":=")[0] not in LAUNCH_ARGUMENTS]
    if prog == "ros2" and tokens[1:3] == ["run", "admn_ros"] and len(tokens) > 3:
        return [] if tokens[3] in executables() else [f"ros2 run: no executable {tokens[3]!r}"]
    return []


# ---------------------------------------------------------------------------------------------
# Paths and links


def _expand(pattern: str) -> list[str]:
    """``{a,b}`` alternatives of a path pattern; ``<name>`` is a wildcard."""
    pattern = re.sub(r"<[^>/]*>", "*", pattern)
    parts = re.split(r"\{([^{}]*,[^{}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _exists(path: Path, pattern: str) -> bool:
    """Every expansion of ``pattern`` matches a file; ``mod.Name`` (a module's member) needs ``mod.py``."""
    if pattern.startswith(PACKAGE_PREFIXES):
        path = path / "admn_ros"
    return all(glob.glob(str(path / p)) or glob.glob(str(path / re.sub(r"\.[A-Za-z]\w*$", ".py", p)))
               for p in _expand(pattern))


def _slug(heading: str) -> str:
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, flags=re.M)}


def path_problems(doc: Path) -> list[str]:
    text = doc.read_text()
    rel = doc.relative_to(ROOT)
    out = []
    flat = text.replace("share/admn_ros/", " ")
    pat = r"(?<![\w./$-])((?:%s)/[\w./*<>{},-]*\.[A-Za-z][\w]*)" % "|".join(PATH_PREFIXES + PACKAGE_PREFIXES)
    for m in re.finditer(pat, flat):
        p = m.group(1).rstrip(".,")
        if not _exists(ROOT, p):
            out.append(f"{rel}:{text.count(chr(10), 0, m.start()) + 1}: {p} does not exist")
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file) if file else doc
        line = text.count("\n", 0, m.start()) + 1
        if not dest.exists():
            out.append(f"{rel}:{line}: link {target} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{rel}:{line}: link {target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    return out


# ---------------------------------------------------------------------------------------------
# Tests


def all_commands() -> list[tuple[Command, list[str]]]:
    return [(c, toks) for doc in DOCS for c in doc_commands(doc) for toks in split_commands(c.text)]


def test_doc_commands_are_accepted() -> None:
    """Every admn-ros / python -m / make / ros2 launch / ros2 run line of the docs names a subcommand,
    flags and choices that exist."""
    checked, bad = 0, []
    for cmd, toks in all_commands():
        problems = command_problems(toks)
        checked += Path(toks[0]).name in ("admn-ros", "make") or toks[1:2] == ["-m"]
        bad += [f"{cmd.where}\n    {p}" for p in problems]
    assert checked > 100, f"only {checked} commands found in the docs: the extraction is broken"
    assert not bad, "doc commands the code does not accept:\n" + "\n".join(bad)


def test_doc_paths_and_links_exist() -> None:
    bad = [p for doc in DOCS for p in path_problems(doc)]
    assert not bad, "paths and links in the docs that do not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("line, problem", [
    ("admn-ros replay BAG --out DIR --budget-list 27", "--budget-list"),
    ("admn-ros record --out BAG --storage rosbag", "--storage rosbag"),
    ("admn-ros dataset --task activity --out DIR --n-samples 10", "--n-samples"),
    ("admn-ros train stage2 --data D --variant {budget,fancy}", "--variant"),
    ("admn-ros frobnicate --out DIR", "unknown subcommand"),
    ("admn-ros convert-gdtm --src S --out O --no-such-flag", "--no-such-flag"),
    ("make evaluate-all", "evaluate-all"),
    ("ros2 launch admn_ros tracking.launch.py budget:=27 no_such_arg:=1", "no_such_arg"),
    ("ros2 run admn_ros no_such_node", "no_such_node"),
])
def test_a_wrong_command_is_reported(line: str, problem: str) -> None:
    problems = [p for toks in split_commands(line) for p in command_problems(toks)]
    assert problems and problem in problems[0], problems


def test_valid_commands_pass() -> None:
    for line in ["admn-ros dataset --from-bag BAG --mapping FILE --out DIR --segment 2",
                 "admn-ros dataset --task activity --out DIR --subjects 4",
                 "admn-ros run activity --subject-id 3 --no-sim-sensors",
                 "OMP_NUM_THREADS=1 .venv/bin/python -m admn_ros.cli replay BAG --out D --task activity",
                 "admn-ros train all --task activity --stage1-epochs 1",
                 "python -m admn_ros.core.data --task activity --out D --workers 2",
                 "make demo DEMO_ARGS=--composed"]:
        assert [p for toks in split_commands(line) for p in command_problems(toks)] == [], line


def test_demo_corruption_needs_scenario_none(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """DEPLOY.md corrupts a stream in the demo with ``--sensor-args corruption...``: under a scenario, whose
    phases set every stream's corruption, that is refused with the way out named; with ``--scenario none``
    the graph is started (stopped here before any process runs).

    Break tried: the refusal removed from ``runner._run``: the first call got to the graph start."""
    import signal

    from admn_ros.ros import runner

    class Started(Exception):
        pass

    def start(*a: object, **k: object) -> None:
        raise Started

    monkeypatch.setattr(runner.GraphProcesses, "start", start)
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # _run installs a SIGTERM handler
    corrupt = ["--task", "activity", "--sensor-args", "corruption.node1.rgb:=gaussian:sigma=3.0"]
    assert runner.demo_main(corrupt) == 2
    err = capsys.readouterr().err
    assert "corruption.node1.rgb" in err and "demo_activity.yaml" in err and "--scenario none" in err
    with pytest.raises(Started):
        runner.demo_main([*corrupt, "--scenario", "none"])


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and its subcommands' parsers (``admn-ros train stage1`` ...)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_is_documented_with_its_default() -> None:
    """Every option of every ``admn-ros`` command has a help text, and one whose default is a value
    (not None, off, empty) says it in that text.

    Break tried: the help of ``evaluate --batch-size`` removed, and ``(default 1)`` removed from
    ``dataset --from-bag --gap``: the test failed naming both."""
    bad = []
    for argv in (["demo"], ["run"], ["dataset"], ["dataset", "--task", "activity"], ["dataset", "--from-bag"],
                 ["convert-gdtm"], ["convert-mmfi", "ROOT"], ["train"], ["evaluate"], ["record"], ["replay"], ["play"]):
        top = admn_ros_parser(argv)
        assert isinstance(top, argparse.ArgumentParser), top
        for parser in _parsers(top):
            for a in parser._actions:
                if not a.option_strings or isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                    continue
                if not a.help:
                    bad.append(f"{parser.prog} {a.option_strings[-1]}: no help")
                elif a.default not in (None, False, "", []) and "default" not in a.help:
                    bad.append(f"{parser.prog} {a.option_strings[-1]}: default {a.default!r} not in {a.help!r}")
    assert not bad, "\n".join(bad)
