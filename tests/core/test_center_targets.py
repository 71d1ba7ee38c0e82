"""``center_targets`` (one numba pass over the objects) gives bitwise the targets of the numpy
implementation it replaced, kept here as its twin: real COCO-mini samples under random training
affines, and random boxes (hypothesis) with ignore flags, bad classes and keypoint centres."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.centers import center_targets
from centerpoint_suite.geometry import affine_boxes, apply_affine, center_scale_affine
from centerpoint_suite.heatmap import fill_boxes, integer_radius, splat_gaussians
from centerpoint_suite.transforms import AugmentConfig, sample_train_affine
from centerpoint_suite.types import OutputGeometry, Sample


def center_targets_numpy(sample, geometry, num_classes, max_objects, radius_formula, min_overlap, centers=None):
    """The implementation before the numba pass (tests only): (targets, kept, centres, boxes, radii)."""
    out_h, out_w = geometry.output_hw
    heatmap = np.zeros((num_classes, out_h, out_w), np.float32)
    ignore_map = np.zeros((num_classes, out_h, out_w), np.uint8)
    n = len(sample)
    boxes = affine_boxes(geometry.trans_output, sample.boxes) if n else np.zeros((0, 4), np.float32)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, out_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, out_h)
    wh = boxes[:, 2:] - boxes[:, :2]
    ign = sample.ignore.astype(bool)
    if ign.any():
        fill_boxes(ignore_map, sample.classes[ign].astype(np.int64), boxes[ign].astype(np.float32))
    if centers is None:
        ctr = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = np.ones(n, bool)
    else:
        ctr = apply_affine(geometry.trans_output, np.asarray(centers, np.float64)).astype(np.float32)
        inside = (ctr[:, 0] >= 0) & (ctr[:, 0] < out_w) & (ctr[:, 1] >= 0) & (ctr[:, 1] < out_h)
    valid = (~ign) & (wh[:, 0] > 0) & (wh[:, 1] > 0) & inside & (sample.classes >= 0) & (sample.classes < num_classes)
    kept = np.flatnonzero(valid)[:max_objects]
    ctr_k = ctr[kept].astype(np.float32)
    cell = np.minimum(ctr_k.astype(np.int32), [out_w - 1, out_h - 1]).astype(np.int32)
    radii = integer_radius(np.ceil(wh[kept, 1]), np.ceil(wh[kept, 0]), min_overlap, radius_formula)
    splat_gaussians(heatmap, sample.classes[kept].astype(np.int64), cell, radii)
    m = len(kept)
    indices = np.zeros(max_objects, np.int64)
    mask = np.zeros(max_objects, np.uint8)
    size = np.zeros((max_objects, 2), np.float32)
    offset = np.zeros((max_objects, 2), np.float32)
    indices[:m] = cell[:, 1].astype(np.int64) * out_w + cell[:, 0]
    mask[:m] = 1
    size[:m] = wh[kept]
    offset[:m] = ctr_k - cell
    targets = dict(heatmap=heatmap, heatmap_ignore=ignore_map, indices=indices, mask=mask, size=size, offset=offset)
    return targets, kept, ctr_k, boxes[kept], radii


def assert_same(sample, geometry, num_classes, max_objects, formula="cornernet", overlap=0.7, centers=None):
    got = center_targets(sample, geometry, num_classes, max_objects, formula, overlap, centers)
    targets, kept, ctr, boxes, radii = center_targets_numpy(
        sample, geometry, num_classes, max_objects, formula, overlap, centers
    )
    assert got.targets.keys() == targets.keys()
    for key, ref in targets.items():
        value = got.targets[key]
        assert value.dtype == ref.dtype and value.shape == ref.shape, key
        assert value.tobytes() == ref.tobytes(), key  # bitwise
    for a, b in ((got.kept, kept), (got.centers, ctr), (got.boxes, boxes), (got.radii, radii)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    return got


@pytest.mark.parametrize("kind", ["instances", "person_keypoints"])
def test_bitwise_on_coco_mini_training_samples(coco_mini, kind):
    from centerpoint_suite.datasets.coco import CocoSource

    src = CocoSource(coco_mini, None, kind)
    num_classes = len(src.classes)
    placed = 0
    for i in range(len(src)):
        sample = src[i]
        rng = np.random.default_rng(i)
        m, flipped = sample_train_affine(rng, sample.hw, (512, 512), AugmentConfig(), True)
        geometry = OutputGeometry((m / 4).astype(np.float32), (128, 128), flipped)
        formula = ("cornernet", "exact")[i % 2]
        placed += int(assert_same(sample, geometry, num_classes, (128, 5)[i % 3 == 0], formula).targets["mask"].sum())
    assert placed > 50


boxes_st = st.lists(
    st.tuples(
        st.floats(-80, 600),
        st.floats(-80, 400),
        st.floats(0, 300),
        st.floats(0, 200),
        st.integers(-1, 4),
        st.booleans(),
        st.floats(-50, 650),
        st.floats(-50, 450),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(
    boxes_st,
    st.floats(100, 900),
    st.booleans(),
    st.sampled_from(["cornernet", "exact"]),
    st.floats(0.3, 0.9),
    st.booleans(),
)
def test_bitwise_on_random_boxes(objs, scale, flip, formula, overlap, keypoint_centres):
    n = len(objs)
    a = np.array(objs, np.float64).reshape(n, 8)
    boxes = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], 1).astype(np.float32)
    classes = a[:, 4].astype(np.int64)
    ignore = a[:, 5].astype(bool) & (classes >= 0) & (classes < 4)  # an ignored bad class is an error in both
    sample = Sample(np.zeros((400, 600, 3), np.uint8), 0, boxes, classes, ignore)
    m = center_scale_affine((300.0, 200.0), scale, (256, 192), flip_width=600 if flip else None)
    geometry = OutputGeometry((m / 4).astype(np.float32), (48, 64), flip)
    centres = a[:, 6:8] if keypoint_centres else None
    assert_same(sample, geometry, 4, 16, formula, overlap, centres)


def test_unknown_radius_formula_is_an_error():
    sample = Sample(
        np.zeros((8, 8, 3), np.uint8), 0, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool)
    )
    with pytest.raises(ValueError, match="radius formula"):
        center_targets(sample, OutputGeometry(np.eye(2, 3, dtype=np.float32), (2, 2)), 1, 4, "bogus")


@numba.njit(cache=False)
def splat_per_cell(heatmap, channels, centers, radii):
    """The splat before the symmetric table (tests only): one exp per cell of the window."""
    _, H, W = heatmap.shape
    eps = 2.220446049250313e-16
    for n in range(channels.shape[0]):
        c, cx, cy, r = channels[n], centers[n, 0], centers[n, 1], radii[n]
        sigma = (2 * r + 1) / 6.0
        inv = 1.0 / (2.0 * sigma * sigma)
        for y in range(max(cy - r, 0), min(cy + r + 1, H)):
            for x in range(max(cx - r, 0), min(cx + r + 1, W)):
                g = np.exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) * inv)
                if g < eps:
                    g = 0.0
                if g > heatmap[c, y, x]:
                    heatmap[c, y, x] = g


@pytest.mark.parametrize("seed", range(4))
def test_symmetric_splat_is_bitwise_the_per_cell_splat(seed):
    rng = np.random.default_rng(seed)
    n = 40
    channels = rng.integers(0, 3, n)
    centers = rng.integers(-30, 130, (n, 2)).astype(np.int32)
    radii = rng.integers(0, 60, n).astype(np.int32)
    got = np.zeros((3, 96, 128), np.float32)
    ref = np.zeros((3, 96, 128), np.float32)
    splat_gaussians(got, channels, centers, radii)
    splat_per_cell(ref, channels, centers, radii)
    assert ref.any() and got.tobytes() == ref.tobytes()
