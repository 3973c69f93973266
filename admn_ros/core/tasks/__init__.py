"""The task registry: what an ADMN graph estimates. A new task is one module defining a
:class:`~admn_ros.core.tasks.base.Task` subclass, plus its instance in :data:`TASKS` below."""
from __future__ import annotations

from admn_ros.core.tasks.activity import ActivityTask
from admn_ros.core.tasks.base import Task
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
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {list(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "DEFAULT_TASK", "get_task", "Task"]
