"""The synthetic KITTI scene before painting: the camera (a real KITTI calibration, 1.65 m above
a flat ground plane), the road and its background (sky, buildings, textured ground back-projected
through P2) and the objects standing on it (cars, vans, pedestrians, cyclists, distractors).

Camera frame: x right, y down, z forward, metres; an object's ``loc`` is the bottom centre of
its 3D box, ``dims`` (h, w, l) metres, ``ry`` its yaw about the camera y axis in radians.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from centerpoint_suite.tasks.mono3d.geometry3d import project

IMAGE_HW = (375, 1242)
CAMERA_HEIGHT = 1.65

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
