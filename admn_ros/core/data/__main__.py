"""``admn-ros dataset [--task <task>] ...`` (also ``python -m admn_ros.core.data``): the task's
simulated dataset generator (:attr:`Task.dataset_module <admn_ros.core.tasks.base.Task.dataset_module>`)."""
from __future__ import annotations

import importlib
import sys

from admn_ros.core.tasks import DEFAULT_TASK, TASKS, get_task


def dataset_main(argv: list[str] | None = None) -> int:
    """The task's generator (default: tracking) with the other options."""
    args = iter(sys.argv[1:] if argv is None else argv)
    task: str | None = DEFAULT_TASK
    rest: list[str] = []
    for a in args:
        if a == "--task":
            if (task := next(args, None)) is None:
                print(f"admn-ros dataset: --task needs a value ({', '.join(TASKS)})", file=sys.stderr)
                return 2
        elif a.startswith("--task="):
            task = a.split("=", 1)[1]
        else:
            rest.append(a)
    if task not in TASKS:
        print(f"admn-ros dataset: unknown --task {task!r}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    if "-h" in rest or "--help" in rest:
        print(f"admn-ros dataset [--task {'|'.join(TASKS)}] [options]: the task's simulated dataset "
              f"(default {DEFAULT_TASK}); the options of the {task} generator:\n")
    return importlib.import_module(get_task(task).dataset_module).main(rest)


if __name__ == "__main__":
    raise SystemExit(dataset_main())
