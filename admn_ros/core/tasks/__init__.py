"""The task registry: what an ADMN graph estimates (see :mod:`admn_ros.core.tasks.base`).

    from admn_ros.core.tasks import get_task
    task = get_task("activity")       # or get_task(model.cfg.task)

A new task is one module defining a :class:`~admn_ros.core.tasks.base.Task` subclass, plus
its instance in :data:`TASKS` below.
"""
from __future__ import annotations

from admn_ros.core.tasks.activity import ActivityTask
from admn_ros.core.tasks.base import MessageSpec, Metric, Scorer, Task
from admn_ros.core.tasks.tracking import TrackingTask

#: Registered tasks by name; the first is the default.
TASKS: dict[str, Task] = {t.name: t for t in (TrackingTask(), ActivityTask())}
DEFAULT_TASK = next(iter(TASKS))


def get_task(task: str | Task | None = None) -> Task:
    """The registered task of that name (``None`` = the default; a :class:`Task` passes through).
    Raises ``ValueError`` naming the known tasks."""
    if isinstance(task, Task):
        return task
    name = DEFAULT_TASK if task is None else str(task)
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {list(TASKS)}") from None


def task_names() -> list[str]:
    return list(TASKS)


__all__ = ["TASKS", "DEFAULT_TASK", "get_task", "task_names", "Task", "Metric", "MessageSpec", "Scorer"]
