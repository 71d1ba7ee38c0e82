"""Pictures of monocular 3D detections: boxes projected on the image and a bird's-eye view.

``draw_mono3d`` returns the image with the projected 3D boxes (front face crossed) and, to
its right, a bird's-eye-view (BEV) panel of the same height: the x-z ground plane seen from
above, camera at the bottom centre, z forward (up in the panel), 10 m grid, each box
footprint with a heading tick. Ground truth, when given, is drawn in white beneath.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from centerpoint_suite.types import Predictions

from .geometry3d import BOX_EDGES, box3d_corners, project

GT_COLOUR = (255, 255, 255)


def class_colour(index: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class index (golden-angle hue steps)."""
    hue = int((index * 137.508 + 20) % 180)
    b, g, r = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_projected_box(image: np.ndarray, corners: np.ndarray, colour: tuple[int, int, int], thick: int = 1) -> None:
    """Draw one box from its 8 projected corners (8, 2) pixels in place; front face crossed.
    Skipped when a corner is not finite (behind the camera)."""
    if not np.all(np.isfinite(corners)) or np.abs(corners).max() > 1e5:
        return
    pts = np.round(corners * 16).astype(np.int32)  # 4 fractional bits for cv2's shift
    for a, b in BOX_EDGES:
        cv2.line(image, tuple(pts[a]), tuple(pts[b]), colour, thick, cv2.LINE_AA, shift=4)
    for a, b in ((0, 5), (1, 4)):  # cross on the front face
        cv2.line(image, tuple(pts[a]), tuple(pts[b]), colour, 1, cv2.LINE_AA, shift=4)


def bev_panel(
    size_hw: tuple[int, int],
    boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]],
    max_depth: float = 60.0,
    half_width: float | None = None,
) -> np.ndarray:
    """A BEV picture (H, W, 3) uint8 of boxes given as (dimensions, location, rotation_y, colour).

    Metres -> pixels: z in [0, max_depth] runs bottom to top, x in [-half_width, half_width]
    left to right (half_width defaults to the panel's aspect times max_depth / 2).
    """
    h, w = size_hw
    panel = np.full((h, w, 3), 32, np.uint8)
    scale = (h - 10) / max_depth
    half_width = half_width if half_width is not None else w / (2 * scale)

    def to_px(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.stack([w / 2 + x * scale, h - 5 - z * scale], -1)

    for zz in np.arange(10, max_depth + 1e-6, 10):
        y = int(round(h - 5 - zz * scale))
        cv2.line(panel, (0, y), (w - 1, y), (64, 64, 64), 1)
        cv2.putText(panel, f"{zz:.0f}m", (2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (110, 110, 110), 1, cv2.LINE_AA)
    for xx in np.arange(-np.floor(half_width / 10) * 10, half_width + 1e-6, 10):
        x = int(round(w / 2 + xx * scale))
        cv2.line(panel, (x, 0), (x, h - 1), (48, 48, 48), 1)
    cam = to_px(np.zeros(1), np.zeros(1))[0]
    for sx in (-1, 1):  # rough field of view of KITTI's camera (about +-40 degrees)
        end = to_px(np.array([sx * max_depth * 0.84]), np.array([max_depth]))[0]
        cv2.line(panel, tuple(np.round(cam).astype(int)), tuple(np.round(end).astype(int)), (80, 80, 80), 1)
    for dims, loc, ry, colour in boxes:
        if len(dims) == 0:
            continue
        corners = box3d_corners(dims, loc, ry)[:, :4, :]  # bottom face (N, 4, 3)
        pts = to_px(corners[..., 0], corners[..., 2])
        front = (pts[:, 0] + pts[:, 1]) / 2
        ctr = pts.mean(axis=1)
        for i in range(len(pts)):
            if not np.all(np.isfinite(pts[i])) or np.abs(pts[i]).max() > 1e5:
                continue
            poly = np.round(pts[i] * 16).astype(np.int32)
            cv2.polylines(panel, [poly], True, colour, 1, cv2.LINE_AA, shift=4)
            a, b = np.round(ctr[i] * 16).astype(np.int32), np.round(front[i] * 16).astype(np.int32)
            cv2.line(panel, tuple(a), tuple(b), colour, 1, cv2.LINE_AA, shift=4)
    return panel


def draw_mono3d(
    image: np.ndarray,
    pred: Predictions,
    classes: tuple[str, ...],
    score_threshold: float = 0.3,
    gt: dict[str, np.ndarray] | None = None,
    calib: np.ndarray | None = None,
) -> np.ndarray:
    """Image with projected 3D boxes + BEV panel to the right, (H, W + H * 1.2, 3) uint8 BGR.

    pred: decoded detections (extras "corners", "dimensions", "location", "rotation_y").
    gt: optional {"dimensions", "location", "rotation_y"} (N, ...) drawn in white (needs ``calib``
    (3, 4) to project them on the image).
    """
    out = image.copy()
    h = out.shape[0]
    thick = max(1, round(min(out.shape[:2]) / 250))
    keep = pred.extras.get("score2d", pred.scores) >= score_threshold  # the detection score, see Predictions
    bev_boxes = []
    if gt is not None and len(gt["dimensions"]):
        if calib is not None:
            corners = box3d_corners(gt["dimensions"], gt["location"], gt["rotation_y"])
            uv, w = project(corners, calib)
            uv[w <= 0.1] = np.nan
            for c in uv:
                draw_projected_box(out, c, GT_COLOUR, 1)
        bev_boxes.append((gt["dimensions"], gt["location"], gt["rotation_y"], GT_COLOUR))
    ex = pred.extras
    for i in np.flatnonzero(keep)[::-1]:  # strongest drawn last (on top)
        cls = int(pred.classes[i])
        colour = class_colour(cls)
        if "corners" in ex:
            draw_projected_box(out, ex["corners"][i], colour, thick)
        name = classes[cls] if cls < len(classes) else str(cls)
        x1, y1 = int(pred.boxes[i, 0]), int(pred.boxes[i, 1])
        label = f"{name} {pred.scores[i]:.2f}"
        if "depth" in ex:
            label += f" {float(ex['depth'][i]):.1f}m"
        cv2.putText(out, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    if "location" in ex:
        for i in np.flatnonzero(keep):
            colour = class_colour(int(pred.classes[i]))
            bev_boxes.append(
                (ex["dimensions"][i : i + 1], ex["location"][i : i + 1], ex["rotation_y"][i : i + 1], colour)
            )
    panel = bev_panel((h, int(round(h * 1.2))), bev_boxes)
    return np.concatenate([out, panel], axis=1)


def save_png(path: str | Path, picture: np.ndarray) -> None:
    """Write a BGR picture as PNG (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path.with_suffix(".png")), picture):
        raise OSError(f"cannot write {path}")
