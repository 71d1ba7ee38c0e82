"""Overlap of KITTI boxes: axis-aligned 2D boxes, rotated bird's-eye-view rectangles and 3D boxes.

Frames and parameters (KITTI camera frame: x right, y down, z forward; metres, radians):

- 2D boxes ``(N, 4)``: ``x1, y1, x2, y2`` image pixels; area ``(x2 - x1) * (y2 - y1)`` (no +1).
- BEV boxes ``(N, 5)``: ``x, z, w, l, ry`` -- a rectangle in the x-z ground plane centred at
  ``(x, z)``; its length ``l`` runs along the heading ``(cos ry, -sin ry)`` and its width ``w``
  along ``(sin ry, cos ry)``.  This is the devkit's convention (a rotation by ``ry`` about the
  camera y axis), so a corner at local ``(a, b)`` (``a`` along l, ``b`` along w) sits at
  ``x + a cos ry + b sin ry, z - a sin ry + b cos ry``.
- 3D boxes ``(N, 7)``: ``x, y, z, h, w, l, ry`` -- KITTI ``location`` then ``dimensions``
  (h, w, l) then ``rotation_y``.  ``(x, y, z)`` is the centre of the *bottom* face; since y
  points down the box spans ``y - h .. y`` vertically.

``criterion`` follows the devkit: ``-1`` intersection over union, ``0`` intersection over the
area/volume of the first box, ``1`` over the second.  Degenerate boxes (zero area or volume)
overlap nothing.  Negative sizes are taken by absolute value.

All kernels are numba ``njit``; the rotated intersection is a Sutherland-Hodgman clip of one
rectangle by the other (both convex, counter-clockwise in the (x, z) plane).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = [
    "bev_corners",
    "box2d_overlap",
    "bev_overlap",
    "box3d_overlap",
    "bev_intersection",
    "boxes3d_to_bev",
]

_MAX_POLY = 32  # clip buffer; a rectangle clipped by a rectangle has at most 8 vertices


@numba.njit(cache=True, inline="always")
def _corners(x: float, z: float, w: float, l: float, ry: float, out: np.ndarray) -> None:
    """Write the 4 corners of a BEV rectangle to ``out`` (4, 2), counter-clockwise in (x, z)."""
    c = math.cos(ry)
    s = math.sin(ry)
    hl = 0.5 * abs(l)
    hw = 0.5 * abs(w)
    # local (a along l, b along w): (+,+), (-,+), (-,-), (+,-) is counter-clockwise, and the
    # map (a, b) -> (x, z) has determinant cos^2 + sin^2 = 1, so the order is kept.
    for k in range(4):
        a = hl if (k == 0 or k == 3) else -hl
        b = hw if k < 2 else -hw
        out[k, 0] = x + c * a + s * b
        out[k, 1] = z - s * a + c * b


@numba.njit(cache=True)
def _clip_area(pa: np.ndarray, pb: np.ndarray, buf1: np.ndarray, buf2: np.ndarray) -> float:
    """Area of the intersection of two counter-clockwise convex quadrilaterals (4, 2)."""
    n = 4
    for k in range(4):
        buf1[k, 0] = pa[k, 0]
        buf1[k, 1] = pa[k, 1]
    src = buf1
    dst = buf2
    for e in range(4):
        e0x = pb[e, 0]
        e0y = pb[e, 1]
        ex = pb[(e + 1) % 4, 0] - e0x
        ey = pb[(e + 1) % 4, 1] - e0y
        m = 0
        for k in range(n):
            px = src[k, 0]
            py = src[k, 1]
            qx = src[(k + 1) % n, 0]
            qy = src[(k + 1) % n, 1]
            dp = ex * (py - e0y) - ey * (px - e0x)  # > 0: left of the edge, inside
            dq = ex * (qy - e0y) - ey * (qx - e0x)
            if dp >= 0.0:
                if m < _MAX_POLY:
                    dst[m, 0] = px
                    dst[m, 1] = py
                    m += 1
                if dq < 0.0 and m < _MAX_POLY:
                    t = dp / (dp - dq)
                    dst[m, 0] = px + t * (qx - px)
                    dst[m, 1] = py + t * (qy - py)
                    m += 1
            elif dq >= 0.0 and m < _MAX_POLY:
                t = dp / (dp - dq)
                dst[m, 0] = px + t * (qx - px)
                dst[m, 1] = py + t * (qy - py)
                m += 1
        n = m
        if n < 3:
            return 0.0
        src, dst = dst, src
    area = 0.0
    for k in range(n):
        k1 = (k + 1) % n
        area += src[k, 0] * src[k1, 1] - src[k1, 0] * src[k, 1]
    return max(0.5 * area, 0.0)


@numba.njit(cache=True)
def _bev_inter(
    a: np.ndarray, ia: int, b: np.ndarray, ib: int, xa: int, za: int, wa: int, la: int, ra: int, work: np.ndarray
) -> float:
    """Intersection area of BEV rectangle row ``ia`` of ``a`` and row ``ib`` of ``b``.

    ``xa, za, wa, la, ra`` are the column indices of x, z, w, l, ry (shared by a and b);
    ``work`` is a (4 + 4 + 2 * _MAX_POLY, 2) scratch buffer.
    """
    dx = a[ia, xa] - b[ib, xa]
    dz = a[ia, za] - b[ib, za]
    rad_a = 0.5 * math.hypot(a[ia, wa], a[ia, la])
    rad_b = 0.5 * math.hypot(b[ib, wa], b[ib, la])
    if dx * dx + dz * dz >= (rad_a + rad_b) * (rad_a + rad_b):
        return 0.0  # circumscribed circles apart
    pa = work[0:4]
    pb = work[4:8]
    _corners(a[ia, xa], a[ia, za], a[ia, wa], a[ia, la], a[ia, ra], pa)
    _corners(b[ib, xa], b[ib, za], b[ib, wa], b[ib, la], b[ib, ra], pb)
    return _clip_area(pa, pb, work[8 : 8 + _MAX_POLY], work[8 + _MAX_POLY : 8 + 2 * _MAX_POLY])


@numba.njit(cache=True, inline="always")
def _ratio(inter: float, area_a: float, area_b: float, criterion: int) -> float:
    if criterion == -1:
        den = area_a + area_b - inter
    elif criterion == 0:
        den = area_a
    else:
        den = area_b
    if den <= 0.0 or inter <= 0.0:
        return 0.0
    return inter / den


@numba.njit(cache=True)
def box2d_pair(a: np.ndarray, ia: int, b: np.ndarray, ib: int, criterion: int) -> float:
    """Overlap of 2D box row ``ia`` of ``a`` (., 4) with row ``ib`` of ``b`` (., 4)."""
    w = min(a[ia, 2], b[ib, 2]) - max(a[ia, 0], b[ib, 0])
    h = min(a[ia, 3], b[ib, 3]) - max(a[ia, 1], b[ib, 1])
    if w <= 0.0 or h <= 0.0:
        return 0.0
    area_a = (a[ia, 2] - a[ia, 0]) * (a[ia, 3] - a[ia, 1])
    area_b = (b[ib, 2] - b[ib, 0]) * (b[ib, 3] - b[ib, 1])
    return _ratio(w * h, area_a, area_b, criterion)


@numba.njit(cache=True)
def bev_pair(a: np.ndarray, ia: int, b: np.ndarray, ib: int, criterion: int, work: np.ndarray) -> float:
    """BEV overlap of 3D box row ``ia`` of ``a`` (., 7) with row ``ib`` of ``b`` (., 7)."""
    inter = _bev_inter(a, ia, b, ib, 0, 2, 4, 5, 6, work)
    area_a = abs(a[ia, 4] * a[ia, 5])
    area_b = abs(b[ib, 4] * b[ib, 5])
    return _ratio(inter, area_a, area_b, criterion)


@numba.njit(cache=True)
def box3d_pair(a: np.ndarray, ia: int, b: np.ndarray, ib: int, criterion: int, work: np.ndarray) -> float:
    """3D overlap of box row ``ia`` of ``a`` (., 7) with row ``ib`` of ``b`` (., 7)."""
    ha = abs(a[ia, 3])
    hb = abs(b[ib, 3])
    dy = min(a[ia, 1], b[ib, 1]) - max(a[ia, 1] - ha, b[ib, 1] - hb)
    if dy <= 0.0:
        return 0.0
    inter = _bev_inter(a, ia, b, ib, 0, 2, 4, 5, 6, work) * dy
    vol_a = abs(a[ia, 3] * a[ia, 4] * a[ia, 5])
    vol_b = abs(b[ib, 3] * b[ib, 4] * b[ib, 5])
    return _ratio(inter, vol_a, vol_b, criterion)


@numba.njit(cache=True)
def _work() -> np.ndarray:
    return np.empty((8 + 2 * _MAX_POLY, 2), np.float64)


@numba.njit(cache=True)
def _box2d_matrix(a: np.ndarray, b: np.ndarray, criterion: int) -> np.ndarray:
    out = np.zeros((a.shape[0], b.shape[0]), np.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = box2d_pair(a, i, b, j, criterion)
    return out


@numba.njit(cache=True)
def _bev_inter_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    work = _work()
    out = np.zeros((a.shape[0], b.shape[0]), np.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = _bev_inter(a, i, b, j, 0, 1, 2, 3, 4, work)
    return out


@numba.njit(cache=True)
def _bev_matrix(a: np.ndarray, b: np.ndarray, criterion: int) -> np.ndarray:
    work = _work()
    out = np.zeros((a.shape[0], b.shape[0]), np.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            inter = _bev_inter(a, i, b, j, 0, 1, 2, 3, 4, work)
            out[i, j] = _ratio(inter, abs(a[i, 2] * a[i, 3]), abs(b[j, 2] * b[j, 3]), criterion)
    return out


@numba.njit(cache=True)
def _box3d_matrix(a: np.ndarray, b: np.ndarray, criterion: int) -> np.ndarray:
    work = _work()
    out = np.zeros((a.shape[0], b.shape[0]), np.float64)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = box3d_pair(a, i, b, j, criterion, work)
    return out


def _as2d(x: np.ndarray, cols: int, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == cols:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != cols:
        raise ValueError(f"{name} must have shape (N, {cols}), got {np.shape(x)}")
    return arr


def box2d_overlap(a: np.ndarray, b: np.ndarray, criterion: int = -1) -> np.ndarray:
    """(N, K) overlap of 2D boxes ``a`` (N, 4) and ``b`` (K, 4), ``x1, y1, x2, y2`` pixels."""
    return _box2d_matrix(_as2d(a, 4, "a"), _as2d(b, 4, "b"), int(criterion))


def bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, K) intersection area (m^2) of BEV rectangles ``a`` (N, 5) and ``b`` (K, 5), ``x, z, w, l, ry``."""
    return _bev_inter_matrix(_as2d(a, 5, "a"), _as2d(b, 5, "b"))


def bev_overlap(a: np.ndarray, b: np.ndarray, criterion: int = -1) -> np.ndarray:
    """(N, K) overlap of BEV rectangles ``a`` (N, 5) and ``b`` (K, 5), ``x, z, w, l, ry``."""
    return _bev_matrix(_as2d(a, 5, "a"), _as2d(b, 5, "b"), int(criterion))


def box3d_overlap(a: np.ndarray, b: np.ndarray, criterion: int = -1) -> np.ndarray:
    """(N, K) overlap of 3D boxes ``a`` (N, 7) and ``b`` (K, 7), ``x, y, z, h, w, l, ry`` (camera frame)."""
    return _box3d_matrix(_as2d(a, 7, "a"), _as2d(b, 7, "b"), int(criterion))


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """(N, 4, 2) corners ``(x, z)`` of BEV rectangles (N, 5) ``x, z, w, l, ry``, counter-clockwise."""
    boxes = _as2d(boxes, 5, "boxes")
    c = np.cos(boxes[:, 4])[:, None]
    s = np.sin(boxes[:, 4])[:, None]
    a = 0.5 * np.abs(boxes[:, 3:4]) * np.array([[1.0, -1.0, -1.0, 1.0]])
    b = 0.5 * np.abs(boxes[:, 2:3]) * np.array([[1.0, 1.0, -1.0, -1.0]])
    x = boxes[:, 0:1] + c * a + s * b
    z = boxes[:, 1:2] - s * a + c * b
    return np.stack([x, z], axis=-1)


def boxes3d_to_bev(boxes3d: np.ndarray) -> np.ndarray:
    """(N, 7) ``x, y, z, h, w, l, ry`` -> (N, 5) BEV ``x, z, w, l, ry``."""
    boxes3d = _as2d(boxes3d, 7, "boxes3d")
    return boxes3d[:, [0, 2, 4, 5, 6]].copy()
