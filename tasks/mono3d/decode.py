"""mono3d decode: top-K heatmap peaks -> 3D boxes, batched, each image with its own P2.

Per detection: keypoint (u, v) in original pixels (peak + offset through the inverse affine),
depth z = 1 / sigmoid(x) - 1 (times ``fx * zoom / depth_focal`` when the depth is focal
normalised), dimensions (h, w, l) as regressed, alpha from the two rotation bins (the bin
whose "in" logit is larger, as the original), then

    location   = unproject(u, v, z) with the image's P2, moved down by h / 2 (bottom centre);
    rotation_y = alpha + atan2(u - cx, fx).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from centerpoint_suite.errors import DataError
from centerpoint_suite.geometry import batch_apply_affine
from centerpoint_suite.heatmap import gather_at, topk_peaks
from centerpoint_suite.types import BatchMeta, Predictions

from .geometry3d import alpha_to_rotation_y, box3d_corners, project, unproject, wrap_angle
from .loss import decode_depth
from .targets import BIN_CENTERS


def alpha_from_bins(rot: np.ndarray) -> np.ndarray:
    """(..., 8) rotation outputs -> alpha (...) radians in [-pi, pi)."""
    use1 = rot[..., 1] > rot[..., 5]
    a1 = np.arctan2(rot[..., 2], rot[..., 3]) + BIN_CENTERS[0]
    a2 = np.arctan2(rot[..., 6], rot[..., 7]) + BIN_CENTERS[1]
    return wrap_angle(np.where(use1, a1, a2))


def decode_mono3d(
    preds: dict[str, Tensor],
    meta: BatchMeta,
    k: int = 100,
    center_mode: str = "box2d",
    depth_focal: float | None = None,
) -> list[Predictions]:
    """Raw maps of a batch -> one ``Predictions`` per image (original pixels, camera metres).

    extras: "dimensions" (K, 3) h, w, l; "location" (K, 3) bottom centre; "rotation_y" (K,);
    "alpha" (K,); "depth" (K,) camera z of the box centre; "corners" (K, 8, 2) projected
    box corners in pixels (NaN where a corner lies behind the camera).
    """
    if meta.calib is None:
        raise DataError(f"mono3d decode needs the camera calibration of every image ({meta.image_ids[:3]} ...)")
    with torch.no_grad():
        scores, classes, inds, ys, xs = topk_peaks(preds["heatmap"].float(), k)
        off = gather_at(preds["offset"].float(), inds)
        xs, ys = xs + off[..., 0], ys + off[..., 1]
        size = gather_at(preds["size"].float(), inds)
        if center_mode == "box2d":
            half = size[..., :2] / 2
            box = torch.stack([xs - half[..., 0], ys - half[..., 1], xs + half[..., 0], ys + half[..., 1]], -1)
        else:
            box = torch.stack([xs - size[..., 0], ys - size[..., 1], xs + size[..., 2], ys + size[..., 3]], -1)
        depth = decode_depth(gather_at(preds["depth"], inds))[..., 0]
        dims = gather_at(preds["dimensions"].float(), inds)
        rot = gather_at(preds["rotation"].float(), inds)
    b = len(meta)
    n = scores.shape[1]
    inverse = np.asarray(meta.inverse, np.float64)
    calib = np.asarray(meta.calib, np.float64)  # (B, 3, 4)
    centre = batch_apply_affine(inverse, torch.stack([xs, ys], -1).cpu().numpy()).astype(np.float64)
    corners2 = batch_apply_affine(inverse, box.cpu().numpy().reshape(b, n, 2, 2))
    boxes = np.concatenate([corners2.min(axis=2), corners2.max(axis=2)], -1)
    hw = np.asarray(meta.image_hw, np.float32)
    boxes[..., [0, 2]] = boxes[..., [0, 2]].clip(0, hw[:, None, 1:2])
    boxes[..., [1, 3]] = boxes[..., [1, 3]].clip(0, hw[:, None, 0:1])
    z = depth.cpu().numpy().astype(np.float64)
    if depth_focal is not None:
        zoom = 1.0 / np.sqrt(np.abs(np.linalg.det(inverse[:, :, :2])))  # cells per pixel
        z = z * (calib[:, 0, 0] * zoom / depth_focal)[:, None]
    dims_np = dims.cpu().numpy().astype(np.float64)
    alpha = alpha_from_bins(rot.cpu().numpy().astype(np.float64))
    location = unproject(centre, z, calib[:, None])
    location[..., 1] += dims_np[..., 0] / 2
    rotation_y = alpha_to_rotation_y(alpha, centre[..., 0], calib[:, None])
    corners3 = box3d_corners(dims_np.reshape(-1, 3), location.reshape(-1, 3), rotation_y.reshape(-1)).reshape(
        b, n, 8, 3
    )
    uv, w = project(corners3, calib)
    uv[w <= 0.1] = np.nan
    scores_np = scores.cpu().numpy()
    classes_np = classes.cpu().numpy()
    out = []
    for i in range(b):
        extras = {
            "dimensions": dims_np[i].astype(np.float32),
            "location": location[i].astype(np.float32),
            "rotation_y": rotation_y[i].astype(np.float32),
            "alpha": alpha[i].astype(np.float32),
            "depth": z[i].astype(np.float32),
            "corners": uv[i].astype(np.float32),
        }
        out.append(Predictions(meta.image_ids[i], boxes[i].astype(np.float32), scores_np[i], classes_np[i], extras))
    return out
