"""Shared test fixtures: the real data in ../shared (skipped cleanly when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    return Path(os.environ.get("CENTERPOINT_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared()
    if not (path / "data").is_dir():
        pytest.skip(f"real sample data not found at {path} (set CENTERPOINT_SHARED)")
    return path


@pytest.fixture(scope="session")
def kitti_root(shared_dir: Path) -> Path:
    return shared_dir / "data" / "kitti_object"


@pytest.fixture(scope="session")
def coco_mini(shared_dir: Path) -> Path:
    return shared_dir / "data" / "coco_mini_val2017"


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's dataset cache."""
    old = os.environ.get("CENTERPOINT_CACHE")
    os.environ["CENTERPOINT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("CENTERPOINT_CACHE", None)
    else:
        os.environ["CENTERPOINT_CACHE"] = old


@pytest.fixture(autouse=True)
def _restore_threads():
    """A Trainer applies its thread plan to the whole process (one intra-op thread beside a data
    worker); later tests get the process's threads back."""
    import cv2
    import torch

    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)
