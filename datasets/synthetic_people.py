"""Built-in synthetic multi-person pose dataset: articulated figures, COCO keypoint format.

Each figure is a front-facing puppet (so the person's left side is on the image right, as
for a real person facing the camera) with the 17 COCO joints: an oval head with ears,
eyes and nose, a torso quadrilateral, and limbs drawn as thick round-capped segments.
Clothes get random colours contrasting with the background; left limbs are a lighter and
right limbs a darker shade of them, a cue that keeps left/right learnable. Pose (arm and
leg angles, elbow and knee bends, foreshortening, lean, head tilt and turn), height
(48 px .. 0.9 x image height, uniform in its square root), position and the number of
people (1-4) are random; nearer (taller) figures occlude farther ones. ``place_person``
draws one figure onto a ``Canvas`` (``synthetic_canvas``); the mixed scenes generator
(``synthetic_scenes``) uses it with shapes on the same canvas.

Annotation conventions (COCO keypoints):
- ``keypoints`` [x, y, v] * 17 in image pixels (pixel centres at integers); v = 2 visible,
  v = 1 hidden behind a later figure, v = 0 outside the image (then x = y = 0);
- ``bbox`` the whole drawn figure (hidden parts included), clipped to the image, in the
  pycocotools mask convention, enlarged if needed to contain every labelled joint;
- ``area`` and ``segmentation`` the visible pixels of the figure (COCO's OKS scale);
- placements are redrawn when a figure would keep fewer than 10 joints inside the image,
  would overlap an earlier figure's box with IoU > 0.5, or would leave an earlier figure
  under 60% visible or with fewer than 10 visible joints; nearer (taller) figures are in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .synthetic_canvas import Canvas, mask_at
from .synthetic_common import (
    contrasting_colour,
    generate_coco_folder,
    generator_params,
    jittered_size,
    mask_polygons,
    shade,
    textured_background,
)

VERSION = 1
JOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# COCO's 19 limbs, 1-based joint numbers as in person_keypoints_*.json
SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
CATEGORIES = [
    {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(JOINTS),
        "skeleton": [list(s) for s in SKELETON],
    }
]
MIN_HEIGHT = 48.0  # px, head top to feet of a standing figure
MAX_HEIGHT_FRAC = 0.9  # of the image height
MAX_PEOPLE = 4
MIN_JOINTS_INSIDE = 10  # of a new figure, inside the image
MIN_VISIBLE = 0.6  # pixel fraction an earlier figure keeps when a later one is placed
MIN_VISIBLE_JOINTS = 10  # visible joints an earlier figure keeps
MAX_BOX_IOU = 0.5  # between the boxes of two figures
ATTEMPTS = 10
_SHIFT = 3  # cv2 sub-pixel bits
_SKIN = np.array([[60, 90, 140], [90, 130, 190], [120, 160, 215], [150, 190, 235], [40, 60, 95]], np.float32)


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _limb(side: float, angle: float) -> np.ndarray:
    """Unit direction of a limb ``angle`` radians outward from straight down, on ``side`` (+1 left)."""
    return np.array([side * np.sin(angle), np.cos(angle)])


def figure_pose(rng: np.random.Generator, height: float) -> dict:
    """A random front-facing figure, relative to its pelvis (mid-hip) at the origin.

    Returns "joints" (17, 2) float64 px (x right, y down; the person's left is +x), the head
    "centre" (2,), "axes" (rx, ry) px and "tilt" (radians), "neck" base (2,), and
    the limb thicknesses "t_arm", "t_forearm", "t_thigh", "t_shin", "t_neck" in px.
    """
    j = np.zeros((17, 2))
    k = height * rng.uniform(0.92, 1.08, 8)  # per-part proportion jitter
    hip_w, sh_w, torso, neck = 0.085 * k[0], 0.12 * k[1], 0.30 * k[2], 0.12 * k[3]
    upper_arm, forearm, thigh, shin = 0.17 * k[4], 0.15 * k[5], 0.24 * k[6], 0.24 * k[7]
    lean = float(np.clip(rng.normal(0.0, 0.15), -0.4, 0.4))
    upper = _rot(lean + float(np.clip(rng.normal(0.0, 0.1), -0.3, 0.3)))
    lower = _rot(lean)
    mid_sh = upper @ np.array([0.0, -torso])
    for side, (sh, el, wr, hip, kn, an) in ((1.0, (5, 7, 9, 11, 13, 15)), (-1.0, (6, 8, 10, 12, 14, 16))):
        j[sh] = mid_sh + upper @ np.array([side * sh_w, 0.0])
        a = rng.uniform(-0.5, 2.9)
        short = rng.uniform(0.55, 1.0) if rng.random() < 0.3 else 1.0
        j[el] = j[sh] + upper @ _limb(side, a) * upper_arm * short
        j[wr] = j[el] + upper @ _limb(side, a + rng.uniform(-0.6, 2.4)) * forearm
        j[hip] = lower @ np.array([side * hip_w, 0.0])
        a = rng.uniform(-0.15, 0.6)
        short = rng.uniform(0.5, 1.0) if rng.random() < 0.25 else 1.0
        j[kn] = j[hip] + lower @ _limb(side, a) * thigh * short
        j[an] = j[kn] + lower @ _limb(side, a + rng.uniform(-0.5, 0.9)) * shin
    rx, ry = 0.055 * height * rng.uniform(0.9, 1.1), 0.068 * height * rng.uniform(0.9, 1.1)
    centre = mid_sh + upper @ np.array([0.0, -neck])
    tilt = lean + float(rng.normal(0.0, 0.15))
    turn = rng.uniform(-0.3, 0.3) * rx
    face = np.array(
        [
            [turn * 0.8, 0.22 * ry],  # nose
            [0.38 * rx + turn * 0.5, -0.12 * ry],  # left eye (image right)
            [-0.38 * rx + turn * 0.5, -0.12 * ry],
            [0.98 * rx, 0.0],  # left ear
            [-0.98 * rx, 0.0],
        ]
    )
    j[:5] = centre + face @ _rot(tilt).T
    t = height * np.array([0.05, 0.042, 0.07, 0.055, 0.045])
    return {
        "joints": j,
        "centre": centre,
        "axes": (rx, ry),
        "tilt": tilt,
        "neck": mid_sh,
        "t_arm": t[0],
        "t_forearm": t[1],
        "t_thigh": t[2],
        "t_shin": t[3],
        "t_neck": t[4],
    }


def _fix(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * (1 << _SHIFT))), int(round(p[1] * (1 << _SHIFT)))


def _draw(canvas: np.ndarray, fig: dict, offset: np.ndarray, colours: dict | None) -> None:
    """Draw ``fig`` (from ``figure_pose``) placed at ``offset``; ``colours`` None draws a 1-mask."""
    j = fig["joints"] + offset

    def col(name: str) -> list[float] | int:
        return 1 if colours is None else colours[name].tolist()

    line_type = cv2.LINE_AA if colours is not None else cv2.LINE_8

    def seg(a: np.ndarray, b: np.ndarray, thick: float, c: str) -> None:
        cv2.line(canvas, _fix(a), _fix(b), col(c), max(2, int(round(thick))), line_type, _SHIFT)

    def dot(p: np.ndarray, r: float, c: str) -> None:
        cv2.circle(canvas, _fix(p), max(1, int(round(r * (1 << _SHIFT)))), col(c), -1, line_type, _SHIFT)

    height = fig["t_thigh"] / 0.07
    for side, (hip, kn, an) in (("r", (12, 14, 16)), ("l", (11, 13, 15))):
        seg(j[hip], j[kn], fig["t_thigh"], f"pants_{side}")
        seg(j[kn], j[an], fig["t_shin"], f"pants_{side}")
        foot = j[an] + np.array([0.045 if side == "l" else -0.045, 0.02]) * height
        seg(j[an], foot, 0.035 * height, "shoes")
    torso = np.stack([j[5], j[6], j[12], j[11]])
    cv2.fillPoly(canvas, [np.round(torso * (1 << _SHIFT)).astype(np.int32)], col("shirt"), line_type, _SHIFT)
    seg(fig["neck"] + offset, fig["centre"] + offset, fig["t_neck"], "skin")
    rx, ry = fig["axes"]
    dot(j[3], 0.3 * rx, "ear")
    dot(j[4], 0.3 * rx, "ear")
    centre = fig["centre"] + offset
    cv2.ellipse(
        canvas,
        _fix(centre),
        _fix(np.array([rx, ry])),
        float(np.rad2deg(fig["tilt"])),
        0,
        360,
        col("skin"),
        -1,
        line_type,
        _SHIFT,
    )
    if colours is not None:
        dot(j[1], max(0.6, 0.13 * rx), "eye")
        dot(j[2], max(0.6, 0.13 * rx), "eye")
        dot(j[0], max(0.6, 0.12 * rx), "ear")
    for side, (sh, el, wr) in (("r", (6, 8, 10)), ("l", (5, 7, 9))):
        seg(j[sh], j[el], fig["t_arm"], f"shirt_{side}")
        seg(j[el], j[wr], fig["t_forearm"], f"forearm_{side}")
        dot(j[wr], 0.6 * fig["t_forearm"] + 0.5, "skin")


def _colours(rng: np.random.Generator, avoid: np.ndarray) -> dict:
    """Colour set of one figure (BGR uint8 arrays), clothes contrasting with ``avoid`` (K, 3)."""
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1) if rng.random() < 0.7 else None
    if skin is None:
        skin = contrasting_colour(rng, avoid).astype(np.float32)
    shirt = contrasting_colour(rng, avoid)
    pants = contrasting_colour(rng, np.concatenate([avoid, shirt[None].astype(np.float32)]))
    bare = rng.random() < 0.5
    c = {
        "skin": shade(skin, 1.0),
        "ear": shade(skin, 0.8),
        "eye": np.array([25, 25, 25], np.uint8),
        "shirt": shirt,
        "shoes": shade(pants, 0.5),
    }
    for side, f in (("l", 1.2), ("r", 0.8)):
        c[f"shirt_{side}"] = shade(shirt, f)
        c[f"pants_{side}"] = shade(pants, f)
        c[f"forearm_{side}"] = shade(skin, f) if bare else shade(shirt, f)
    return c


@dataclass(frozen=True)
class PersonRecord:
    """A drawn figure: ``joints`` (17, 2) float64 image px and the ``bbox`` [x, y, w, h] of its whole
    in-image mask (cv2.boundingRect convention)."""

    joints: np.ndarray
    bbox: np.ndarray

    def survives(self, canvas: Canvas, k: int, mask: np.ndarray, x0: int, y0: int) -> bool:
        """True when at least ``MIN_VISIBLE_JOINTS`` of its joints stay visible with ``mask`` in front."""
        kv = _visibility(self.joints, canvas.label, k, canvas.height, canvas.width)
        px = np.clip(np.round(self.joints).astype(int), 0, (canvas.width - 1, canvas.height - 1))
        hidden_now = (kv == 2) & mask_at(mask, x0, y0, px)
        return (kv == 2).sum() - hidden_now.sum() >= MIN_VISIBLE_JOINTS

    def annotation(self, canvas: Canvas, k: int) -> dict:
        """COCO person keypoint annotation (see the module docstring for the conventions)."""
        h, w = canvas.height, canvas.width
        bx, by, bw, bh = self.bbox
        v = _visibility(self.joints, canvas.label, k, h, w)
        kp = np.where((v > 0)[:, None], self.joints, 0.0)
        lab = kp[v > 0]
        x0, y0 = min(bx, np.floor(lab[:, 0].min())), min(by, np.floor(lab[:, 1].min()))
        x1 = max(bx + bw, np.floor(lab[:, 0].max()) + 1)
        y1 = max(by + bh, np.floor(lab[:, 1].max()) + 1)
        kps = np.concatenate([np.round(kp, 2), v[:, None].astype(np.float64)], 1)
        return {
            "category_id": 1,
            "keypoints": kps.reshape(-1).tolist(),
            "num_keypoints": int((v > 0).sum()),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            "area": float(canvas.visible[k]),
            "segmentation": mask_polygons(canvas.label == k + 1),
            "iscrowd": 0,
        }


def place_person(rng: np.random.Generator, canvas: Canvas, height: float) -> bool:
    """Draw one random figure ``height`` px tall onto ``canvas``, in front of what is there.

    Up to ``ATTEMPTS`` placements are drawn; one is redrawn when fewer than
    ``MIN_JOINTS_INSIDE`` joints fall inside the image, when its box overlaps an earlier
    figure's with IoU > ``MAX_BOX_IOU``, or when it would break the visibility rule of an
    object already on the canvas. Returns whether a figure was placed.
    """
    h, w = canvas.height, canvas.width
    scratch = np.zeros((h, w), np.uint8)
    for _attempt in range(ATTEMPTS):
        fig = figure_pose(rng, height)
        pelvis = rng.uniform((0.05 * w, 0.2 * height), (0.95 * w, h - 0.15 * height))
        joints = fig["joints"] + pelvis
        inside = (joints[:, 0] >= 0) & (joints[:, 0] <= w - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= h - 1)
        if inside.sum() < MIN_JOINTS_INSIDE:
            continue
        scratch[:] = 0
        _draw(scratch, fig, pelvis, None)
        mask = scratch.astype(bool)
        covered = canvas.covered(mask)
        if not canvas.keeps_visible(covered, mask):
            continue
        bbox = np.array(cv2.boundingRect(scratch), np.float64)
        earlier = [r.bbox for r in canvas.records if isinstance(r, PersonRecord)]
        if earlier and _box_iou(bbox, np.stack(earlier)).max() > MAX_BOX_IOU:
            continue
        under = canvas.image[mask].reshape(-1, 3).mean(0)
        avoid = np.stack([under] + [canvas.colours[k] for k in np.flatnonzero(covered)]).astype(np.float32)
        cset = _colours(rng, avoid)
        _draw(canvas.image, fig, pelvis, cset)
        canvas.add(
            PersonRecord(joints, bbox),
            mask,
            0,
            0,
            int(mask.sum()),
            cset["shirt"].astype(np.float32),
            MIN_VISIBLE,
            covered,
        )
        return True
    return False


def person_heights(rng: np.random.Generator, n: int, max_height: float) -> list[float]:
    """``n`` random figure heights, ``MIN_HEIGHT`` .. ``max_height`` px (uniform in the square root),
    ascending: drawn in this order, the nearer (taller) figures come in front."""
    return np.sort(rng.uniform(np.sqrt(MIN_HEIGHT), np.sqrt(max_height), n) ** 2).tolist()


def _render(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[dict]]:
    """One image (H, W, 3) uint8 BGR and its person annotations (without ids)."""
    canvas = Canvas(textured_background(rng, h, w))
    max_height = max(MIN_HEIGHT + 1, MAX_HEIGHT_FRAC * h)
    n = int(rng.integers(1, MAX_PEOPLE + 1))
    for height in person_heights(rng, n, max_height):
        place_person(rng, canvas, height)
    return canvas.image, [ann for _, ann in canvas.annotations()]


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[x, y, w, h]`` box with (K, 4) boxes, (K,)."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y1 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter)


def _visibility(joints: np.ndarray, label: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """(17,) int visibility of figure ``k``'s joints: 0 outside, 1 under a later figure, 2 visible."""
    inside = (joints[:, 0] >= 0) & (joints[:, 0] <= w - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= h - 1)
    px = np.clip(np.round(joints).astype(int), 0, (w - 1, h - 1))
    owner = label[px[:, 1], px[:, 0]]
    return np.where(inside, np.where(owner > k + 1, 1, 2), 0)


def generate_people(
    root: Path,
    num_train: int = 1500,
    num_val: int = 150,
    image_size: tuple[int, int] = (256, 256),
    seed: int = 0,
    vary_size: bool = False,
) -> Path:
    """Write (or reuse) the synthetic people dataset in COCO keypoint format; return ``root``.

    Layout: ``root/annotations/person_keypoints_{train,val}.json``,
    ``root/{train,val}/NNNNNN.jpg`` and ``root/DONE`` (written last, holding these
    parameters). A folder whose marker matches the parameters is reused; otherwise it is
    cleaned and regenerated.

    image_size: (height, width) px of every image; with ``vary_size`` each image's sides
                are independently scaled by a random 0.7..1.3.
    seed:       same seed and parameters -> byte-identical annotation files and images.
    """
    params = generator_params("people", VERSION, num_train, num_val, image_size, seed, vary_size)
    return generate_coco_folder(
        Path(root),
        params,
        kind="person_keypoints",
        splits={"train": num_train, "val": num_val},
        render=_render,
        image_hw=lambda rng: jittered_size(rng, image_size, vary_size),
        categories=CATEGORIES,
        description="centerpoint_suite synthetic people",
    )
