"""``admn-ros dataset [--task <task>] ...`` (also ``python -m admn_ros.core.data``): the task's
simulated dataset generator (:attr:`Task.dataset_module <admn_ros.core.tasks.base.Task.dataset_module>`)."""
from __future__ import annotations

import argparse
import importlib
import sys

from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task


def dataset_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="admn-ros dataset", add_help=False, allow_abbrev=False)
    p.add_argument("--task", default=DEFAULT_TASK)
    a, rest = p.parse_known_args(argv)
    if a.task not in TASKS:
        print(f"admn-ros dataset: unknown --task {a.task!r}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:
        print(f"admn-ros dataset [--task {'|'.join(TASKS)}] [options]: the task's simulated dataset "
              f"(default {DEFAULT_TASK}); the options of the {a.task} generator:\n")
    return importlib.import_module(get_task(a.task).dataset_module).main(rest)


if __name__ == "__main__":
    raise SystemExit(dataset_main())
