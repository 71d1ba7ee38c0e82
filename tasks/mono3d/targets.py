"""mono3d targets: class heatmaps at a keypoint per object, plus 2D size, sub-cell offset,
depth, dimensions and the two-bin rotation encoding, aligned to the same object slots.

Keypoint (``center_mode``):

- ``"box2d"`` (the original CenterNet): the centre of the 2D box (clipped to the map);
  decode then unprojects that point as if it were the 3D centre, which it is not exactly.
- ``"projected3d"`` (later monocular methods, e.g. SMOKE, MonoFlex): the projection of the 3D
  box centre; objects whose projected centre leaves the output map get no slot. The 2D box is
  then regressed as its 4 distances left, top, right, bottom from the keypoint (``size`` has
  4 channels instead of w, h).

Objects of a target class that get no slot (keypoint off the map, more than ``max_objects``)
become heatmap ignore regions of their class, never background.

Rotation (the original's two overlapping bins, alpha in radians): bin 1 is centred at
-pi/2 and holds alpha < pi/6 or alpha > 5 pi/6; bin 2 is centred at +pi/2 and holds
alpha > -pi/6 or alpha < -5 pi/6 (each bin spans 240 degrees, they overlap by 60 degrees
on both sides). The 8 channels are (bin 1 out/in logits, sin, cos of alpha - centre 1,
bin 2 out/in logits, sin, cos of alpha - centre 2). A horizontal mirror maps alpha to
pi - alpha.
"""

from __future__ import annotations

import numpy as np

from centerpoint_suite.centers import center_targets
from centerpoint_suite.errors import DataError
from centerpoint_suite.geometry import affine_boxes
from centerpoint_suite.heatmap import fill_boxes
from centerpoint_suite.types import OutputGeometry, Sample

from .geometry3d import focal_in_cells, projected_centers, wrap_angle

#: centres of the two rotation bins (radians)
BIN_CENTERS = np.array([-0.5 * np.pi, 0.5 * np.pi])


def rotation_bins(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha (N,) radians -> (in-bin flags (N, 2) int64, residuals alpha - centre (N, 2) float32).

    Both residuals are returned for every object (only sin/cos of them are used); the loss
    supervises a bin's residual only where its flag is 1.
    """
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    in1 = (a < np.pi / 6) | (a > 5 * np.pi / 6)
    in2 = (a > -np.pi / 6) | (a < -5 * np.pi / 6)
    bins = np.stack([in1, in2], axis=1).astype(np.int64)
    res = (a[:, None] - BIN_CENTERS[None, :]).astype(np.float32)
    return bins, res


def depth_scale(calib: np.ndarray, trans_output: np.ndarray, depth_focal: float | None) -> float:
    """Factor regressed depth = camera z * factor: ``depth_focal / (fx * zoom)``, or 1 (raw z)."""
    if depth_focal is None:
        return 1.0
    return float(depth_focal / focal_in_cells(calib, trans_output))


def build_mono3d_targets(
    sample: Sample,
    geometry: OutputGeometry,
    num_classes: int,
    max_objects: int,
    center_mode: str = "box2d",
    radius_formula: str = "cornernet",
    min_overlap: float = 0.7,
    depth_focal: float | None = None,
) -> dict[str, np.ndarray]:
    """Targets of one sample; cells of the output map, M = ``max_objects`` slots.

    heatmap (C, H, W) f32, heatmap_ignore (C, H, W) u8, indices (M,) i64, mask (M,) u8,
    offset (M, 2) f32, size (M, 2) w, h cells ("box2d") or (M, 4) l, t, r, b cells
    ("projected3d"), depth (M, 1) f32 (camera z in metres times ``depth_scale``),
    dimensions (M, 3) h, w, l metres, rotation_bin (M, 2) i64, rotation_res (M, 2) f32.
    """
    if center_mode not in ("box2d", "projected3d"):
        raise ValueError(f"unknown center_mode {center_mode!r}; use 'box2d' or 'projected3d'")
    n = len(sample)
    obj = sample.objects3d or {}
    if n and not all(k in obj for k in ("dimensions", "location", "alpha")):
        raise DataError(f"{sample.path or sample.image_id}: mono3d needs objects3d dimensions, location, alpha")
    need_calib = center_mode == "projected3d" or depth_focal is not None
    if need_calib and sample.calib is None:
        raise DataError(f"{sample.path or sample.image_id}: no camera calibration (P2) for mono3d targets")
    centers = None
    if center_mode == "projected3d":
        if n:
            centers, w = projected_centers(obj["dimensions"], obj["location"], sample.calib)
            centers = np.where((w > 0.1)[:, None], centers, np.nan)  # behind the camera: no keypoint
        else:
            centers = np.zeros((0, 2))
    ct = center_targets(sample, geometry, num_classes, max_objects, radius_formula, min_overlap, centers)
    t = ct.targets
    kept = ct.kept
    # objects that got no slot (keypoint off the map, beyond max_objects) are not background:
    # their box becomes an ignore region of their class, like the neighbour classes
    placeable = (~sample.ignore.astype(bool)) & (sample.classes >= 0) & (sample.classes < num_classes)
    placeable[kept] = False
    if placeable.any():
        out_h, out_w = geometry.output_hw
        boxes = affine_boxes(geometry.trans_output, sample.boxes[placeable])
        # clip to the map's outer edge as center_targets does (clipping to out_w - 1 turned a box
        # lying wholly right of / below the crop into a whole ignored border column / row)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, out_w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, out_h)
        fill_boxes(t["heatmap_ignore"], sample.classes[placeable].astype(np.int64), boxes)
    m = len(kept)
    depth = np.zeros((max_objects, 1), np.float32)
    dims = np.zeros((max_objects, 3), np.float32)
    rot_bin = np.zeros((max_objects, 2), np.int64)
    rot_res = np.zeros((max_objects, 2), np.float32)
    if m:
        scale = depth_scale(sample.calib, geometry.trans_output, depth_focal) if depth_focal is not None else 1.0
        depth[:m, 0] = np.asarray(obj["location"], np.float64)[kept, 2] * scale
        dims[:m] = np.asarray(obj["dimensions"], np.float32)[kept]
        alpha = np.asarray(obj["alpha"], np.float64)[kept]
        if geometry.flipped:
            alpha = wrap_angle(np.pi - alpha)
        rot_bin[:m], rot_res[:m] = rotation_bins(alpha)
    if center_mode == "projected3d":
        ltrb = np.zeros((max_objects, 4), np.float32)
        ltrb[:m, :2] = ct.centers - ct.boxes[:, :2]
        ltrb[:m, 2:] = ct.boxes[:, 2:] - ct.centers
        t["size"] = ltrb
    t.update({"depth": depth, "dimensions": dims, "rotation_bin": rot_bin, "rotation_res": rot_res})
    return t
