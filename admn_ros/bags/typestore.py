"""A rosbags typestore that knows the ROS 2 Kilted standard messages *and* ``admn_ros/msg/*`` (parsed from our
``.msg`` files, first found wins); the RIHS01 hashes rosbags computes from them equal rosidl's.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from admn_ros.core import paths

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore


class TypestoreError(RuntimeError):
    """A message type could not be found or registered."""


def normalize_type(name: str) -> str:
    """``sensor_msgs/Image`` or ``sensor_msgs/msg/Image`` -> ``sensor_msgs/msg/Image``."""
    parts = [p for p in name.strip().split("/") if p]
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3:
        return "/".join(parts)
    raise TypestoreError(f"invalid message type name {name!r}: expected 'pkg/msg/Type' or 'pkg/Type'")


def short_type(name: str) -> str:
    """``sensor_msgs/msg/Image`` -> ``sensor_msgs/Image`` (for comparisons across ROS 1/2)."""
    parts = [p for p in name.strip().split("/") if p]
    return f"{parts[0]}/{parts[-1]}" if len(parts) >= 2 else name


def admn_msg_files() -> dict[str, Path]:
    """``admn_ros/msg/<Name>`` -> ``.msg`` file, from the first directory holding them of:
    ``$ADMN_ROS_MSG_DIR``, the source tree, the share directory, ``<prefix>/share/admn_ros/msg`` of
    the ament / colcon prefixes and of the venv (where the PyPI ROS wheels put share/)."""
    prefixes = [p for var in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH")
                for p in os.environ.get(var, "").split(os.pathsep) if p] + [sys.prefix]
    cands = [Path(os.environ["ADMN_ROS_MSG_DIR"])] if os.environ.get("ADMN_ROS_MSG_DIR") else []
    cands += [paths.SOURCE_ROOT / "msg", paths.share_dir() / "msg"]
    cands += [Path(p) / "share" / "admn_ros" / "msg" for p in prefixes]
    found = next((p for p in cands if p.is_dir() and any(p.glob("*.msg"))), None)
    if found is None:
        raise TypestoreError("cannot find the admn_ros .msg files; looked in $ADMN_ROS_MSG_DIR, "
                             f"{paths.SOURCE_ROOT}/msg, {paths.share_dir()}/msg and <ament prefix>/share/admn_ros/msg")
    return {f"admn_ros/msg/{p.stem}": p for p in sorted(found.glob("*.msg"))}


@lru_cache(maxsize=1)
def get_admn_typestore() -> "Typestore":
    """The shared typestore: ROS 2 standard types plus ``admn_ros/msg/*`` (cached)."""
    ts = get_typestore(Stores.ROS2_KILTED)  # the requirements pin a rosbags that has it
    typs: dict = {}
    for name, path in admn_msg_files().items():
        try:
            typs.update(get_types_from_msg(path.read_text(encoding="utf-8"), name))
        except Exception as e:  # noqa: BLE001 - rosbags raises several parser errors
            raise TypestoreError(f"cannot parse {path} as {name}: {e}") from e
    ts.register(typs)
    return ts
