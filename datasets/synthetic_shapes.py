"""Built-in synthetic 2D box dataset: coloured shapes on textured backgrounds, COCO format.

Five classes told apart by outline only (colours are random): circle (slightly elliptic),
rectangle (aspect 1:3..3:1), triangle, star and cross, each at a random rotation. One to
eight objects per image, 16 px up to 0.6 x the short image side (uniform in the square root
of the size: median about 70 px at 256 x 256, a fifth under 32 px), drawn in
turn so later shapes occlude earlier ones; shapes may be cut by the image border.

Annotation conventions (as COCO):
- ``bbox`` ``[x, y, w, h]`` is the amodal box of the whole shape (parts hidden behind later
  shapes included), clipped to the image, in the pycocotools mask convention (covers pixel
  columns x..x+w-1);
- ``area`` and ``segmentation`` (outer polygons) describe the visible pixels;
- a placement is redrawn elsewhere when the image border would cut off more than 40% of
  the new shape, or when it would leave an earlier shape less than 40% visible (relative to
  the whole shape); an object under 30% visible is never annotated. So every annotated
  shape stays recognisable.

``place_shape`` draws one shape onto a ``Canvas`` (``synthetic_canvas``); the mixed
scenes generator (``synthetic_scenes``) uses it with people on the same canvas.

Usage::

    root = generate_shapes(Path("data/shapes"))       # ~10 s for 2000 + 200 images
    CocoSource(root, "train")                          # centerpoint_suite.datasets.coco
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .synthetic_canvas import Canvas
from .synthetic_common import (
    contrasting_colour,
    generate_coco_folder,
    generator_params,
    jittered_size,
    mask_bbox,
    mask_polygons,
    textured_background,
)

VERSION = 1
CLASSES = ("circle", "rectangle", "triangle", "star", "cross")
CATEGORIES = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)]
MIN_SIZE = 16.0  # px, longest side of the shape's own box
MAX_SIZE_FRAC = 0.6  # of the short image side
MAX_OBJECTS = 8
MIN_INSIDE = 0.6  # placements cut by the image border to less than this are redrawn
MIN_VISIBLE = 0.4  # placements leaving a shape less visible than this are redrawn
DROP_VISIBLE = 0.3  # never annotate a shape less visible than this
ATTEMPTS = 10

# (low, high) aspect ratio (width / height before rotation) per class
_ASPECT = {"circle": (0.75, 1.33), "rectangle": (0.33, 3.0), "triangle": (0.7, 1.4), "star": (0.8, 1.25)}
_ASPECT["cross"] = (0.8, 1.25)
_CIRCLE = np.stack(
    [np.cos(np.linspace(0, 2 * np.pi, 48, endpoint=False)), np.sin(np.linspace(0, 2 * np.pi, 48, endpoint=False))], 1
)


def _unit_outline(rng: np.random.Generator, name: str) -> np.ndarray:
    """(N, 2) polygon of one shape in a unit frame (about -1..1), before aspect and rotation."""
    if name == "circle":
        return _CIRCLE
    if name == "rectangle":
        return np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    if name == "triangle":
        gaps = rng.uniform(85.0, 155.0, 3)
        angles = np.deg2rad(rng.uniform(0, 360) + np.cumsum(gaps * 360.0 / gaps.sum()))
        radii = rng.uniform(0.85, 1.0, 3)
        return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
    if name == "star":
        k = np.arange(10)
        radii = np.where(k % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        angles = k * np.pi / 5
        return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], 1)
    t = rng.uniform(0.28, 0.38)  # cross: half the arm width
    q = np.array([[t, 1.0], [t, t], [1.0, t]])
    return np.concatenate([q, q[:, ::-1] * [1, -1], -q, q[:, ::-1] * [-1, 1]])


def shape_polygon(rng: np.random.Generator, class_index: int, size: float, centre: tuple[float, float]) -> np.ndarray:
    """(N, 2) float64 image-pixel polygon of a random instance of ``CLASSES[class_index]``.

    size: longest side (px) of the shape's own axis-aligned box; centre: (x, y) of that box.
    """
    name = CLASSES[class_index]
    pts = _unit_outline(rng, name)
    a = np.sqrt(rng.uniform(*_ASPECT[name]))
    pts = pts * (a, 1.0 / a)
    phi = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(phi), np.sin(phi)
    pts = pts @ np.array([[c, s], [-s, c]])
    lo, hi = pts.min(0), pts.max(0)
    pts = (pts - (lo + hi) / 2) * (size / (hi - lo).max())
    return pts + centre


@dataclass(frozen=True)
class ShapeRecord:
    """A drawn shape: class index and its whole mask ``mask`` (h, w) uint8 with top-left pixel (x0, y0)."""

    cls: int
    x0: int
    y0: int
    mask: np.ndarray

    def survives(self, canvas: Canvas, k: int, mask: np.ndarray, x0: int, y0: int) -> bool:
        return True  # the visible pixel fraction is the whole rule of a shape

    def annotation(self, canvas: Canvas, k: int) -> dict | None:
        """``category_id`` (class index + 1), amodal ``bbox``, visible ``area`` and ``segmentation``."""
        if canvas.visible[k] < DROP_VISIBLE * canvas.full[k]:
            return None
        x0, y0, mask = self.x0, self.y0, self.mask
        ix0, iy0 = max(x0, 0), max(y0, 0)
        ix1, iy1 = min(x0 + mask.shape[1], canvas.width), min(y0 + mask.shape[0], canvas.height)
        inside = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
        seen = canvas.label[iy0:iy1, ix0:ix1] == k + 1
        return {
            "category_id": self.cls + 1,
            "bbox": mask_bbox(inside, ix0, iy0),
            "area": float(canvas.visible[k]),
            "segmentation": mask_polygons(seen, ix0, iy0),
            "iscrowd": 0,
        }


def place_shape(rng: np.random.Generator, canvas: Canvas, max_size: float) -> bool:
    """Draw one random shape (longest side ``MIN_SIZE`` .. ``max_size`` px) onto ``canvas``, in front.

    Up to ``ATTEMPTS`` placements are drawn; one is redrawn when the image border would cut
    off more than ``1 - MIN_INSIDE`` of the shape or when it would break the visibility rule
    of an object already on the canvas. Returns whether a shape was placed.
    """
    h, w = canvas.height, canvas.width
    for _attempt in range(ATTEMPTS):
        cls = int(rng.integers(len(CLASSES)))
        size = float(rng.uniform(np.sqrt(MIN_SIZE), np.sqrt(max_size)) ** 2)
        centre = rng.uniform((-0.1 * size, -0.1 * size), (w + 0.1 * size, h + 0.1 * size))
        poly = shape_polygon(rng, cls, size, tuple(centre))
        x0, y0 = np.floor(poly.min(0)).astype(int) - 1
        x1, y1 = np.ceil(poly.max(0)).astype(int) + 2
        pts = np.round((poly - (x0, y0)) * 16).astype(np.int32)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, 4)
        area = int(mask.sum())
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if area == 0 or ix1 <= ix0 or iy1 <= iy0:
            continue
        inside = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(bool)
        if inside.sum() < MIN_INSIDE * area:
            continue
        covered = canvas.covered(inside, ix0, iy0)
        if not canvas.keeps_visible(covered, inside, ix0, iy0):
            continue
        under = canvas.image[iy0:iy1, ix0:ix1][inside].reshape(-1, 3).mean(0)
        avoid = [under] + [canvas.colours[j] for j in np.flatnonzero(covered)]
        colour = contrasting_colour(rng, np.stack(avoid))
        cv2.fillPoly(canvas.image, [np.round(poly * 16).astype(np.int32)], colour.tolist(), cv2.LINE_AA, 4)
        record = ShapeRecord(cls, int(x0), int(y0), mask)
        canvas.add(record, inside, int(ix0), int(iy0), area, colour.astype(np.float32), MIN_VISIBLE, covered)
        return True
    return False


def _render(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[dict]]:
    """One image (H, W, 3) uint8 BGR and its annotations (without ids)."""
    canvas = Canvas(textured_background(rng, h, w))
    max_size = max(MIN_SIZE + 1, MAX_SIZE_FRAC * min(h, w))
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        place_shape(rng, canvas, max_size)
    return canvas.image, [ann for _, ann in canvas.annotations()]


def generate_shapes(
    root: Path,
    num_train: int = 2000,
    num_val: int = 200,
    image_size: tuple[int, int] = (256, 256),
    seed: int = 0,
    vary_size: bool = False,
) -> Path:
    """Write (or reuse) the synthetic shapes dataset in COCO format under ``root``; return ``root``.

    Layout: ``root/annotations/instances_{train,val}.json``, ``root/{train,val}/NNNNNN.jpg``
    and ``root/DONE`` (written last, holding these parameters). A folder whose marker
    matches the parameters is reused as is; otherwise it is cleaned and regenerated.

    image_size: (height, width) px of every image; with ``vary_size`` each image's sides
                are independently scaled by a random 0.7..1.3.
    seed:       same seed and parameters -> byte-identical annotation files and images.
    """
    params = generator_params("shapes", VERSION, num_train, num_val, image_size, seed, vary_size)
    return generate_coco_folder(
        Path(root),
        params,
        kind="instances",
        splits={"train": num_train, "val": num_val},
        render=_render,
        image_hw=lambda rng: jittered_size(rng, image_size, vary_size),
        categories=CATEGORIES,
        description="centerpoint_suite synthetic shapes",
    )
