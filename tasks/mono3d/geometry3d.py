"""Camera geometry of monocular 3D boxes (KITTI conventions), vectorised numpy.

Frames and units:

- *camera*: the rectified camera frame of KITTI, x right, y down, z forward, metres.
- *pixels*: original image pixels, x right, y down.
- ``P``: (3, 4) projection matrix of a rectified camera (KITTI P2): ``K [I | t]`` with ``K``
  upper triangular, so ``P[1, 0] = P[2, 0] = P[2, 1] = 0``. A point X projects to
  ``(u w, v w, w) = P [X; 1]`` with ``w = z + P[2, 3]``.
- A 3D box is ``dimensions`` (h, w, l) metres, ``location`` (x, y, z) = the centre of its
  *bottom* face, and ``rotation_y`` ry (yaw about the camera y axis, radians). Its length runs
  along the heading ``(cos ry, 0, -sin ry)`` (the *front* face is at +l/2 along it), its width
  along ``(sin ry, 0, cos ry)``, its height from ``y - h`` (top) to ``y`` (bottom).
- ``alpha``: the observation angle, ``rotation_y`` minus the azimuth of the ray to the
  object: ``alpha = ry - atan2(x, z)``. From pixels (the original CenterNet and every
  monocular method after it): ``ry = alpha + atan2(u - cx, fx)``. All angles are wrapped
  to [-pi, pi).
"""

from __future__ import annotations

import numpy as np

# corner order: bottom face 0..3 then top face 4..7 (same order), local (along l, along w)
# 0: front-left(+l,+w) 1: front-right(+l,-w) 2: back-right(-l,-w) 3: back-left(-l,+w)
_CORNER_L = np.array([0.5, 0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5])
_CORNER_W = np.array([0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.5])
_CORNER_H = np.array([0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0])

#: the 6 faces of a box as corner indices (a closed quad each):
#: front (+l), back (-l), left (+w), right (-w), bottom, top.
BOX_FACES = np.array(
    [[0, 1, 5, 4], [2, 3, 7, 6], [3, 0, 4, 7], [1, 2, 6, 5], [0, 3, 2, 1], [4, 5, 6, 7]],
    dtype=np.int64,
)
#: the 12 edges of a box as corner index pairs.
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]],
    dtype=np.int64,
)


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Angles (any shape, radians) wrapped to [-pi, pi)."""
    a = np.asarray(angle, dtype=np.float64)
    return (a + np.pi) % (2 * np.pi) - np.pi


def ray_angle(u: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """Azimuth of the camera ray through pixel column u: ``atan2(u - cx, fx)``.

    u: (...) pixels; calib: (3, 4) or (..., 3, 4) broadcasting with u. Radians.
    """
    p = np.asarray(calib, dtype=np.float64)
    return np.arctan2(np.asarray(u, dtype=np.float64) - p[..., 0, 2], p[..., 0, 0])


def alpha_to_rotation_y(alpha: np.ndarray, u: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """rotation_y = alpha + atan2(u - cx, fx), wrapped. u: pixel column of the object centre."""
    return wrap_angle(np.asarray(alpha, dtype=np.float64) + ray_angle(u, calib))


def rotation_y_to_alpha(rotation_y: np.ndarray, u: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """alpha = rotation_y - atan2(u - cx, fx), wrapped (inverse of :func:`alpha_to_rotation_y`)."""
    return wrap_angle(np.asarray(rotation_y, dtype=np.float64) - ray_angle(u, calib))


def alpha_from_location(rotation_y: np.ndarray, location: np.ndarray) -> np.ndarray:
    """KITTI's definition: alpha = ry - atan2(x, z) for locations (..., 3), wrapped."""
    loc = np.asarray(location, dtype=np.float64)
    return wrap_angle(np.asarray(rotation_y, dtype=np.float64) - np.arctan2(loc[..., 0], loc[..., 2]))


def project(points: np.ndarray, calib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera points (..., 3) metres -> (pixels (..., 2), w (...)) with ``w = z + P[2, 3]``.

    calib: (3, 4), or (B, 3, 4) with points (B, ..., 3) (one matrix per leading index).
    Points with w <= 0 (behind the camera) give meaningless pixels; check w.
    """
    x = np.asarray(points, dtype=np.float64)
    p = np.asarray(calib, dtype=np.float64)
    if p.ndim == 2:
        h = x @ p[:, :3].T + p[:, 3]
    else:
        b = p.shape[0]
        flat = x.reshape(b, -1, 3)
        h = (np.einsum("bij,bkj->bki", p[:, :, :3], flat) + p[:, None, :, 3]).reshape(*x.shape[:-1], 3)
    w = h[..., 2]
    return h[..., :2] / w[..., None], w


def unproject(uv: np.ndarray, depth: np.ndarray, calib: np.ndarray) -> np.ndarray:
    """The camera point at camera depth z = ``depth`` that projects to pixel ``uv``.

    uv: (..., 2) pixels; depth: (...) metres (camera z, not the homogeneous w); calib: (3, 4)
    or (..., 3, 4) broadcasting. Returns (..., 3) metres. Exact inverse of :func:`project`,
    including P's 4th column (the offset of camera 2 from the reference camera). The original
    CenterNet took its regressed depth as w (z = depth - P[2, 3], 3 mm on KITTI).
    """
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    p = np.asarray(calib, dtype=np.float64)
    w = p[..., 2, 2] * z + p[..., 2, 3]
    y = (uv[..., 1] * w - p[..., 1, 2] * z - p[..., 1, 3]) / p[..., 1, 1]
    x = (uv[..., 0] * w - p[..., 0, 1] * y - p[..., 0, 2] * z - p[..., 0, 3]) / p[..., 0, 0]
    return np.stack([x, y, z], axis=-1)


def box3d_corners(dimensions: np.ndarray, location: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """Corners of 3D boxes: (N, 3) h w l, (N, 3) bottom centres, (N,) yaw -> (N, 8, 3) metres.

    Corner order: bottom face 0..3 (front-left, front-right, back-right, back-left), then the
    top face 4..7 above them; see ``BOX_FACES`` / ``BOX_EDGES``.
    """
    dims = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    loc = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    a = dims[:, 2:3] * _CORNER_L  # along the heading (N, 8)
    b = dims[:, 1:2] * _CORNER_W  # along the width
    c, s = np.cos(ry)[:, None], np.sin(ry)[:, None]
    x = a * c + b * s
    z = -a * s + b * c
    y = dims[:, 0:1] * _CORNER_H
    return np.stack([x, y, z], axis=-1) + loc[:, None, :]


def box3d_center(dimensions: np.ndarray, location: np.ndarray) -> np.ndarray:
    """Geometric centres (N, 3) of boxes given by bottom-centre locations: y - h / 2."""
    centre = np.asarray(location, dtype=np.float64).reshape(-1, 3).copy()
    centre[:, 1] -= np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)[:, 0] / 2
    return centre


def projected_centers(dimensions: np.ndarray, location: np.ndarray, calib: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) of the projected 3D box centres and their w (N,) (> 0: in front)."""
    return project(box3d_center(dimensions, location), calib)


def project_boxes(corners: np.ndarray, calib: np.ndarray, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """2D boxes (N, 4) x1 y1 x2 y2 enclosing projected corners (N, 8, 3); clipped to
    [0, W - 1] x [0, H - 1] when ``image_hw`` is given. Corners must lie in front of the camera."""
    uv, _ = project(corners, calib)
    box = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    if image_hw is not None:
        h, w = image_hw
        box[:, [0, 2]] = box[:, [0, 2]].clip(0, w - 1)
        box[:, [1, 3]] = box[:, [1, 3]].clip(0, h - 1)
    return box


def focal_in_cells(calib: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Focal length fx of the camera expressed in cells of an affine-warped map.

    calib (..., 3, 4); affine (..., 2, 3) original pixels -> cells (uniform zoom, possibly
    mirrored). Returns fx * zoom, (...).
    """
    a = np.asarray(affine, dtype=np.float64)
    zoom = np.sqrt(np.abs(a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]))
    return np.asarray(calib, dtype=np.float64)[..., 0, 0] * zoom
