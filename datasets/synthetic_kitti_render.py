"""Painting a synthetic KITTI frame and labelling it: the cuboids drawn far to near in true
perspective (shaded faces, details that show the heading), then the KITTI label rows measured
from what was drawn (clipped box, truncation, occlusion from the visible pixels, DontCare for
boxes lower than 20 px). The scene itself comes from ``synthetic_kitti_scene``.
"""

from __future__ import annotations

import cv2
import numpy as np

from centerpoint_suite.datasets.kitti import KittiObjects
from centerpoint_suite.tasks.mono3d.geometry3d import (
    BOX_FACES,
    alpha_from_location,
    box3d_corners,
    project,
    project_boxes,
)

from .synthetic_kitti_scene import CAMERA_HEIGHT, IMAGE_HW, P2, _background, _Object, _sample_objects

_MIN_BOX_HEIGHT = 20.0  # px: lower boxes are labelled DontCare


# ----------------------------------------------------------------------------- objects


def _bilinear(q: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points of a quad q (4, 3) (q0 q1 along s at t = 0, q3 q2 at t = 1) at (s, t) pairs -> (n, 3)."""
    s = s[:, None]
    t = t[:, None]
    return (1 - s) * (1 - t) * q[0] + s * (1 - t) * q[1] + s * t * q[2] + (1 - s) * t * q[3]


# (face index, s0, s1, t0, t1, kind) details; kinds resolved to colours per object
_DETAILS = {
    "Car": [
        (0, 0.08, 0.92, 0.58, 0.93, "glass"), (0, 0.05, 0.24, 0.30, 0.44, "headlight"),
        (0, 0.76, 0.95, 0.30, 0.44, "headlight"), (0, 0.34, 0.66, 0.22, 0.40, "dark"),
        (1, 0.10, 0.90, 0.60, 0.92, "glass"), (1, 0.04, 0.22, 0.34, 0.48, "taillight"),
        (1, 0.78, 0.96, 0.34, 0.48, "taillight"),
        (2, 0.20, 0.82, 0.60, 0.93, "glass"), (2, 0.10, 0.27, 0.0, 0.30, "tyre"), (2, 0.74, 0.90, 0.0, 0.30, "tyre"),
        (3, 0.18, 0.80, 0.60, 0.93, "glass"), (3, 0.10, 0.26, 0.0, 0.30, "tyre"), (3, 0.73, 0.90, 0.0, 0.30, "tyre"),
        (5, 0.25, 0.70, 0.1, 0.9, "roof"),
    ],
    "Pedestrian": [
        (f, 0.0, 1.0, 0.0, 0.47, "legs") for f in range(4)
    ] + [(f, 0.25, 0.75, 0.86, 1.0, "hair") for f in (1, 2, 3)] + [(0, 0.25, 0.75, 0.86, 1.0, "skin"),
         (0, 0.2, 0.8, 0.5, 0.8, "chest")],
    "Cyclist": [
        (f, 0.0, 0.36, 0.0, 0.42, "tyre") for f in (2, 3)
    ] + [(f, 0.64, 1.0, 0.0, 0.42, "tyre") for f in (2, 3)] + [(f, 0.3, 0.7, 0.85, 1.0, "hair") for f in (1, 2, 3)]
      + [(0, 0.3, 0.7, 0.85, 1.0, "skin"), (0, 0.2, 0.8, 0.0, 0.4, "dark"), (1, 0.2, 0.8, 0.0, 0.4, "dark"),
         (1, 0.3, 0.7, 0.35, 0.45, "taillight")],
}  # fmt: skip
_DETAILS["Van"] = _DETAILS["Car"]


def _detail_colour(kind: str, obj: _Object) -> np.ndarray:
    table = {
        "glass": np.array([70, 55, 40], np.float32),
        "headlight": np.array([215, 245, 255], np.float32),
        "taillight": np.array([30, 30, 210], np.float32),
        "dark": np.array([30, 30, 30], np.float32),
        "tyre": np.array([22, 22, 22], np.float32),
        "roof": obj.colour * 0.8,
        "legs": obj.colour2,
        "hair": np.array([25, 30, 40], np.float32),
        "skin": obj.skin,
        "chest": obj.colour * 1.15,
    }
    return table[kind]


def _draw_object(
    img: np.ndarray, ids: np.ndarray, index: int, obj: _Object, sun: np.ndarray, camera: np.ndarray
) -> int:
    """Paint one cuboid (visible faces + details) onto img and its id into ids; returns its
    pixel area (count of ids == index + 1 right after drawing)."""
    corners = box3d_corners(obj.dims[None], obj.loc[None], np.array([obj.ry]))[0]  # (8, 3)
    centre = corners.mean(axis=0)
    uv, w = project(corners, P2)
    if np.any(w < 0.3):
        return 0
    details = _DETAILS.get(obj.type, [])
    area_pts = []
    for f, quad in enumerate(BOX_FACES[:4].tolist() + [BOX_FACES[5].tolist()]):
        f = f if f < 4 else 5
        q3 = corners[quad]
        fc = q3.mean(axis=0)
        normal = fc - centre
        normal /= np.linalg.norm(normal) + 1e-9
        if np.dot(normal, camera - fc) <= 0:
            continue
        light = 0.5 + 0.5 * max(0.0, float(np.dot(normal, sun)))
        base = obj.colour * light
        # a heading cue visible even at low resolution: pale front face, dark back face
        if f == 0:
            base = 0.45 * base + 0.55 * np.float32(235.0) * light
        elif f == 1:
            base = base * 0.55
        poly = uv[quad]
        area_pts.append(poly)
        cv2.fillConvexPoly(img, np.round(poly * 16).astype(np.int32), base.tolist(), cv2.LINE_AA, 4)
        for face, s0, s1, t0, t1, kind in details:
            if face != f:
                continue
            pts = _bilinear(q3, np.array([s0, s1, s1, s0]), np.array([t0, t0, t1, t1]))
            p2, _ = project(pts, P2)
            colour = _detail_colour(kind, obj) * light
            cv2.fillConvexPoly(img, np.round(p2 * 16).astype(np.int32), colour.tolist(), cv2.LINE_AA, 4)
    if not area_pts:
        return 0
    for poly in area_pts:
        cv2.fillConvexPoly(ids, np.round(poly * 16).astype(np.int32), index + 1, cv2.LINE_8, 4)
    box = project_boxes(corners[None], P2, IMAGE_HW)[0].astype(int)
    crop = ids[box[1] : box[3] + 1, box[0] : box[2] + 1]
    return int(np.count_nonzero(crop == index + 1))


def render_frame(rng: np.random.Generator) -> tuple[np.ndarray, KittiObjects]:
    """One synthetic frame: (image (375, 1242, 3) uint8 BGR, its KITTI label rows)."""
    half_width = float(rng.uniform(5.5, 9.0))
    n_lanes = max(2, int(round(2 * half_width / 3.5)))
    lane_w = 2 * half_width / n_lanes
    centre = float(rng.normal(0.0, 1.5))
    road = {
        "ground": CAMERA_HEIGHT + float(rng.normal(0, 0.03)),
        "half_width": half_width,
        "centre": centre,
        "yaw": float(rng.normal(0, 0.03)),
        "lanes": [centre - half_width + lane_w * (i + 0.5) for i in range(n_lanes)],
        "separators": [-half_width + lane_w * i for i in range(1, n_lanes)],
        "asphalt": rng.uniform(60, 115) * np.array([1.0, 1.0, 1.02]) + rng.normal(0, 3, 3),
        "pavement": rng.uniform(120, 175) * np.array([1.0, 1.02, 1.04]) + rng.normal(0, 5, 3),
        "grass": np.array([50, 120, 70]) * rng.uniform(0.6, 1.2) + rng.normal(0, 8, 3),
    }
    img = _background(rng, road)
    objects = _sample_objects(rng, road)
    sun = np.array([rng.uniform(-0.8, 0.8), -1.0, rng.uniform(-0.8, 0.3)])
    sun /= np.linalg.norm(sun)
    camera = -np.linalg.solve(P2[:, :3], P2[:, 3])
    order = np.argsort([-np.hypot(o.loc[0], o.loc[2]) for o in objects], kind="stable")
    ids = np.zeros(IMAGE_HW, np.int32)
    areas = np.zeros(len(objects), np.int64)
    for k in order:
        areas[k] = _draw_object(img, ids, int(k), objects[k], sun, camera)
    counts = np.bincount(ids.ravel(), minlength=len(objects) + 1)[1:]
    # exposure and a slight blur (no pixel noise: it would make the PNGs incompressible)
    img *= float(rng.uniform(0.75, 1.2))
    image = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0.6)
    return image, _labels(objects, areas, counts)


def _labels(objects: list[_Object], areas: np.ndarray, counts: np.ndarray) -> KittiObjects:
    rows = []
    for i, obj in enumerate(objects):
        if not obj.labelled or areas[i] == 0:
            continue
        corners = box3d_corners(obj.dims[None], obj.loc[None], np.array([obj.ry]))
        full = project_boxes(corners, P2)[0]
        box = project_boxes(corners, P2, IMAGE_HW)[0]
        full_area = (full[2] - full[0]) * (full[3] - full[1])
        area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
        if area <= 0:
            continue
        truncated = float(np.clip(1 - area / max(full_area, 1e-6), 0, 1))
        visible = counts[i] / max(areas[i], 1)
        if truncated > 0.8 or visible <= 0.1:
            continue
        occluded = 0 if visible > 0.9 else (1 if visible > 0.5 else 2)
        if box[3] - box[1] < _MIN_BOX_HEIGHT:
            rows.append(("DontCare", -1.0, -1, -10.0, box, (-1.0, -1.0, -1.0), (-1000.0, -1000.0, -1000.0), -10.0))
            continue
        alpha = float(alpha_from_location(obj.ry, obj.loc))
        rows.append((obj.type, truncated, occluded, alpha, box, tuple(obj.dims), tuple(obj.loc), obj.ry))
    if not rows:
        return KittiObjects.empty()
    return KittiObjects(
        type=np.array([r[0] for r in rows]),
        truncated=np.array([r[1] for r in rows], np.float64),
        occluded=np.array([r[2] for r in rows], np.int64),
        alpha=np.array([r[3] for r in rows], np.float64),
        bbox=np.array([r[4] for r in rows], np.float64),
        dimensions=np.array([r[5] for r in rows], np.float64),
        location=np.array([r[6] for r in rows], np.float64),
        rotation_y=np.array([r[7] for r in rows], np.float64),
    )
