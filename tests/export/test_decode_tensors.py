"""The two halves of every task's decode: ``decode_tensors`` (exportable) and ``to_predictions``.

An exported graph returns coordinates in network-input pixels (scale = STRIDE); mapped back
with that scale they must give exactly the Python decode's detections.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centerpoint_suite import create_task
from centerpoint_suite.centers import detections_to_numpy
from centerpoint_suite.registry import TASKS
from centerpoint_suite.task import Task
from centerpoint_suite.transforms import STRIDE
from centerpoint_suite.types import BatchMeta

K = 12


NAMES = [*TASKS.names(), "boxes2d+pose2d"]


def _base(field: str) -> str:
    """A detection field's name without a composite's task prefix."""
    return field.rsplit(".", 1)[-1]


def _task(name: str):
    if name == "boxes2d+pose2d":
        both = create_task(name)
        return both.with_task("boxes2d", _task("boxes2d"))
    task = TASKS.get(name)()
    return task.with_classes(("a", "b")) if name == "boxes2d" else task


def _maps(task, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(2, c, 12, 20, generator=g) * 3 for n, c in task.heads().items()}


def _meta(task) -> BatchMeta:
    inverse = np.array([[[4.2, 0.1, -5.0], [0.0, 3.8, 7.0]], [[-2.0, 0.0, 60.0], [0.0, 2.0, -3.0]]], np.float32)
    calib = task.calibration((60, 90))
    calib = None if calib is None else np.stack([calib] * 2)
    return BatchMeta(inverse, ["a", "b"], [(60, 90), (40, 70)], calib)


@pytest.mark.parametrize("name", NAMES)
def test_fields_are_declared_and_fixed_k(name):
    task = _task(name)
    assert isinstance(task, Task)
    dets = task.decode_tensors(_maps(task), K)
    assert list(dets) == list(task.detection_fields())
    assert {"boxes", "scores", "classes"} <= {_base(f) for f in dets}  # composites: <task>.boxes ...
    for field, value in dets.items():
        assert value.shape[:2] == (2, K), field
        assert f"({', '.join(['B', 'K'])}" in task.detection_fields()[field]
    assert all(v.dtype == torch.int64 for f, v in dets.items() if _base(f) == "classes")


@pytest.mark.parametrize("name", NAMES)
def test_input_pixel_frame_maps_back_to_the_same_predictions(name):
    task = _task(name)
    maps, meta = _maps(task, 1), _meta(task)
    cells = task.decode_tensors(maps, K)
    pixels = task.decode_tensors(maps, K, scale=float(STRIDE))
    coords = [f for f, desc in task.detection_fields().items() if "{frame}" in desc]
    assert "boxes" in {_base(c) for c in coords}
    for field in cells:
        joints = _base(field) == "keypoints"
        ref = cells[field][..., :2] * STRIDE if joints else cells[field] * STRIDE
        got = pixels[field][..., :2] if joints else pixels[field]
        if field in coords:
            assert torch.equal(got, ref), field
        else:
            assert torch.equal(pixels[field], cells[field]), field
    ref_preds = task.decode(maps, meta, K)
    got_preds = task.to_predictions(detections_to_numpy(pixels), meta, scale=float(STRIDE))
    for r, g in zip(ref_preds, got_preds):
        np.testing.assert_array_equal(g.boxes, r.boxes)
        np.testing.assert_array_equal(g.scores, r.scores)
        assert set(g.extras) == set(r.extras)
        for key in r.extras:
            np.testing.assert_array_equal(g.extras[key], r.extras[key], err_msg=key)
