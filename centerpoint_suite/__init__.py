"""centerpoint_suite: CenterNet ("Objects as Points") for several tasks on one shared core.

Entry points: ``create_task(name, **kw)``, ``list_tasks()``, ``build_network(arch, heads)``,
``list_networks()``, ``load_original_checkpoint(path, arch, task)``.
"""

from __future__ import annotations

from .openmp import set_spin_default

set_spin_default()  # before the first torch import: idle OpenMP threads yield the cores soon (see openmp.py)

from .models import build_network, list_networks  # noqa: E402
from .registry import NETWORKS, TASKS  # noqa: E402

__version__ = "0.1.0"

# explicit registration of the task plugins (no scanning)
from .tasks import (  # noqa: E402
    boxes2d,  # noqa: F401
    mono3d,  # noqa: F401
    pose2d,  # noqa: F401
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
