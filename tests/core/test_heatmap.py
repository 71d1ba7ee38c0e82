"""Heatmap core: numba kernels against numpy twins, radius formulas, peak/top-K/gather."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.heatmap import (
    fill_boxes,
    gather_at,
    gaussian_radius,
    peak_scores,
    scatter_at,
    splat_gaussians,
    topk_peaks,
)


# ---- numpy twins (tests only) ----------------------------------------------------------------
def splat_twin(heatmap, channels, centers, radii):
    _, h, w = heatmap.shape
    ys, xs = np.mgrid[0:h, 0:w]
    for c, (cx, cy), r in zip(channels, centers, radii):
        sigma = (2 * r + 1) / 6.0
        g = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
        g[g < np.finfo(np.float64).eps] = 0
        window = (np.abs(xs - cx) <= r) & (np.abs(ys - cy) <= r)
        heatmap[c] = np.where(window, np.maximum(heatmap[c], g), heatmap[c])


def fill_twin(mask, channels, boxes):
    c_all, h, w = mask.shape
    for c, b in zip(channels, boxes):
        if b[2] <= 0 or b[3] <= 0:
            continue
        x0, y0 = max(int(np.floor(b[0])), 0), max(int(np.floor(b[1])), 0)
        x1, y1 = min(int(np.floor(b[2])), w - 1), min(int(np.floor(b[3])), h - 1)
        chans = range(c_all) if c < 0 else [c]
        for cc in chans:
            mask[cc, y0 : y1 + 1, x0 : x1 + 1] = 1


def cornernet_radius_twin(h, w, o=0.7):
    # the expression as published with CornerNet (scalar form)
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    r1 = (b1 + np.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def box_iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda z: (z[2] - z[0]) * (z[3] - z[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


# ---- kernels == twins ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_splat_matches_numpy_twin(seed):
    rng = np.random.default_rng(seed)
    c, h, w, n = 3, 37, 53, 25
    channels = rng.integers(0, c, n)
    centers = np.stack([rng.integers(-5, w + 5, n), rng.integers(-5, h + 5, n)], 1).astype(np.int32)
    radii = rng.integers(0, 12, n).astype(np.int32)
    ours = np.zeros((c, h, w), np.float32)
    twin = np.zeros((c, h, w), np.float32)
    splat_gaussians(ours, channels, centers, radii)
    splat_twin(twin, channels, centers, radii)
    np.testing.assert_allclose(ours, twin, atol=1e-6)
    inside = (centers[:, 0] >= 0) & (centers[:, 0] < w) & (centers[:, 1] >= 0) & (centers[:, 1] < h)
    for k in np.flatnonzero(inside):
        assert ours[channels[k], centers[k, 1], centers[k, 0]] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_fill_boxes_matches_numpy_twin(seed):
    rng = np.random.default_rng(seed)
    c, h, w, n = 4, 20, 30, 6
    channels = rng.integers(-1, c, n)
    xy = rng.uniform(-5, 35, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 15, (n, 2))], 1).astype(np.float32)
    ours = np.zeros((c, h, w), np.uint8)
    twin = np.zeros((c, h, w), np.uint8)
    fill_boxes(ours, channels, boxes)
    fill_twin(twin, channels, boxes)
    np.testing.assert_array_equal(ours, twin)


# ---- radius --------------------------------------------------------------------------------
@given(st.floats(2, 300), st.floats(2, 300))
@settings(max_examples=100, deadline=None)
def test_cornernet_radius_equals_published_expression(h, w):
    assert gaussian_radius(h, w, 0.7, "cornernet") == pytest.approx(cornernet_radius_twin(h, w))


@given(st.floats(4, 300), st.floats(4, 300))
@settings(max_examples=200, deadline=None)
def test_exact_radius_keeps_iou_at_min_overlap(h, w):
    """Each of the three corner moves by the exact radius gives IoU >= 0.7, and one gives ~= 0.7."""
    r = float(gaussian_radius(h, w, 0.7, "exact"))
    box = (0.0, 0.0, w, h)
    moves = [
        (r, r, r, r),  # one corner in, one out (shift)
        (r, r, -r, -r),  # both in
        (-r, -r, r, r),  # both out
    ]
    ious = [box_iou(box, (box[0] + a, box[1] + b, box[2] + c, box[3] + d)) for a, b, c, d in moves]
    assert min(ious) >= 0.7 - 1e-6
    assert min(ious) == pytest.approx(0.7, abs=1e-4)


def test_radius_unknown_formula():
    with pytest.raises(ValueError, match="exact"):
        gaussian_radius(10, 10, 0.7, "bogus")


# ---- decode ops ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_peaks_equal_maxpool_definition(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 17, 23, generator=g)
    x[0, 1, 3:5, 4:6] = 3.0  # plateau: all tied cells are peaks, as max_pool2d == x says
    ref = F.max_pool2d(x, 3, 1, 1) == x
    ours = peak_scores(x) > float("-inf")
    assert torch.equal(ours, ref)


def test_topk_and_gather_roundtrip():
    b, c, h, w = 2, 3, 8, 10
    heat = torch.full((b, c, h, w), -10.0)
    heat[0, 2, 5, 7] = 4.0
    heat[0, 0, 1, 1] = 2.0
    heat[1, 1, 6, 0] = 3.0
    scores, classes, inds, ys, xs = topk_peaks(heat, 2)
    assert classes[0].tolist() == [2, 0]
    assert (ys[0].tolist(), xs[0].tolist()) == ([5.0, 1.0], [7.0, 1.0])
    assert scores[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())
    assert classes[1, 0] == 1 and ys[1, 0] == 6 and xs[1, 0] == 0
    feat = torch.arange(b * 2 * h * w, dtype=torch.float32).view(b, 2, h, w)
    got = gather_at(feat, inds)
    assert got.shape == (b, 2, 2)
    assert got[0, 0, 1] == feat[0, 1, 5, 7]
    back = scatter_at(got, inds, torch.ones(b, 2), (h, w))
    assert back[0, 1, 5, 7] == feat[0, 1, 5, 7] and back[0, 1, 0, 0] == 0
