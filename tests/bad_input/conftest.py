"""Small hand-written datasets, a checkpoint and a CLI runner for the bad-input suite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
PERSON = [{"id": 1, "name": "person", "keypoints": [f"j{k}" for k in range(3)], "skeleton": []}]
P2 = "7.2e+02 0 3.2e+01 4.5e+01 0 7.2e+02 1.6e+01 0 0 0 1 0"
CAR = "Car 0.00 0 -1.50 10.00 8.00 40.00 60.00 1.50 1.60 3.90 1.00 1.60 20.00 -1.50"


def image(h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_coco(
    root: Path,
    split: str = "val",
    annotations: list | None = None,
    categories: list | None = None,
    kind: str = "instances",
    images: int = 2,
) -> Path:
    """ROOT/annotations/<kind>_<split>.json + ROOT/<split>/<i>.jpg (32 x 48); returns the json path."""
    (root / split).mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(images):
        cv2.imwrite(str(root / split / f"{i}.jpg"), image(seed=i))
        entries.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 48, "height": 32})
    if annotations is None:
        annotations = [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 12], "area": 240, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [10, 6, 14, 20], "area": 280, "iscrowd": 0},
        ]
    data = {"images": entries, "annotations": annotations, "categories": categories or CATEGORIES}
    path = root / "annotations" / f"{kind}_{split}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_kitti(root: Path, frames: tuple[str, ...] = ("000000", "000001"), split: str = "val") -> Path:
    """ROOT/training/{image_2,label_2,calib} with one car per frame (64 x 96 images) + ImageSets."""
    for sub in ("image_2", "label_2", "calib"):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        cv2.imwrite(str(root / "training" / "image_2" / f"{frame}.png"), image(64, 96, k))
        (root / "training" / "label_2" / f"{frame}.txt").write_text(CAR + "\n")
        (root / "training" / "calib" / f"{frame}.txt").write_text(f"P0: {P2}\nP2: {P2}\n")
    (root / "ImageSets").mkdir(exist_ok=True)
    (root / "ImageSets" / f"{split}.txt").write_text("".join(f + "\n" for f in frames))
    return root


@pytest.fixture
def coco(tmp_path: Path) -> Callable[..., Path]:
    """write_coco into tmp_path/coco; returns the json path."""
    return lambda **kw: write_coco(tmp_path / "coco", **kw)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained small boxes2d network saved as our checkpoint (enough to reach the inputs)."""
    from dataclasses import replace

    from centerpoint_suite.checkpoint import save_checkpoint
    from centerpoint_suite.config import apply_overrides, load_config
    from centerpoint_suite.engine import build_model

    exp = apply_overrides(load_config("boxes2d_synthetic"), ["data.test_input_hw=(64,64)", "data.workers=0"])
    exp = replace(exp, task=exp.task.with_classes(("a", "b")))
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    save_checkpoint(path, exp, build_model(exp))
    return path


class CliResult:
    def __init__(self, exit_code: int, output: str) -> None:
        self.exit_code, self.output = exit_code, output
        errors = [line for line in output.splitlines() if line.startswith("Error: ")]
        self.error = errors[-1][len("Error: ") :] if errors else ""


def run_cli(*args: object) -> CliResult:
    """Run ``centerpoint ARGS``; the run must fail with one ``Error:`` line and no traceback."""
    from centerpoint_suite.cli.main import main

    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    out = res.output
    assert res.exit_code != 0, out
    assert "Traceback" not in out, out
    assert len([line for line in out.splitlines() if line.startswith("Error: ")]) == 1, out
    return CliResult(res.exit_code, out)


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_cli
