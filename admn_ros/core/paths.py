"""Where the package's data files (config/, models/, launch/) live: ``share/admn_ros`` when installed
by colcon, the source tree in the venv (editable install); :func:`read_yaml` reads a user's YAML file."""
from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def share_dir() -> Path:
    """Directory holding config/, models/ and launch/ (``ADMN_ROS_SHARE`` overrides)."""
    env = os.environ.get("ADMN_ROS_SHARE")
    if env:
        return Path(env)
    if (SOURCE_ROOT / "config").is_dir() and (SOURCE_ROOT / "setup.py").is_file():
        return SOURCE_ROOT
    with contextlib.suppress(Exception):  # colcon install (unless the ament index is absent or lacks the package)
        from ament_index_python.packages import get_package_share_directory

        p = Path(get_package_share_directory("admn_ros"))
        if (p / "config").is_dir():
            return p
    return SOURCE_ROOT


def config_path(name: str) -> Path:
    """Path of a shipped config file, e.g. ``config_path("sensors.yaml")``."""
    return share_dir() / "config" / name


def models_dir() -> Path:
    return share_dir() / "models"


def read_yaml(path: str | Path, what: str, error: type[Exception] = ValueError) -> Any:
    """The YAML document in ``path`` (a ``what``, e.g. "topic mapping"); ``error`` naming the file and
    the problem when it is missing, a directory, not UTF-8 text or not valid YAML."""
    import yaml

    p = Path(path).expanduser()
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{p}: cannot read the {what}: {getattr(e, 'strerror', None) or e}") from None
    except yaml.YAMLError as e:
        raise error(f"{p}: invalid YAML: {e}") from None
