"""Affine maps: transform/inverse round trips and the CenterNet window convention (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.geometry import (
    affine_boxes,
    apply_affine,
    batch_apply_affine,
    center_scale_affine,
    invert_affine,
)
from centerpoint_suite.transforms import EvalResize, eval_affine

coord = st.floats(-500, 2000)


@given(
    coord,
    coord,
    st.floats(10, 3000),
    st.floats(-45, 45),
    st.booleans(),
    st.lists(st.tuples(coord, coord), min_size=1, max_size=5),
)
@settings(max_examples=200, deadline=None)
def test_affine_inverse_round_trip(cx, cy, scale, rot, flip, pts):
    m = center_scale_affine((cx, cy), scale, (512, 384), rot, flip_width=1000 if flip else None)
    p = np.asarray(pts, np.float64)
    back = apply_affine(invert_affine(m), apply_affine(m, p))
    np.testing.assert_allclose(back, p, atol=1e-6 * (1 + np.abs(p).max()))


@given(coord, coord, st.floats(10, 3000))
@settings(max_examples=100, deadline=None)
def test_center_lands_at_destination_centre_with_uniform_zoom(cx, cy, scale):
    m = center_scale_affine((cx, cy), scale, (512, 256))
    np.testing.assert_allclose(apply_affine(m, np.array([cx, cy])), [256, 128], atol=1e-6)
    zoom = 512 / scale
    np.testing.assert_allclose(m[:, :2], np.eye(2) * zoom, rtol=1e-9)


def test_flip_mirrors_x():
    w = 640
    m = center_scale_affine((w / 2 - 0.5, 200), w, (w, 400), flip_width=w)
    # mirrored source: x -> w-1-x, then identity-like map
    out = apply_affine(m, np.array([[0.0, 10.0], [w - 1.0, 10.0]]))
    assert out[0, 0] > out[1, 0]
    boxes = affine_boxes(m, np.array([[10, 20, 50, 60]], np.float32))
    assert boxes[0, 0] < boxes[0, 2]


@given(st.integers(50, 2000), st.integers(50, 2000))
@settings(max_examples=100, deadline=None)
def test_letterbox_keeps_whole_image_inside_input(h, w):
    m, (ih, iw) = eval_affine((h, w), EvalResize((512, 512), "fixed"))
    corners = apply_affine(m, np.array([[0, 0], [w, h]], np.float64))
    assert corners.min() >= -1e-6 and corners[1, 0] <= iw + 1e-6 and corners[1, 1] <= ih + 1e-6


def test_keep_res_pads_to_multiple_of_32():
    m, (ih, iw) = eval_affine((375, 1242), EvalResize(mode="keep_res"))
    assert (ih, iw) == (384, 1248)
    np.testing.assert_allclose(m[:, :2], np.eye(2))


def test_batch_apply_matches_single():
    rng = np.random.default_rng(0)
    ms = np.stack([center_scale_affine(rng.uniform(0, 100, 2), rng.uniform(50, 500), (128, 128)) for _ in range(3)])
    pts = rng.uniform(0, 128, (3, 7, 2)).astype(np.float32)
    got = batch_apply_affine(ms, pts)
    for i in range(3):
        np.testing.assert_allclose(got[i], apply_affine(ms[i], pts[i].astype(np.float64)), atol=1e-4)
