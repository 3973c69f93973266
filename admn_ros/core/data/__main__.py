"""Dataset command line.

    python -m admn_ros.core.data generate --out DIR ...   render the simulated GDTM-style (tracking) dataset
    python -m admn_ros.core.data activity --out DIR ...   render the simulated MM-Fi-style activity dataset

``admn-ros dataset [--task tracking|activity] ...`` is :func:`dataset_main`: ``--task tracking``
(the default) runs ``generate``, ``--task activity`` runs ``activity``.
"""
from __future__ import annotations

import sys

COMMANDS = ("generate", "activity")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m admn_ros.core.data generate --out DIR [options]   (tracking, GDTM-style)\n"
              "       python -m admn_ros.core.data activity --out DIR [options]   (activity, MM-Fi-style)\n"
              "       (python -m admn_ros.core.data <command> --help for the options)")
        return 0 if argv else 2
    if argv[0] == "generate":
        from admn_ros.core.data.generate import main as generate_main

        return generate_main(argv[1:])
    if argv[0] == "activity":
        from admn_ros.core.data.activity import main as activity_main

        return activity_main(argv[1:])
    print(f"unknown command {argv[0]!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


def dataset_main(argv: list[str] | None = None) -> int:
    """``admn-ros dataset [--task tracking|activity] [options]``: the task's generator
    (``--task tracking``, the default: :mod:`admn_ros.core.data.generate`; ``--task activity``:
    :mod:`admn_ros.core.data.activity`). Other options go to that generator."""
    argv = list(sys.argv[1:] if argv is None else argv)
    task, rest, i = "tracking", [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--task":
            if i + 1 >= len(argv):
                print("admn-ros dataset: --task needs a value (tracking or activity)", file=sys.stderr)
                return 2
            task, i = argv[i + 1], i + 2
            continue
        if a.startswith("--task="):
            task = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    if task not in ("tracking", "activity"):
        print(f"admn-ros dataset: unknown --task {task!r}; known: tracking, activity", file=sys.stderr)
        return 2
    if task == "activity":
        from admn_ros.core.data.activity import main as activity_main

        return activity_main(rest)
    if "-h" in rest or "--help" in rest:
        print("admn-ros dataset [--task tracking|activity] [options]: --task tracking (default) renders the "
              "GDTM-style dataset\n(options below); --task activity the MM-Fi-style activity dataset "
              "(admn-ros dataset --task activity --help).\n")
    from admn_ros.core.data.generate import main as generate_main

    return generate_main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
