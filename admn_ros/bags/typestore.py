"""A rosbags typestore that knows the ROS 2 Kilted standard messages *and* ``admn_ros/msg/*``.

Our definitions are parsed from the ``.msg`` files of ``$ADMN_ROS_MSG_DIR``, the source tree,
or the install's ``share/admn_ros/msg`` (first hit wins); the RIHS01 type hashes rosbags
computes from them equal rosidl's, so our bags carry what ``ros2 bag record`` would write.
:func:`ensure_type` adds other message types on demand from the ament prefixes.
"""
from __future__ import annotations

import os
import re
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from admn_ros.core import paths

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

#: ROS package of our interfaces.
PACKAGE = "admn_ros"

_lock = threading.Lock()


class TypestoreError(RuntimeError):
    """A message type could not be found or registered."""


def store_enum() -> Stores:
    """The rosbags store to start from (the requirements pin a rosbags that has Kilted's)."""
    return Stores.ROS2_KILTED


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


def _ament_prefixes() -> list[Path]:
    out: list[Path] = []
    for var in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH"):
        out += [Path(p) for p in os.environ.get(var, "").split(os.pathsep) if p]
    out.append(Path(sys.prefix))  # the venv: the PyPI ROS wheels put share/ here
    return list(dict.fromkeys(out))


def msg_dirs() -> list[Path]:
    """Candidate directories holding ``admn_ros``'s ``.msg`` files, in search order."""
    cands: list[Path] = []
    env = os.environ.get("ADMN_ROS_MSG_DIR")
    if env:
        cands.append(Path(env))
    cands += [paths.SOURCE_ROOT / "msg", paths.share_dir() / "msg"]
    cands += [p / "share" / PACKAGE / "msg" for p in _ament_prefixes()]
    return [p for p in dict.fromkeys(cands) if p.is_dir() and any(p.glob("*.msg"))]


def admn_msg_files() -> dict[str, Path]:
    """``admn_ros/msg/<Name>`` -> ``.msg`` file, from the first directory of :func:`msg_dirs`."""
    dirs = msg_dirs()
    if not dirs:
        raise TypestoreError(
            "cannot find the admn_ros .msg files; looked in $ADMN_ROS_MSG_DIR, "
            f"{paths.SOURCE_ROOT / 'msg'}, {paths.share_dir() / 'msg'} and "
            "<ament prefix>/share/admn_ros/msg")
    return {f"{PACKAGE}/msg/{p.stem}": p for p in sorted(dirs[0].glob("*.msg"))}


@lru_cache(maxsize=1)
def get_admn_typestore() -> "Typestore":
    """The shared typestore: ROS 2 standard types plus ``admn_ros/msg/*`` (cached)."""
    ts = get_typestore(store_enum())
    typs: dict = {}
    for name, path in admn_msg_files().items():
        try:
            typs.update(get_types_from_msg(path.read_text(encoding="utf-8"), name))
        except Exception as e:  # noqa: BLE001 - rosbags raises several parser errors
            raise TypestoreError(f"cannot parse {path} as {name}: {e}") from e
    ts.register(typs)
    return ts


_FIELD_TYPE = re.compile(r"^\s*([A-Za-z_][\w/]*)(?:\[[^\]]*\])?(?:<=\d+)?\s+[A-Za-z_]\w*")
_BUILTINS = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16",
             "int32", "uint32", "int64", "uint64", "string", "wstring", "time", "duration"}


def _find_msg_file(msgtype: str) -> Path | None:
    pkg, _, name = normalize_type(msgtype).split("/")
    for prefix in _ament_prefixes():
        p = prefix / "share" / pkg / "msg" / f"{name}.msg"
        if p.is_file():
            return p
    return None


def ensure_type(msgtype: str, ts: "Typestore | None" = None) -> str:
    """Make sure ``msgtype`` and the types it uses are in ``ts`` (read from ``share/<pkg>/msg/``
    of the ament prefixes); returns the normalised name."""
    ts = get_admn_typestore() if ts is None else ts
    name = normalize_type(msgtype)
    with _lock:
        todo, seen, typs = [name], set(), {}
        while todo:
            t = todo.pop()
            if t in seen or t in ts.fielddefs:
                continue
            seen.add(t)
            path = _find_msg_file(t)
            if path is None:
                raise TypestoreError(
                    f"message type {t!r} is unknown to the rosbags typestore and no {t.split('/')[-1]}.msg "
                    f"was found under share/{t.split('/')[0]}/msg of {[str(p) for p in _ament_prefixes()]}")
            text = path.read_text(encoding="utf-8")
            typs.update(get_types_from_msg(text, t))
            pkg = t.split("/")[0]
            for m in filter(None, (_FIELD_TYPE.match(line.split("#", 1)[0]) for line in text.splitlines())):
                ft = "std_msgs/Header" if m.group(1) == "Header" else m.group(1)
                if ft not in _BUILTINS:
                    todo.append(normalize_type(ft if "/" in ft else f"{pkg}/{ft}"))
        if typs:
            ts.register(typs)
    return name
