"""pose2d targets: the vectorised builder against a per-person loop (the original's shape),
flip symmetry with the COCO joint swap, people without joints, crowd regions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.centers import center_targets
from centerpoint_suite.geometry import apply_affine, center_scale_affine, compose_affine
from centerpoint_suite.heatmap import gaussian_radius, integer_radius
from centerpoint_suite.tasks.pose2d import COCO_FLIP_PAIRS, Pose2D
from centerpoint_suite.tasks.pose2d.targets import build_pose_targets, flip_permutation
from centerpoint_suite.types import OutputGeometry, Sample
from tests.tasks.pose2d.samples import random_geometry, random_sample

J = 17


def gaussian_twin(heatmap: np.ndarray, c: int, x: int, y: int, r: int) -> None:
    """Plain numpy gaussian splat (max-merge), the definition the numba kernel implements."""
    _, h, w = heatmap.shape
    sigma = (2 * r + 1) / 6
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    g = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
    g[g < np.finfo(np.float64).eps] = 0
    y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
    patch = g[y0 - y + r : y1 - y + r, x0 - x + r : x1 - x + r]
    heatmap[c, y0:y1, x0:x1] = np.maximum(heatmap[c, y0:y1, x0:x1], patch)


def reference_targets(sample: Sample, geometry: OutputGeometry, max_objects: int) -> dict[str, np.ndarray]:
    """Per-person, per-joint loop as in the original's multi_pose sample builder."""
    ct = center_targets(sample, geometry, 1, max_objects)
    h, w = geometry.output_hw
    out = {
        "joint_offsets": np.zeros((max_objects, 2 * J), np.float32),
        "joint_offsets_mask": np.zeros((max_objects, 2 * J), np.uint8),
        "joint_heatmap": np.zeros((J, h, w), np.float32),
        "joint_indices": np.zeros(max_objects * J, np.int64),
        "joint_mask": np.zeros(max_objects * J, np.uint8),
        "joint_offset": np.zeros((max_objects * J, 2), np.float32),
    }
    for m, idx in enumerate(ct.kept):
        pts = sample.keypoints[idx].copy()
        if geometry.flipped:
            for a, b in COCO_FLIP_PAIRS:
                pts[[a, b]] = pts[[b, a]]
        bw, bh = ct.boxes[m, 2] - ct.boxes[m, 0], ct.boxes[m, 3] - ct.boxes[m, 1]
        r = max(0, int(gaussian_radius(math.ceil(bh), math.ceil(bw))))
        c = np.array([ct.targets["indices"][m] % w, ct.targets["indices"][m] // w], np.int32)
        for j in range(J):
            if pts[j, 2] <= 0:
                continue
            p = (geometry.trans_output.astype(np.float64) @ np.array([pts[j, 0], pts[j, 1], 1.0])).astype(np.float32)
            if not (0 <= p[0] < w and 0 <= p[1] < h):
                continue
            out["joint_offsets"][m, 2 * j : 2 * j + 2] = p - c
            out["joint_offsets_mask"][m, 2 * j : 2 * j + 2] = 1
            pi = p.astype(np.int32)
            out["joint_indices"][m * J + j] = pi[1] * w + pi[0]
            out["joint_mask"][m * J + j] = 1
            out["joint_offset"][m * J + j] = p - pi
            gaussian_twin(out["joint_heatmap"], j, int(pi[0]), int(pi[1]), r)
    return out


def joints_twin(sample: Sample, geometry: OutputGeometry, max_objects: int) -> dict[str, np.ndarray]:
    """The joint targets in vectorised numpy, the plain twin of the numba ``_joint_targets``."""
    ct = center_targets(sample, geometry, 1, max_objects)
    (out_h, out_w), M = geometry.output_hw, max_objects
    out = {
        "joint_offsets": np.zeros((M, J, 2), np.float32),
        "joint_offsets_mask": np.zeros((M, J, 2), np.uint8),
        "joint_heatmap": np.zeros((J, out_h, out_w), np.float32),
        "joint_indices": np.zeros((M, J), np.int64),
        "joint_mask": np.zeros((M, J), np.uint8),
        "joint_offset": np.zeros((M, J, 2), np.float32),
    }
    n = len(ct.kept)
    if n:
        kps = np.asarray(sample.keypoints, np.float32)[ct.kept]
        pts = apply_affine(geometry.trans_output, kps[..., :2].astype(np.float64)).astype(np.float32)
        vis = kps[..., 2] > 0
        if geometry.flipped:
            perm = flip_permutation(J, COCO_FLIP_PAIRS)
            pts, vis = pts[:, perm], vis[:, perm]
        inside = vis & (pts[..., 0] >= 0) & (pts[..., 0] < out_w) & (pts[..., 1] >= 0) & (pts[..., 1] < out_h)
        flat = ct.targets["indices"][:n]
        cell_ct = np.stack([flat % out_w, flat // out_w], 1)
        out["joint_offsets"][:n] = np.where(inside[..., None], pts - cell_ct[:, None, :].astype(np.float32), 0)
        out["joint_offsets_mask"][:n] = inside[..., None]
        pt_int = np.where(inside[..., None], pts, 0).astype(np.int32)
        out["joint_indices"][:n] = np.where(inside, pt_int[..., 1].astype(np.int64) * out_w + pt_int[..., 0], 0)
        out["joint_mask"][:n] = inside
        out["joint_offset"][:n] = np.where(inside[..., None], pts - pt_int, 0)
        wh = ct.boxes[:, 2:] - ct.boxes[:, :2]
        radii = integer_radius(np.ceil(wh[:, 1]), np.ceil(wh[:, 0]), 0.7, "cornernet")
        for person, joint in zip(*np.nonzero(inside)):
            x, y = pt_int[person, joint]
            gaussian_twin(out["joint_heatmap"], joint, int(x), int(y), int(radii[person]))
    out["joint_offsets"] = out["joint_offsets"].reshape(M, 2 * J)
    out["joint_offsets_mask"] = out["joint_offsets_mask"].reshape(M, 2 * J)
    out["joint_indices"] = out["joint_indices"].reshape(M * J)
    out["joint_mask"] = out["joint_mask"].reshape(M * J)
    out["joint_offset"] = out["joint_offset"].reshape(M * J, 2)
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 12), st.booleans())
def test_joint_kernel_equals_numpy_twin(seed: int, n: int, flip: bool) -> None:
    """Bit for bit (the heatmap within the splat twin's float rounding)."""
    rng = np.random.default_rng(seed)
    sample = random_sample(rng, n)
    geometry = random_geometry(rng, flip=flip)
    got = build_pose_targets(sample, geometry, J, 8, COCO_FLIP_PAIRS)
    for key, value in joints_twin(sample, geometry, 8).items():
        assert got[key].shape == value.shape and got[key].dtype == value.dtype, key
        if key == "joint_heatmap":
            np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-6)
            assert np.array_equal(got[key] > 0, value > 0)
        else:
            np.testing.assert_array_equal(got[key], value, err_msg=key)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 12), st.booleans())
def test_vectorised_targets_match_per_person_loop(seed: int, n: int, flip: bool) -> None:
    rng = np.random.default_rng(seed)
    sample = random_sample(rng, n)
    geometry = random_geometry(rng, flip=flip)
    got = build_pose_targets(sample, geometry, J, 8, COCO_FLIP_PAIRS)
    want = reference_targets(sample, geometry, 8)
    for key, value in want.items():
        assert got[key].shape == value.shape and got[key].dtype == value.dtype, key
        np.testing.assert_allclose(got[key], value, atol=1e-5, err_msg=key)


def mirrored(sample: Sample) -> Sample:
    """The sample of the mirrored image: x -> W - 1 - x, joints relabelled left <-> right."""
    w = sample.hw[1]
    boxes = sample.boxes.copy()
    boxes[:, [0, 2]] = w - 1 - sample.boxes[:, [2, 0]]
    kps = sample.keypoints.copy()
    kps[..., 0] = w - 1 - kps[..., 0]
    kps = kps[:, flip_permutation(J, COCO_FLIP_PAIRS)]
    return Sample(sample.image[:, ::-1].copy(), 1, boxes, sample.classes, sample.ignore, keypoints=kps)


@pytest.mark.parametrize("seed", range(6))
def test_flip_symmetry(seed: int) -> None:
    """Targets of a sample warped with the mirroring affine (flipped=True) equal the targets
    of the mirrored image with its labels swapped, warped without mirror."""
    rng = np.random.default_rng(seed)
    sample = random_sample(rng, 6)
    plain = random_geometry(rng)
    mirror = np.array([[-1.0, 0.0, sample.hw[1] - 1.0], [0.0, 1.0, 0.0]])
    flipped = OutputGeometry(
        compose_affine(plain.trans_output.astype(np.float64), mirror).astype(np.float32), plain.output_hw, True
    )
    a = build_pose_targets(sample, flipped, J, 8, COCO_FLIP_PAIRS)
    b = build_pose_targets(mirrored(sample), plain, J, 8, COCO_FLIP_PAIRS)
    assert a["joint_mask"].sum() > 5
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-4, err_msg=key)


def test_flip_swaps_left_and_right_joint_channels() -> None:
    """One labelled left wrist: unflipped it is in channel 9, flipped in channel 10."""
    kps = np.zeros((1, J, 3), np.float32)
    kps[0, 9] = (30, 40, 2)
    sample = Sample(np.zeros((64, 64, 3), np.uint8), 1, np.array([[10, 10, 50, 60]], np.float32),
                    np.zeros(1, np.int64), np.zeros(1, bool), keypoints=kps)  # fmt: skip
    geom = OutputGeometry((center_scale_affine((32, 32), 64, (16, 16)) / 1).astype(np.float32), (16, 16))
    flip = OutputGeometry(center_scale_affine((32, 32), 64, (16, 16), flip_width=64).astype(np.float32), (16, 16), True)
    t0 = build_pose_targets(sample, geom, J, 4, COCO_FLIP_PAIRS)
    t1 = build_pose_targets(sample, flip, J, 4, COCO_FLIP_PAIRS)
    assert t0["joint_heatmap"][9].max() == 1 and t0["joint_heatmap"][10].max() == 0
    assert t1["joint_heatmap"][10].max() == 1 and t1["joint_heatmap"][9].max() == 0
    assert t0["joint_mask"][9] == 1 and t1["joint_mask"][10] == 1


def test_person_without_joints_keeps_centre_and_crowd_is_ignored() -> None:
    kps = np.zeros((3, J, 3), np.float32)
    kps[1, :5] = (20, 20, 2)
    boxes = np.array([[4, 4, 28, 60], [10, 10, 40, 40], [40, 0, 63, 63]], np.float32)
    sample = Sample(np.zeros((64, 64, 3), np.uint8), 1, boxes, np.zeros(3, np.int64),
                    np.array([False, False, True]), keypoints=kps)  # fmt: skip
    geom = OutputGeometry(center_scale_affine((32, 32), 64, (16, 16)).astype(np.float32), (16, 16))
    t = build_pose_targets(sample, geom, J, 4, COCO_FLIP_PAIRS)
    assert t["mask"].tolist() == [1, 1, 0, 0]  # both people placed, the crowd box not
    assert (t["heatmap"] == 1).sum() == 2
    assert t["joint_offsets_mask"][0].sum() == 0 and t["joint_mask"][:J].sum() == 0
    assert t["joint_mask"][J : 2 * J].sum() == 5
    assert t["heatmap_ignore"][0, :, 10:].any() and not t["heatmap_ignore"][0, :, :9].any()
    assert (t["joint_heatmap"] == 1).sum() == 5


def test_task_heads_and_switch() -> None:
    assert Pose2D().heads() == {
        "heatmap": 1, "size": 2, "offset": 2, "joint_offsets": 34, "joint_heatmap": 17, "joint_offset": 2,
    }  # fmt: skip
    assert Pose2D(per_joint_offsets=True).heads()["joint_offset"] == 34
    assert Pose2D().flip_pairs() == COCO_FLIP_PAIRS
    assert Pose2D(num_joints=5).flip_pairs() is None
    perm = flip_permutation(J, COCO_FLIP_PAIRS)
    assert (perm[perm] == np.arange(J)).all() and perm[0] == 0 and perm[1] == 2
