"""Ignore regions: boxes outside the crop mark nothing, bad channel indices never reach numba."""

from __future__ import annotations

import numpy as np
import pytest

from centerpoint_suite.centers import center_targets
from centerpoint_suite.heatmap import fill_boxes
from centerpoint_suite.tasks.mono3d.targets import build_mono3d_targets
from centerpoint_suite.types import OutputGeometry, Sample

# output cells = pixels / 4 - (10, 0): the map (16 x 32 cells) sees pixels x 40..168, y 0..64
GEOMETRY = OutputGeometry(np.array([[0.25, 0, -10], [0, 0.25, 0]], np.float32), (16, 32))


def mono3d_sample(boxes: list[list[float]]) -> Sample:
    n = len(boxes)
    objects3d = {
        "dimensions": np.ones((n, 3), np.float32),
        "location": np.tile(np.float32([0, 1, 20]), (n, 1)),
        "alpha": np.zeros(n, np.float32),
        "rotation_y": np.zeros(n, np.float32),
    }
    image = np.zeros((100, 200, 3), np.uint8)
    return Sample(image, "t", np.float32(boxes), np.zeros(n, np.int64), np.zeros(n, bool), objects3d=objects3d)


@pytest.mark.parametrize(
    "box",
    [
        [180.0, 10.0, 199.0, 40.0],  # wholly right of the crop: was a whole ignored last column
        [60.0, 70.0, 90.0, 95.0],  # wholly below: was a whole ignored last row
        [0.0, 10.0, 30.0, 40.0],  # wholly left: was a whole ignored first column
    ],
)
def test_box_outside_crop_marks_no_ignore_cells(box):
    t = build_mono3d_targets(mono3d_sample([box]), GEOMETRY, 3, 8)
    assert t["mask"].sum() == 0  # no slot: the box has no area on the map
    assert t["heatmap_ignore"].sum() == 0


def test_box_partly_inside_still_ignored_on_its_cells():
    # one slot: the first object takes it, the second (cells x 30..39.75 clipped to 30..32,
    # y 2..10) becomes an ignore region of its class on columns 30, 31
    t = build_mono3d_targets(mono3d_sample([[60.0, 8.0, 100.0, 40.0], [160.0, 8.0, 199.0, 40.0]]), GEOMETRY, 3, 1)
    assert t["mask"].sum() == 1
    marked = np.argwhere(t["heatmap_ignore"][0])
    assert sorted(set(marked[:, 1].tolist())) == [30, 31]
    assert marked[:, 0].min() == 2 and marked[:, 0].max() == 10
    assert t["heatmap_ignore"][1:].sum() == 0


def test_ignored_object_with_out_of_range_class_raises_not_writes():
    sample = Sample(np.zeros((64, 128, 3), np.uint8), 1, np.float32([[40, 8, 80, 40]]), np.int64([5]), np.ones(1, bool))
    with pytest.raises(ValueError, match="channel 5 out of range"):
        center_targets(sample, GEOMETRY, 3, 8)


@pytest.mark.parametrize("channel", [-2, 3, 1000])
def test_fill_boxes_checks_channel_range(channel):
    mask = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="out of range"):
        fill_boxes(mask, np.int64([channel]), np.float32([[0, 0, 2, 2]]))
    assert mask.sum() == 0


def test_fill_boxes_rejects_nan_and_bad_shapes():
    mask = np.zeros((3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="non-finite"):
        fill_boxes(mask, np.int64([0]), np.float32([[0, np.nan, 2, 2]]))
    with pytest.raises(ValueError, match="boxes"):
        fill_boxes(mask, np.int64([0, 1]), np.float32([[0, 0, 2, 2]]))
