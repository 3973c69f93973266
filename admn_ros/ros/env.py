"""Process environment for DDS (localhost-only discovery, the shipped FastDDS profile, a ROS_DOMAIN_ID of
our own), the nodes' executor, and how node processes end and are stopped. No rclpy at module level."""
from __future__ import annotations

import fcntl
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable, MutableMapping

from admn_ros.core.paths import config_path

_held_locks: list = []  # keep lock files open for the life of the process


def configure_dds_env(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Localhost discovery, rmw_fastrtps_cpp, the shipped FastDDS profile in ``env`` (``os.environ``) unless set."""
    env = os.environ if env is None else env
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    profile = config_path("fastdds.xml")
    if profile.is_file():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    return env


def reserve_domain_id(lo: int = 100, hi: int = 200) -> int:
    """Pick a ROS_DOMAIN_ID in ``[lo, hi)`` no other live process of ours holds (file locks),
    so parallel test sessions and demos on one machine do not cross-talk."""
    lockdir = Path(tempfile.gettempdir()) / "admn_ros_domains"
    lockdir.mkdir(exist_ok=True)
    start = os.getpid() % (hi - lo)
    for k in range(hi - lo):
        did = lo + (start + k) % (hi - lo)
        f = open(lockdir / f"{did}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _held_locks.append(f)
        return did
    raise RuntimeError(f"no free ROS_DOMAIN_ID in [{lo}, {hi}): all locked under {lockdir}")


def isolated_env(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """:func:`configure_dds_env` plus a reserved ROS_DOMAIN_ID (unless one is already set)."""
    env = configure_dds_env(env)
    if "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(reserve_domain_id())
    return env


def exit_process(rc: int) -> int:
    """End the node process with ``rc`` without the interpreter's final garbage collection: with torch
    loaded it hung in native destructors after SIGINT under ``ros2 launch`` (then SIGTERM, SIGKILL).
    The rclpy context is destroyed first (after a collection of the reference cycles that can hold
    its nodes' handles): its DDS participant would otherwise leave its /dev/shm segments behind."""
    gc.collect()
    rclpy = sys.modules.get("rclpy")
    if rclpy is not None:
        with suppress(Exception):
            rclpy.get_default_context().destroy()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def stop_process_groups(procs: list[subprocess.Popen], timeout: float = 5.0, sig: int = signal.SIGINT) -> None:
    """``sig`` to the process group of each of ``procs`` (started with ``start_new_session``), then
    SIGKILL to those still running after ``timeout`` s."""
    for p in procs:
        if p.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=2.0)


def make_executor(context: Any = None) -> Any:
    """rclpy's ``EventsExecutor`` (the default executor rebuilds a wait set over every entity for each
    callback)."""
    from rclpy.experimental import EventsExecutor

    return EventsExecutor(context=context)


def spin(*nodes: Any, stopped: Callable[[], bool] = lambda: False) -> None:
    """Spin ``nodes`` with :func:`make_executor` until rclpy shuts down or ``stopped()``. ``spin_once``
    with a timeout: the events executor's untimed ``spin_once`` runs no timers."""
    import rclpy

    ex = make_executor()
    for n in nodes:
        ex.add_node(n)
    try:
        while rclpy.ok() and not stopped():
            ex.spin_once(timeout_sec=0.1)
    finally:
        # an executor left alive keeps the DDS participant, and with it its /dev/shm segments, past
        # the process's os._exit
        ex.shutdown()


def run_process(make: Callable[[], Any], label: str, errors: tuple[type[Exception], ...],
                args: list[str] | None = None) -> int:
    """``main()`` of a node process: DDS environment, init, ``make()`` the node (or a container's list of
    nodes), spin, clean up, :func:`exit_process`. Exit code 2 with the problem on stderr when rcl cannot
    parse the ROS arguments, ``make`` raises one of ``errors`` or a node's ``configure_error`` (a failed
    autostart) names a problem; SIGINT, or SIGTERM (after the running callback), is a clean exit."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    configure_dds_env()  # localhost discovery + shipped FastDDS profile unless the environment says otherwise
    nodes: list[Any] = []
    rc, spinning, stop = 0, False, False

    def on_sigterm(*_: Any) -> None:
        """SIGTERM while starting: stop at once (as SIGINT); while spinning: after the running callback."""
        nonlocal stop
        if not spinning:
            raise KeyboardInterrupt
        stop = True

    # before this (imports) SIGTERM ends the process silently; rclpy's own SIGTERM handler would invalidate
    # the context under a running callback
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.SIGINT)
    except RuntimeError as exc:  # ROS arguments rcl cannot parse (-p, -r, --params-file)
        print(f"[{label}] error: {exc}", file=sys.stderr, flush=True)
        return exit_process(2)
    try:
        try:
            nodes = make()
            nodes = nodes if isinstance(nodes, list) else [nodes]
        except errors as exc:
            print(f"[{label}] error: {exc.args[0] if isinstance(exc, KeyError) and exc.args else exc}",
                  file=sys.stderr, flush=True)
            rc = 2
        for node in nodes:
            why = getattr(node, "configure_error", None)
            if why:
                print(f"[{node.get_name()}] error: {why}", file=sys.stderr, flush=True)
                rc = 2
        if rc == 0:
            spinning = True
            spin(*nodes, stopped=lambda: stop)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    nodes, node = [], None  # so exit_process's collection can free them with the context
    return exit_process(rc)
