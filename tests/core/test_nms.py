"""Soft-NMS / NMS: the numba kernel against a plain numpy twin, hand-checked cases, torchvision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.errors import UserError
from centerpoint_suite.nms import MERGE_METHODS, MergeSettings, soft_nms


# ---- numpy twin (tests only): one class at a time, vectorised decay -------------------------
def soft_nms_twin(boxes, scores, classes, method, nt, sigma, thr, plus_one):
    off = 1.0 if plus_one else 0.0
    boxes = boxes.astype(np.float64)
    taken_idx, taken_sc = [], []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        s = scores[idx].astype(np.float64)
        keep = s >= thr
        idx, s = idx[keep], s[keep]
        while len(idx):
            t = int(np.argmax(s))  # first maximum = lowest index (idx is increasing)
            taken_idx.append(idx[t])
            taken_sc.append(s[t])
            b = boxes[idx[t]]
            idx, s = np.delete(idx, t), np.delete(s, t)
            o = boxes[idx]
            iw = np.minimum(b[2], o[:, 2]) - np.maximum(b[0], o[:, 0]) + off
            ih = np.minimum(b[3], o[:, 3]) - np.maximum(b[1], o[:, 1]) + off
            inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
            area_b = (b[2] - b[0] + off) * (b[3] - b[1] + off)
            area_o = (o[:, 2] - o[:, 0] + off) * (o[:, 3] - o[:, 1] + off)
            iou = np.where(inter > 0, inter / np.where(inter > 0, area_b + area_o - inter, 1.0), 0.0)
            if method == "soft_nms_gaussian":
                w = np.exp(-(iou**2) / sigma)
            elif method == "soft_nms_linear":
                w = np.where(iou > nt, 1 - iou, 1.0)
            else:
                w = np.where(iou > nt, 0.0, 1.0)
            s = s * w
            alive = s >= thr
            idx, s = idx[alive], s[alive]
    taken_idx, taken_sc = np.array(taken_idx, np.int64), np.array(taken_sc)
    # classes never interact: the joint order is by score, ties to the lower index
    order = np.lexsort((taken_idx, -taken_sc))
    return taken_idx[order], taken_sc[order]


def random_boxes(rng, n, extent=120.0):
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(0, 60, (n, 2))  # includes near-empty boxes
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 80),
    st.sampled_from(sorted(MERGE_METHODS)),
    st.booleans(),
    st.sampled_from([0.3, 0.5, 0.7]),
)
@settings(max_examples=120, deadline=None)
def test_soft_nms_matches_numpy_twin(seed, n, method, plus_one, nt):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    classes = rng.integers(0, 3, n)
    cfg = MergeSettings(method, nt, 0.5, 0.001, plus_one)
    keep, kept = soft_nms(boxes, scores, classes, cfg)
    t_keep, t_kept = soft_nms_twin(boxes, scores, classes, method, nt, 0.5, 0.001, plus_one)
    np.testing.assert_array_equal(keep, t_keep)
    np.testing.assert_allclose(kept, t_kept, rtol=1e-6, atol=1e-7)
    assert np.all(np.diff(kept) <= 0) and np.all(kept >= 0.001)
    assert kept.dtype == np.float32 and keep.dtype == np.int64


def test_gaussian_by_hand():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.1], np.float32)
    keep, kept = soft_nms(boxes, scores)
    # 1 is taken: 0 (IoU 1) -> 0.8 e^-2, 2 (IoU 0.5) -> 0.7 e^-0.5; then 2 decays 0 (IoU 0.5) again
    assert keep.tolist() == [1, 2, 3, 0]
    e = math.exp
    np.testing.assert_allclose(kept, [0.9, 0.7 * e(-0.5), 0.1, 0.8 * e(-2.5)], rtol=1e-6)


def test_linear_and_threshold_by_hand():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 6], [0, 0, 10, 4]], np.float32)  # IoU with 0: 0.6, 0.4
    scores = np.array([0.9, 0.5, 0.0015], np.float32)
    keep, kept = soft_nms(boxes, scores, None, MergeSettings("soft_nms_linear", 0.5))
    # 1 decays to 0.5 * 0.4 = 0.2; 2 (IoU 0.4 <= Nt) stays, then 1 takes it (IoU 4/6 > Nt): 0.0015/3 < 0.001
    assert keep.tolist() == [0, 1]
    np.testing.assert_allclose(kept, [0.9, 0.2], rtol=1e-6)


def test_plus_one_areas():
    # two 1-pixel-apart unit boxes: no overlap in COCO areas, IoU 1/3 with pixel-inclusive ones
    boxes = np.array([[0, 0, 1, 1], [1, 0, 2, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    _, plain = soft_nms(boxes, scores)
    _, plus = soft_nms(boxes, scores, settings=MergeSettings(plus_one=True))
    np.testing.assert_allclose(plain, [0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(plus, [0.9, 0.8 * math.exp(-((1 / 3) ** 2) / 0.5)], rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_hard_nms_equals_torchvision_batched_nms(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 200)
    scores = rng.uniform(0.01, 1, 200).astype(np.float32)
    classes = rng.integers(0, 4, 200)
    keep, kept = soft_nms(boxes, scores, classes, MergeSettings("nms", 0.5))
    ref = torchvision.ops.batched_nms(
        torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), 0.5
    ).numpy()
    np.testing.assert_array_equal(keep, ref)
    np.testing.assert_array_equal(kept, scores[ref])


def test_empty_and_bad_settings():
    keep, kept = soft_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    assert keep.shape == (0,) and kept.shape == (0,)
    with pytest.raises(UserError, match="test.merge"):
        MergeSettings("soft")
    with pytest.raises(UserError, match="sigma"):
        MergeSettings(sigma=0.0)
    with pytest.raises(ValueError, match="2 boxes"):
        soft_nms(np.zeros((2, 4)), np.zeros(3))
