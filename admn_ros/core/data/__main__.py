"""Dataset command line: render a task's simulated dataset (its generator:
:attr:`Task.dataset_module <admn_ros.core.tasks.base.Task.dataset_module>`).

    python -m admn_ros.core.data <task> --out DIR ...     e.g. tracking (GDTM-style), activity (MM-Fi-style)
    python -m admn_ros.core.data generate --out DIR ...   the default task's (tracking)

``admn-ros dataset [--task <task>] ...`` is :func:`dataset_main`.
"""
from __future__ import annotations

import importlib
import sys

from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task

#: command -> task
COMMANDS = {"generate": DEFAULT_TASK, **{t: t for t in TASKS}}


def _generate(task: str, argv: list[str]) -> int:
    return importlib.import_module(get_task(task).dataset_module).main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m admn_ros.core.data <command> --out DIR [options]\n"
              + "".join(f"  {c:<10} the {t} dataset\n" for c, t in COMMANDS.items())
              + "(python -m admn_ros.core.data <command> --help for the options)")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"unknown command {argv[0]!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return _generate(COMMANDS[argv[0]], argv[1:])


def dataset_main(argv: list[str] | None = None) -> int:
    """``admn-ros dataset [--task <task>] [options]``: the task's generator (default: tracking);
    the other options go to it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    task, rest, i = DEFAULT_TASK, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--task":
            if i + 1 >= len(argv):
                print(f"admn-ros dataset: --task needs a value ({', '.join(TASKS)})", file=sys.stderr)
                return 2
            task, i = argv[i + 1], i + 2
            continue
        if a.startswith("--task="):
            task = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    if task not in TASKS:
        print(f"admn-ros dataset: unknown --task {task!r}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:
        print(f"admn-ros dataset [--task {'|'.join(TASKS)}] [options]: the task's simulated dataset "
              f"(default {DEFAULT_TASK}); the options of the {task} generator:\n")
    return _generate(task, rest)


if __name__ == "__main__":
    raise SystemExit(main())
