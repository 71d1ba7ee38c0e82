"""Dataset readers (COCO, KITTI) and the built-in synthetic generators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def synthetic_data_for(task_names: set[str]) -> Callable[[Path], Path] | None:
    """The built-in generator whose scenes hold what every task in ``task_names`` needs, as
    ``generate(cache_dir) -> root``; None when no generator covers the combination."""
    if task_names <= {"boxes2d", "pose2d"}:
        from .synthetic_scenes import generate_scenes

        return lambda cache: generate_scenes(cache / "synthetic_scenes")
    return None
