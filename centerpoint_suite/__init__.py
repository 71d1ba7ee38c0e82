"""centerpoint_suite: CenterNet ("Objects as Points") for several tasks on one shared core.

Entry points: ``create_task(name, **kw)``, ``list_tasks()``, ``build_network(arch, heads)``,
``list_networks()``, ``load_original_checkpoint(path, arch, task)``.
"""

from __future__ import annotations

from .models import build_network, list_networks
from .registry import NETWORKS, TASKS

__version__ = "0.1.0"

# explicit registration of the task plugins (no scanning)
from .tasks import (
    boxes2d,  # noqa: E402,F401
    mono3d,  # noqa: E402,F401
    pose2d,  # noqa: E402,F401
)


def create_task(name: str, **params):
    """A registered task with the given hyper-parameters, e.g. ``create_task("boxes2d", classes=("a",))``,
    or a composite of registered tasks on one network, e.g. ``create_task("boxes2d+pose2d")``."""
    from .composite import create_task as _create

    return _create(name, **params)


def list_tasks() -> list[str]:
    return TASKS.names()


from .zoo import load_original_checkpoint  # noqa: E402

__all__ = [
    "NETWORKS",
    "TASKS",
    "build_network",
    "create_task",
    "list_networks",
    "list_tasks",
    "load_original_checkpoint",
]
