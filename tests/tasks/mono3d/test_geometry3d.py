"""mono3d geometry: alpha / rotation_y / unprojection identities (property tests), box corners,
the two-bin rotation code and the depth encoding."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.tasks.mono3d.decode import alpha_from_bins
from centerpoint_suite.tasks.mono3d.geometry3d import (
    alpha_from_location,
    alpha_to_rotation_y,
    box3d_center,
    box3d_corners,
    project,
    project_boxes,
    rotation_y_to_alpha,
    unproject,
    wrap_angle,
)
from centerpoint_suite.tasks.mono3d.loss import decode_depth, encode_depth
from centerpoint_suite.tasks.mono3d.targets import rotation_bins

angles = st.floats(-math.pi, math.pi - 1e-9, allow_nan=False)


def _calib(fx: float, fy: float, cx: float, cy: float, t: tuple[float, float, float]) -> np.ndarray:
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    return np.concatenate([k, np.asarray(t, float)[:, None]], axis=1)


calibs = st.builds(
    _calib,
    st.floats(300, 1500),
    st.floats(300, 1500),
    st.floats(200, 1000),
    st.floats(100, 400),
    st.tuples(st.floats(-400, 400), st.floats(-3, 3), st.floats(-0.01, 0.01)),
)


def _angle_close(a, b, tol=1e-9):
    return abs(wrap_angle(np.asarray(a) - np.asarray(b))) < tol


@settings(max_examples=200, deadline=None)
@given(angles, st.floats(-500, 2000), calibs)
def test_alpha_rotation_y_round_trip(alpha, u, calib):
    ry = alpha_to_rotation_y(alpha, u, calib)
    assert -math.pi <= ry < math.pi
    assert _angle_close(rotation_y_to_alpha(ry, u, calib), alpha)


@settings(max_examples=200, deadline=None)
@given(angles, st.floats(-30, 30), st.floats(-3, 3), st.floats(1, 90), calibs)
def test_pixel_ray_matches_location_ray_for_a_centred_camera(ry, x, y, z, calib):
    """With no 4th column (camera at the origin), atan2(u - cx, fx) is exactly atan2(x, z)."""
    calib = calib.copy()
    calib[:, 3] = 0
    calib[0, 1] = 0
    (u, _), _ = project(np.array([x, y, z]), calib)
    assert _angle_close(rotation_y_to_alpha(ry, u, calib), alpha_from_location(ry, np.array([x, y, z])), 1e-7)


@settings(max_examples=200, deadline=None)
@given(st.floats(-40, 40), st.floats(-5, 5), st.floats(0.5, 120), calibs)
def test_unproject_inverts_project(x, y, z, calib):
    point = np.array([x, y, z])
    uv, w = project(point, calib)
    assert w > 0
    np.testing.assert_allclose(unproject(uv, z, calib), point, rtol=1e-9, atol=1e-7)


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1242), st.floats(0, 375), st.floats(0.5, 120), calibs)
def test_project_inverts_unproject(u, v, z, calib):
    point = unproject(np.array([u, v]), z, calib)
    assert abs(point[2] - z) < 1e-9
    np.testing.assert_allclose(project(point, calib)[0], [u, v], atol=1e-6)


def test_unproject_broadcasts_one_calibration_per_image():
    p1 = _calib(721.5, 721.5, 609.6, 172.9, (44.9, 0.2, 0.003))
    p2 = _calib(707.0, 707.0, 604.1, 180.5, (45.8, -0.3, 0.005))
    calib = np.stack([p1, p2])  # (B, 3, 4)
    uv = np.array([[[600.0, 200.0], [100.0, 150.0]], [[600.0, 200.0], [900.0, 300.0]]])  # (B, K, 2)
    z = np.array([[10.0, 20.0], [10.0, 30.0]])
    pts = unproject(uv, z, calib[:, None])
    for b, p in enumerate((p1, p2)):
        for k in range(2):
            np.testing.assert_allclose(pts[b, k], unproject(uv[b, k], z[b, k], p))
            np.testing.assert_allclose(project(pts[b, k], p)[0], uv[b, k], atol=1e-9)
    assert not np.allclose(pts[0, 0], pts[1, 0])  # same pixel, different camera


@settings(max_examples=100, deadline=None)
@given(st.floats(0.5, 3), st.floats(0.3, 3), st.floats(0.5, 6), angles, st.floats(-20, 20), st.floats(2, 60))
def test_box_corners_geometry(h, w, l, ry, x, z):
    dims = np.array([[h, w, l]])
    loc = np.array([[x, 1.65, z]])
    c = box3d_corners(dims, loc, np.array([ry]))[0]
    np.testing.assert_allclose(c[:4].mean(0), loc[0], atol=1e-9)  # bottom face centre = location
    np.testing.assert_allclose(c[4:, 1], 1.65 - h)  # top face h above (y down)
    np.testing.assert_allclose(box3d_center(dims, loc)[0], c.mean(0), atol=1e-9)
    front = c[[0, 1, 4, 5]].mean(0) - c.mean(0)  # front face centre along the heading
    np.testing.assert_allclose(front, [l / 2 * math.cos(ry), 0, -l / 2 * math.sin(ry)], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(c[0] - c[3]), l, rtol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(c[0] - c[1]), w, rtol=1e-9)


def test_project_boxes_clips_to_the_image():
    p = _calib(721.5, 721.5, 609.6, 172.9, (0, 0, 0))
    corners = box3d_corners(np.array([[1.5, 1.6, 3.9]]), np.array([[-4.0, 1.65, 6.0]]), np.array([0.0]))
    full = project_boxes(corners, p)[0]
    clipped = project_boxes(corners, p, (375, 1242))[0]
    assert full[0] < 0 and clipped[0] == 0 and clipped[2] == full[2]


@settings(max_examples=300, deadline=None)
@given(angles)
def test_rotation_bins_encode_and_decode(alpha):
    bins, res = rotation_bins(np.array([alpha]))
    assert bins[0].sum() >= 1  # every angle is in at least one bin
    # the channels a perfect network outputs: (out, in, sin, cos) per bin
    b = bins[0] * 2.0 - 1.0
    rot = np.array([-b[0], b[0], math.sin(res[0, 0]), math.cos(res[0, 0]),
                    -b[1], b[1], math.sin(res[0, 1]), math.cos(res[0, 1])])  # fmt: skip
    assert _angle_close(alpha_from_bins(rot[None])[0], alpha, 1e-6)


def test_rotation_bin_convention_of_the_original():
    """Bin 1 centred at -pi/2 holds alpha < pi/6 or > 5pi/6; bin 2 centred at +pi/2 holds
    alpha > -pi/6 or < -5pi/6."""
    alpha = np.array([-math.pi / 2, math.pi / 2, 0.0, math.pi - 0.01, -math.pi + 0.01, 0.8, -0.8, 2.0, -2.0])
    bins, res = rotation_bins(alpha)
    expected = [[1, 0], [0, 1], [1, 1], [1, 1], [1, 1], [0, 1], [1, 0], [0, 1], [1, 0]]
    assert bins.tolist() == expected
    np.testing.assert_allclose(res[:, 0], alpha + math.pi / 2, atol=1e-6)
    np.testing.assert_allclose(res[:, 1], alpha - math.pi / 2, atol=1e-6)


def test_alpha_from_bins_picks_the_bin_with_the_larger_in_logit():
    rot = np.zeros((2, 8))
    rot[:, 3] = rot[:, 7] = 1.0  # residual 0 in both bins -> alpha = bin centre
    rot[0, 1], rot[0, 5] = 2.0, 1.0
    rot[1, 1], rot[1, 5] = 1.0, 2.0
    np.testing.assert_allclose(alpha_from_bins(rot), [-math.pi / 2, math.pi / 2])


def test_depth_encoding_round_trip():
    depth = torch.tensor([0.5, 1.0, 5.0, 20.0, 60.0, 150.0])
    np.testing.assert_allclose(decode_depth(encode_depth(depth)).numpy(), depth.numpy(), rtol=1e-4)
    assert abs(float(decode_depth(torch.zeros(1))) - (1 / (0.5 + 1e-6) - 1)) < 1e-6
