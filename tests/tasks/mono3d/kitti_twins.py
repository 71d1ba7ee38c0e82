"""Plain-numpy twins of the KITTI evaluator's kernels (tests only): the overlaps (polygon clipping
done differently) and the devkit's score thresholds."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError


def twin_corners(box: np.ndarray) -> np.ndarray:
    """Devkit ``toPolygon``: R = [[cos, sin], [-sin, cos]] applied to (+-l/2, +-w/2), plus (x, z)."""
    x, z, w, l, ry = box
    rot = np.array([[np.cos(ry), np.sin(ry)], [-np.sin(ry), np.cos(ry)]])
    local = np.array([[l / 2, l / 2, -l / 2, -l / 2], [w / 2, -w / 2, -w / 2, w / 2]])
    return (rot @ local).T + np.array([x, z])


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Points inside (or on) a convex polygon of either orientation."""
    signs = []
    for k in range(len(poly)):
        e0, e1 = poly[k], poly[(k + 1) % len(poly)]
        signs.append((e1[0] - e0[0]) * (points[:, 1] - e0[1]) - (e1[1] - e0[1]) * (points[:, 0] - e0[0]))
    signs = np.stack(signs, 1)
    tol = 1e-12
    return np.all(signs >= -tol, 1) | np.all(signs <= tol, 1)


def twin_intersection_area(pa: np.ndarray, pb: np.ndarray) -> float:
    """Convex hull of (corners inside the other polygon + pairwise edge crossings)."""
    pts = [pa[_inside(pa, pb)], pb[_inside(pb, pa)]]
    for i in range(4):
        p, r = pa[i], pa[(i + 1) % 4] - pa[i]
        for j in range(4):
            q, s = pb[j], pb[(j + 1) % 4] - pb[j]
            den = r[0] * s[1] - r[1] * s[0]
            # (nearly) parallel edges: their "crossing" is ill-conditioned and, for collinear
            # overlapping edges, lands anywhere; the hull's vertices then come from the corners
            if abs(den) <= 1e-9 * np.hypot(*r) * np.hypot(*s):
                continue
            t = ((q[0] - p[0]) * s[1] - (q[1] - p[1]) * s[0]) / den
            u = ((q[0] - p[0]) * r[1] - (q[1] - p[1]) * r[0]) / den
            if 0 <= t <= 1 and 0 <= u <= 1:
                pts.append((p + t * r)[None])
    points = np.concatenate(pts)
    if len(points) < 3:
        return 0.0
    try:
        return float(ConvexHull(points).volume)  # 2-D "volume" is the area
    except QhullError:
        return 0.0  # collinear: zero area


def twin_bev_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = twin_intersection_area(twin_corners(a), twin_corners(b))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if inter > 0 else 0.0


def twin_3d_iou(a: np.ndarray, b: np.ndarray) -> float:
    """a, b: x, y, z, h, w, l, ry; vertical extent y - h .. y."""
    dy = min(a[1], b[1]) - max(a[1] - a[3], b[1] - b[3])
    if dy <= 0:
        return 0.0
    inter = twin_intersection_area(twin_corners(a[[0, 2, 4, 5, 6]]), twin_corners(b[[0, 2, 4, 5, 6]])) * dy
    union = np.prod(a[3:6]) + np.prod(b[3:6]) - inter
    return inter / union if inter > 0 else 0.0


def twin_2d_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def random_bev(rng: np.random.Generator, n: int) -> np.ndarray:
    xz = rng.uniform(-3, 3, (n, 2))
    wl = rng.uniform(0.3, 5.0, (n, 2))
    ry = rng.uniform(-np.pi, np.pi, (n, 1))
    return np.concatenate([xz, wl, ry], 1)


def twin_get_thresholds(scores, num_gt, num_pts=41):
    scores = sorted(scores, reverse=True)
    out, current = [], 0.0
    for i, s in enumerate(scores):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < len(scores) - 1 else l_recall
        if (r_recall - current) < (current - l_recall) and i < len(scores) - 1:
            continue
        out.append(s)
        current += 1 / (num_pts - 1)
    return out
