"""``admn-ros``: one command for everything a user runs (:data:`COMMANDS`: subcommand -> module,
function taking argv, help). Each subcommand imports only what it needs, so ``admn-ros dataset``
works without rclpy and ``admn-ros run`` without matplotlib.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("admn_ros.ros.runner", "demo_main",
             "simulated sensors + full ADMN graph with live summary (--task activity)"),
    "run": ("admn_ros.ros.runner", "run_main", "start a task's graph (`run [tracking|activity]`, the graph of "
            "<task>.launch.py)"),
    "dataset": ("admn_ros.bags.dataset", "dataset_main",
                "generate a simulated dataset: GDTM-style (--task tracking, default) or MM-Fi-style (--task activity); "
                "--from-bag: build one from your recordings"),
    "convert-gdtm": ("admn_ros.core.data.gdtm", "main", "convert a preprocessed GDTM copy into our dataset format"),
    "convert-mmfi": ("admn_ros.core.data.mmfi", "main", "convert an MM-Fi copy into the activity dataset format"),
    "train": ("admn_ros.core.train.cli", "main", "train stage 1 / stage 2 models"),
    "evaluate": ("admn_ros.core.evaluate.cli", "main", "Table-1 evaluation on a held-out split"),
    "record": ("admn_ros.bags.record", "main", "record the (simulated) network to rosbag2"),
    "replay": ("admn_ros.bags.replay_cli", "main", "evaluate a rosbag2 through the pipeline"),
    "play": ("admn_ros.bags.play", "main", "publish a rosbag2 in real time with /clock"),
}


def refuse_unused(parser: argparse.ArgumentParser, args: argparse.Namespace, dests: Sequence[str], why: str) -> None:
    """argparse's error (exit 2) naming the options of ``dests`` given other than their default,
    which the chosen mode ignores (``why``)."""
    if given := [f"--{d.replace('_', '-')}" for d in dests if getattr(args, d) != parser.get_default(d)]:
        parser.error(f"{', '.join(given)}: {why}")


def _usage() -> str:
    lines = ["usage: admn-ros <command> [options]   (admn-ros <command> --help)", "", "commands:"]
    w = max(map(len, COMMANDS))
    lines += [f"  {name:<{w}}  {helptext}" for name, (_, _, helptext) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"admn-ros: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[cmd]
    try:
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    except KeyboardInterrupt:  # Ctrl-C: the command has removed what it left unfinished
        print(f"admn-ros {cmd}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # unreadable input, unwritable output, a file where a directory belongs
        print(f"admn-ros {cmd}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
