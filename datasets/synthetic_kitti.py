"""Built-in monocular 3D data: rendered street scenes written in the raw KITTI object layout.

``generate_kitti(root)`` writes, once (reused while ``ROOT/DONE`` records the same parameters)::

    ROOT/training/image_2/<id>.png   1242 x 375 BGR renders
    ROOT/training/label_2/<id>.txt   KITTI labels (type truncated occluded alpha bbox h w l x y z ry)
    ROOT/training/calib/<id>.txt     a real KITTI calibration (P0..P3, R0_rect, Tr_*): P2 of drive
                                     2011_09_26 (fx 721.5377), the same for every frame
    ROOT/ImageSets/{train,val,trainval}.txt
    ROOT/DONE                        the generation parameters, written last

A scene is a camera 1.65 m above a flat ground plane (y = 1.65 in the camera frame) looking
along a road: textured asphalt with lane markings, kerbs, pavements and grass, a sky with
distant buildings. On it stand cuboid cars (a few labelled Van: ignore regions for Car),
pedestrians and cyclists, drawn in true perspective with the projection P2, faces shaded by a
sun direction and detailed so the heading is visible (every front face pale, every back face
dark; cars: windscreen and headlights at the front, red lights at the back, side windows and
wheels; people: a face at the front; cyclists: wheels on the sides). Objects are painted far
to near; the label fields follow KITTI:

- bbox: the projected 3D box clipped to the image (what KITTI's boxes match);
- truncated: 1 - area of the clipped box / area of the unclipped projected box;
- occluded: visible fraction of the object's silhouette > 0.9 -> 0, > 0.5 -> 1, else 2
  (objects with <= 10 % visible, or truncated beyond 0.8, get no label);
- alpha = rotation_y - atan2(x, z);
- DontCare: objects whose box is lower than 20 px (the far traffic placed 50 - 80 m away) are
  labelled DontCare, as KITTI does for objects too small to annotate; the labelled objects
  stand 4 - 50 m away.

Every frame draws from its own random generator seeded by (seed, split, index), so frames do
not depend on each other or on the number of frames of the other split.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from centerpoint_suite.datasets.kitti import KittiObjects, write_label_file
from centerpoint_suite.datasets.synthetic_common import (
    atomic_write_text,
    generation_lock,
    image_rng,
    is_complete,
    publish,
    staging_folder,
)
from centerpoint_suite.errors import UserError
from centerpoint_suite.tasks.mono3d.geometry3d import (
    BOX_FACES,
    alpha_from_location,
    box3d_corners,
    project,
    project_boxes,
)

IMAGE_HW = (375, 1242)
CAMERA_HEIGHT = 1.65
VERSION = 2

# The calibration of KITTI drive 2011_09_26 (object frame 000001), written for every frame.
_CALIB_LINES = {
    "P0": [721.5377, 0.0, 609.5593, 0.0, 0.0, 721.5377, 172.854, 0.0, 0.0, 0.0, 1.0, 0.0],
    "P1": [721.5377, 0.0, 609.5593, -387.5744, 0.0, 721.5377, 172.854, 0.0, 0.0, 0.0, 1.0, 0.0],
    "P2": [721.5377, 0.0, 609.5593, 44.85728, 0.0, 721.5377, 172.854, 0.2163791, 0.0, 0.0, 1.0, 0.002745884],
    "P3": [721.5377, 0.0, 609.5593, -339.5242, 0.0, 721.5377, 172.854, 2.199936, 0.0, 0.0, 1.0, 0.002729905],
    "R0_rect": [0.9999239, 0.00983776, -0.007445048, -0.009869795, 0.9999421, -0.004278459, 0.007402527,
                0.004351614, 0.9999631],
    "Tr_velo_to_cam": [0.007533745, -0.9999714, -0.000616602, -0.004069766, 0.01480249, 0.0007280733,
                       -0.9998902, -0.07631618, 0.9998621, 0.00752379, 0.01480755, -0.2717806],
    "Tr_imu_to_velo": [0.9999976, 0.0007553071, -0.002035826, -0.8086759, -0.0007854027, 0.9998898,
                       -0.01482298, 0.3195559, 0.002024406, 0.01482454, 0.9998881, -0.7997231],
}  # fmt: skip
P2 = np.array(_CALIB_LINES["P2"], dtype=np.float64).reshape(3, 4)

# class -> (mean h, w, l), std (h, w, l)
_DIMS = {
    "Car": ((1.53, 1.63, 3.88), (0.07, 0.06, 0.22)),
    "Van": ((2.10, 1.90, 5.00), (0.12, 0.08, 0.30)),
    "Pedestrian": ((1.76, 0.66, 0.84), (0.09, 0.06, 0.10)),
    "Cyclist": ((1.74, 0.60, 1.76), (0.08, 0.05, 0.10)),
}
_CAR_COLOURS = np.array(
    [[235, 235, 235], [190, 190, 195], [40, 40, 45], [40, 40, 180], [150, 60, 30], [110, 110, 110],
     [40, 90, 40], [30, 140, 200], [160, 160, 150], [20, 20, 110]],
    dtype=np.float32,
)  # fmt: skip
_SKIN = np.array([[120, 150, 200], [90, 120, 170], [60, 80, 120], [150, 180, 225]], dtype=np.float32)
_MIN_BOX_HEIGHT = 20.0  # px: lower boxes are labelled DontCare


@dataclass
class _Object:
    type: str
    dims: np.ndarray  # h, w, l
    loc: np.ndarray  # bottom centre
    ry: float
    colour: np.ndarray  # BGR float
    colour2: np.ndarray
    skin: np.ndarray
    labelled: bool = True  # False: a distractor (pole, bush) that gets no label


# ----------------------------------------------------------------------------- scene sampling


def _sample_dims(rng: np.random.Generator, kind: str) -> np.ndarray:
    mean, std = _DIMS[kind]
    return np.clip(rng.normal(mean, std), np.array(mean) * 0.8, np.array(mean) * 1.2)


def _in_view(x: float, z: float, margin: float = 1.15) -> bool:
    return z > 3.0 and abs(x - 0.06) < z * 0.86 * margin + 1.0


def _sample_objects(rng: np.random.Generator, road: dict) -> list[_Object]:
    """Non-colliding objects on the ground plane in front of the camera."""
    placed: list[_Object] = []
    discs: list[tuple[float, float, float]] = []
    lanes = road["lanes"]
    ground = road["ground"]

    def try_place(kind: str, labelled: bool = True, z_range: tuple[float, float] = (4.0, 50.0)) -> None:
        dims = _sample_dims(rng, kind) if kind in _DIMS else None
        for _ in range(25):
            z = float(rng.uniform(*z_range))
            if kind in ("Car", "Van"):
                if rng.random() < 0.7:
                    lane = int(rng.integers(len(lanes)))
                    x = lanes[lane] + rng.normal(0, 0.3)
                    ry = (np.pi / 2 if lanes[lane] < road["centre"] else -np.pi / 2) + rng.normal(0, 0.08)
                elif rng.random() < 0.6:  # parked along a kerb
                    side = rng.choice([-1.0, 1.0])
                    x = road["centre"] + side * (road["half_width"] - 1.1) + rng.normal(0, 0.15)
                    ry = rng.choice([-np.pi / 2, np.pi / 2]) + rng.normal(0, 0.1)
                else:  # anywhere, any heading (turning, crossing, car parks)
                    x = road["centre"] + rng.uniform(-road["half_width"] - 6, road["half_width"] + 6)
                    ry = rng.uniform(-np.pi, np.pi)
            elif kind == "Pedestrian":
                if rng.random() < 0.7:
                    side = rng.choice([-1.0, 1.0])
                    x = road["centre"] + side * (road["half_width"] + rng.uniform(0.4, 2.6))
                else:
                    x = road["centre"] + rng.uniform(-road["half_width"], road["half_width"])
                ry = rng.uniform(-np.pi, np.pi)
            elif kind == "Cyclist":
                if rng.random() < 0.75:
                    side = rng.choice([-1.0, 1.0])
                    x = road["centre"] + side * (road["half_width"] - 0.6) + rng.normal(0, 0.2)
                    ry = (np.pi / 2 if side < 0 else -np.pi / 2) + rng.normal(0, 0.15)
                else:
                    x = road["centre"] + rng.uniform(-road["half_width"], road["half_width"])
                    ry = rng.uniform(-np.pi, np.pi)
            else:  # distractors: poles and bushes beside the road
                side = rng.choice([-1.0, 1.0])
                x = road["centre"] + side * (road["half_width"] + rng.uniform(0.2, 6.0))
                ry = rng.uniform(-np.pi, np.pi)
                dims = (
                    np.array([rng.uniform(2.5, 4.5), 0.15, 0.15])
                    if kind == "pole"
                    else np.array([rng.uniform(0.6, 1.4), rng.uniform(0.8, 2.0), rng.uniform(0.8, 3.0)])
                )
            if not _in_view(x, z):
                continue
            r = 0.5 * float(np.hypot(dims[1], dims[2]))
            if any((x - px) ** 2 + (z - pz) ** 2 < (r + pr + 0.2) ** 2 for px, pz, pr in discs):
                continue
            colour = _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))] * rng.uniform(0.85, 1.1)
            if kind in ("Pedestrian", "Cyclist"):
                colour = rng.uniform(30, 230, 3).astype(np.float32)
            elif kind == "pole":
                colour = np.array([110, 115, 120], np.float32) * rng.uniform(0.7, 1.2)
            elif kind == "bush":
                colour = np.array([40, 110, 50], np.float32) * rng.uniform(0.6, 1.3)
            obj = _Object(
                kind,
                np.asarray(dims, np.float64),
                np.array([x, ground, z]),
                float(np.arctan2(np.sin(ry), np.cos(ry))),
                colour.astype(np.float32),
                rng.uniform(20, 120, 3).astype(np.float32),
                _SKIN[rng.integers(len(_SKIN))],
                labelled,
            )
            placed.append(obj)
            discs.append((x, z, r))
            return

    for _ in range(int(np.clip(rng.poisson(6.0), 1, 12))):
        try_place("Van" if rng.random() < 0.08 else "Car")
    for _ in range(int(min(rng.poisson(1.3), 6))):
        try_place("Pedestrian")
    for _ in range(int(min(rng.poisson(0.8), 4))):
        try_place("Cyclist")
    for _ in range(int(rng.integers(0, 4))):
        try_place("pole" if rng.random() < 0.5 else "bush", labelled=False, z_range=(4.0, 70.0))
    for _ in range(int(rng.integers(0, 3))):  # far traffic: mostly too small to label -> DontCare
        try_place("Car", z_range=(50.0, 80.0))
    return placed


# ----------------------------------------------------------------------------- background


def _background(rng: np.random.Generator, road: dict) -> np.ndarray:
    """Sky + distant buildings above the horizon, textured road scene below it; (H, W, 3) f32."""
    h, w = IMAGE_HW
    p = P2
    fy, cy, t1, t2 = p[1, 1], p[1, 2], p[1, 3], p[2, 3]
    fx, cx, t0 = p[0, 0], p[0, 2], p[0, 3]
    img = np.empty((h, w, 3), np.float32)
    vs = np.arange(h, dtype=np.float32)[:, None]
    us = np.arange(w, dtype=np.float32)[None, :]
    # sky: a vertical gradient towards a paler horizon (per row, broadcast along the row)
    top = rng.uniform([150, 100, 60], [240, 190, 150]).astype(np.float32)
    low = rng.uniform([200, 190, 180], [250, 245, 240]).astype(np.float32)
    f = np.clip(vs / cy, 0, 1)[..., None]
    img[:] = top * (1 - f) + low * f
    # ground: back-project every pixel below the horizon onto y = ground
    ground = road["ground"]
    horizon = int(np.ceil(cy + 1.0))
    v = vs[horizon:]
    z = ((fy * ground + t1 - v * t2) / (v - cy)).astype(np.float32)  # (h', 1) per row
    x = (us * (z + t2) - cx * z - t0) * np.float32(1 / fx)  # (h', W)
    cos, sin = np.float32(np.cos(road["yaw"])), np.float32(np.sin(road["yaw"]))
    xr = x * cos - (z * sin + np.float32(road["centre"]))  # road-aligned lateral coordinate
    zr = x * sin + z * cos
    ax = np.abs(xr)
    hw = np.float32(road["half_width"])
    # material per pixel: 0 grass, 1 pavement, 2 pavement tile joint, 3 asphalt, 4 kerb, 5 paint
    pave = ax < hw + 3.0
    on_road = ax < hw
    mat = pave.astype(np.uint8)
    joints = pave & ((np.abs(zr % 1.2 - 0.6) > 0.56) | (np.abs((xr + 0.3) % 1.2 - 0.6) > 0.56))
    mat[joints] = 2
    mat[on_road] = 3
    mat[pave & ~on_road & (ax < hw + 0.25)] = 4
    paint = on_road & (np.abs(ax - (hw - 0.35)) < 0.08)  # solid edge lines
    dashes = (zr % 9.0) < 3.0
    for sep in road["separators"]:  # dashed lane separators
        paint |= dashes & (np.abs(xr - np.float32(sep)) < 0.07)
    mat[paint & on_road] = 5
    palette = np.stack(
        [road["grass"], road["pavement"], road["pavement"] * 0.85, road["asphalt"], road["pavement"] * 1.15,
         np.full(3, 220.0)]
    ).astype(np.float32)  # fmt: skip
    # texture: coarse blotches fading with distance; haze towards the horizon (both per row)
    noise = cv2.resize(rng.standard_normal((12, 40), dtype=np.float32), (w, h - horizon))
    fade = np.clip(12.0 / np.maximum(z, 1.0), 0.15, 1.0)
    haze = np.exp(-np.maximum(z, 0) / np.float32(90.0))[..., None]  # (h', 1, 1)
    tex = (1.0 + 0.08 * noise * fade)[..., None] * haze
    img[horizon:] = palette[mat] * tex + low * (1 - haze)
    _draw_buildings(rng, img, road)
    return img


def _draw_buildings(rng: np.random.Generator, img: np.ndarray, road: dict) -> None:
    """Distant block buildings beside the road, drawn as projected rectangles (far to near)."""
    blocks = []
    for _ in range(int(rng.integers(4, 14))):
        side = rng.choice([-1.0, 1.0])
        x0 = road["centre"] + side * (road["half_width"] + rng.uniform(8, 40))
        z0 = rng.uniform(45, 130)
        blocks.append((z0, x0, rng.uniform(6, 25), rng.uniform(4, 22)))
    for z0, x0, width, height in sorted(blocks, reverse=True):
        pts = np.array([[x0 - width / 2, road["ground"] - height, z0], [x0 + width / 2, road["ground"], z0]])
        uv, _ = project(pts, P2)
        (u0, v0), (u1, v1) = uv
        colour = rng.uniform(70, 200, 3) * np.exp(-z0 / 150) + 180 * (1 - np.exp(-z0 / 150))
        a, b = int(max(u0, 0)), int(min(u1, img.shape[1]))
        c, d = int(max(v0, 0)), int(min(v1, img.shape[0]))
        if a < b and c < d:
            img[c:d, a:b] = colour
            for wy in np.arange(v0 + 3, v1 - 2, max(3.0, (v1 - v0) / 6)):  # window rows
                y = int(wy)
                if c <= y < d:
                    img[y, a:b] *= 0.75


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


# ----------------------------------------------------------------------------- folder


_CALIB_TEXT = "".join(f"{k}: " + " ".join(f"{v:.12e}" for v in vals) + "\n" for k, vals in _CALIB_LINES.items())


_OWN_FILE = re.compile(r"^\d{6}\.(png|txt)$")


def _clean(root: Path) -> None:
    """Remove a previous (possibly partial) generation; refuse folders holding other files."""
    (root / "DONE").unlink(missing_ok=True)
    for name in ("train", "val", "trainval"):
        (root / "ImageSets" / f"{name}.txt").unlink(missing_ok=True)
    for sub in ("training/image_2", "training/label_2", "training/calib"):
        folder = root / sub
        if not folder.exists():
            continue
        foreign = [p.name for p in folder.iterdir() if not _OWN_FILE.match(p.name)]
        if foreign:
            raise UserError(
                f"{folder}: holds files the generator did not write (e.g. {foreign[0]}); choose an empty folder"
            )
        shutil.rmtree(folder)


def _write_frame(job: tuple[Path, int, str, int, str]) -> None:
    root, seed, split, index, name = job
    image, labels = render_frame(image_rng(seed, split, index))
    path = root / "training" / "image_2" / f"{name}.png"
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise UserError(f"{path}: cannot write image")
    write_label_file(root / "training" / "label_2" / f"{name}.txt", labels)
    (root / "training" / "calib" / f"{name}.txt").write_text(_CALIB_TEXT)


def generate_kitti(root: Path, num_train: int = 1600, num_val: int = 200, seed: int = 0, workers: int = 2) -> Path:
    """Write (once) the synthetic KITTI-format dataset to ``root`` and return ``root``.

    Frames 000000 .. num_train - 1 form ImageSets/train.txt, the next num_val val.txt.
    Reused as is when ``root/DONE`` records the same parameters. ``workers`` processes render
    in parallel (the frames do not depend on it); they are started with ``spawn`` (forking a
    process that imported torch can deadlock), so a script calling this with more than 50
    frames and ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    Safe to call from several processes at once (see ``synthetic_common``).
    """
    root = Path(root)
    params = {
        "generator": "synthetic_kitti",
        "version": VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "seed": seed,
    }
    if is_complete(root, params):
        return root
    with generation_lock(root):  # see synthetic_common: lock, unique staging folder, renames, DONE last
        if is_complete(root, params):
            return root
        _clean(root)
        with staging_folder(root) as stage:
            _generate_into(stage, num_train, num_val, seed, workers)
            entries = [f"training/{k}" for k in ("image_2", "label_2", "calib")]
            entries += [f"ImageSets/{s}.txt" for s in ("train", "val", "trainval")]
            publish(stage, root, entries, params)
    return root


def _generate_into(stage: Path, num_train: int, num_val: int, seed: int, workers: int) -> None:
    for k in ("image_2", "label_2", "calib"):
        (stage / "training" / k).mkdir(parents=True, exist_ok=True)
    jobs = [(seed, split, i, f"{frame:06d}") for frame, (split, i) in enumerate(
        [("train", i) for i in range(num_train)] + [("val", i) for i in range(num_val)]
    )]  # fmt: skip
    workers = max(1, min(int(workers), len(jobs) // 50 + 1))
    if workers > 1:
        # spawn, not fork: forking a process that has imported torch (its thread pools) can deadlock
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_frame, [(stage, *j) for j in jobs], chunksize=16):
                pass
    else:
        for j in jobs:
            _write_frame((stage, *j))
    splits = {"train": [j[3] for j in jobs if j[1] == "train"], "val": [j[3] for j in jobs if j[1] == "val"]}
    for split, names in splits.items():
        atomic_write_text(stage / "ImageSets" / f"{split}.txt", "".join(n + "\n" for n in names))
    trainval = "".join(n + "\n" for n in splits["train"] + splits["val"])
    atomic_write_text(stage / "ImageSets" / "trainval.txt", trainval)


def main() -> None:  # pragma: no cover - manual use: python -m centerpoint_suite.datasets.synthetic_kitti DIR
    import sys

    out = generate_kitti(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("synthetic_kitti"))
    print(json.dumps({"root": str(out)}))


if __name__ == "__main__":  # pragma: no cover
    main()
