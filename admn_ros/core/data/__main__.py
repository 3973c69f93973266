"""``python -m admn_ros.core.data generate --out DIR ...``: render the simulated dataset."""
from __future__ import annotations

import sys

from admn_ros.core.data.generate import main as generate_main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m admn_ros.core.data generate --out DIR [options]\n"
              "       (python -m admn_ros.core.data generate --help for the options)")
        return 0 if argv else 2
    if argv[0] != "generate":
        print(f"unknown command {argv[0]!r}; known: generate", file=sys.stderr)
        return 2
    return generate_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
