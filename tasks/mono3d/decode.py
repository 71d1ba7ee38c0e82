"""mono3d decode: top-K heatmap peaks -> 3D boxes, batched, each image with its own P2.

Two halves: ``decode_mono3d_tensors`` (pure torch, fixed K, exportable: keypoint, network
depth, dimensions, alpha, 2D box) and ``mono3d_predictions`` (numpy: inverse affine and
everything that needs the camera).

Per detection: keypoint (u, v) in original pixels (peak + offset through the inverse affine),
depth z = 1 / sigmoid(x) - 1 (times ``fx * zoom / depth_focal`` when the depth is focal
normalised), dimensions (h, w, l) as regressed, alpha from the two rotation bins (the bin
whose "in" logit is larger, as the original), then

    location   = unproject(u, v, z) with the image's P2, moved down by h / 2 (bottom centre);
    rotation_y = alpha + atan2(u - cx, fx).

With a ``depth_uncertainty`` head, each detection also has the depth's standard deviation
sigma (metres: exp(s), scaled like the depth), and its score becomes the heatmap score times
the depth confidence exp(-sigma) (as GUPNet ranks its boxes), so boxes whose depth is
uncertain rank below well-placed ones; ``extras["score2d"]`` keeps the heatmap score.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from centerpoint_suite.centers import boxes_to_original, points_to_original
from centerpoint_suite.errors import DataError
from centerpoint_suite.heatmap import gather_at, topk_peaks
from centerpoint_suite.types import BatchMeta, Predictions

from .geometry3d import alpha_to_rotation_y, box3d_corners, project, unproject, wrap_angle
from .loss import decode_depth, depth_log_scale
from .targets import BIN_CENTERS


def alpha_from_bins(rot: np.ndarray) -> np.ndarray:
    """(..., 8) rotation outputs -> alpha (...) radians in [-pi, pi)."""
    use1 = rot[..., 1] > rot[..., 5]
    a1 = np.arctan2(rot[..., 2], rot[..., 3]) + BIN_CENTERS[0]
    a2 = np.arctan2(rot[..., 6], rot[..., 7]) + BIN_CENTERS[1]
    return wrap_angle(np.where(use1, a1, a2))


def alpha_from_bins_torch(rot: Tensor) -> Tensor:
    """``alpha_from_bins`` in torch (exportable): (..., 8) -> alpha (...) radians in [-pi, pi)."""
    use1 = rot[..., 1] > rot[..., 5]
    a1 = torch.atan2(rot[..., 2], rot[..., 3]) + float(BIN_CENTERS[0])
    a2 = torch.atan2(rot[..., 6], rot[..., 7]) + float(BIN_CENTERS[1])
    a = torch.where(use1, a1, a2)
    return torch.where(a >= math.pi, a - 2 * math.pi, torch.where(a < -math.pi, a + 2 * math.pi, a))


def merge_mirrored_rotation(rot: Tensor, rot_mirrored: Tensor, max_gap: float = 0.5 * math.pi) -> Tensor:
    """The rotation maps of a pass and its mirrored pass merged cell by cell.

    rot: (B, 8, H, W) direct pass; rot_mirrored: the mirrored pass's map already flipped back
    (width axis), whose angle reads pi - alpha (a mirror maps alpha to pi - alpha). Each cell
    takes the circular mean of the two angles when they lie within ``max_gap`` of each other,
    else the direct angle (a front/back disagreement has no meaningful mean). The result keeps
    the direct pass's bin logits and writes both bins' sin/cos residuals exactly, so either bin
    decodes to the merged angle.
    """
    a = alpha_from_bins_torch(rot.movedim(1, -1).double())
    b = math.pi - alpha_from_bins_torch(rot_mirrored.movedim(1, -1).double())
    gap = torch.atan2(torch.sin(a - b), torch.cos(a - b)).abs()
    mean = torch.atan2(torch.sin(a) + torch.sin(b), torch.cos(a) + torch.cos(b))
    merged = torch.where(gap < max_gap, mean, a)
    out = rot.clone()
    for bin_, centre in enumerate(BIN_CENTERS):
        out[:, 4 * bin_ + 2] = torch.sin(merged - float(centre)).to(rot.dtype)
        out[:, 4 * bin_ + 3] = torch.cos(merged - float(centre)).to(rot.dtype)
    return out


#: the fields of ``decode_mono3d_tensors`` (B = batch, K = top-K)
MONO3D_FIELDS: dict[str, str] = {
    "boxes": "(B, K, 4) float32 2D box x1, y1, x2, y2 in {frame}",
    "scores": "(B, K) float32 sigmoid score, descending",
    "classes": "(B, K) int64 class index",
    "center": "(B, K, 2) float32 x, y in {frame} of the heatmap keypoint (2D box centre or projected 3D centre)",
    "depth": "(B, K) float32 network depth 1 / sigmoid(x) - 1: camera z in metres, or with depth_focal "
    "set z * depth_focal / (fx * zoom) (multiply by fx * zoom / depth_focal, zoom = output cells per "
    "original pixel)",
    "dimensions": "(B, K, 3) float32 h, w, l metres",
    "alpha": "(B, K) observation angle, radians in [-pi, pi) (float64 in Python, float32 exported)",
}

#: the extra field with a ``depth_uncertainty`` head
DEPTH_SCALE_FIELD: dict[str, str] = {
    "depth_log_scale": "(B, K) float32 log of the depth's standard deviation, in the units of 'depth' "
    "(sigma = exp(value), scaled to metres like 'depth'); final score = score * exp(-sigma in metres)",
}


def decode_mono3d_tensors(
    preds: dict[str, Tensor], k: int = 100, center_mode: str = "box2d", scale: float = 1.0
) -> dict[str, Tensor]:
    """Raw maps of a batch -> top-``k`` detections (pure torch, fixed K, exportable).

    Returns ``MONO3D_FIELDS``; boxes and center in output cells times ``scale``. What needs
    the camera (location, rotation_y) is left to ``mono3d_predictions``.
    """
    scores, classes, inds, ys, xs = topk_peaks(preds["heatmap"].float(), k)
    off = gather_at(preds["offset"].float(), inds)
    xs, ys = xs + off[..., 0], ys + off[..., 1]
    size = gather_at(preds["size"].float(), inds)
    if center_mode == "box2d":
        half = size[..., :2] / 2
        box = torch.stack([xs - half[..., 0], ys - half[..., 1], xs + half[..., 0], ys + half[..., 1]], -1)
    else:
        box = torch.stack([xs - size[..., 0], ys - size[..., 1], xs + size[..., 2], ys + size[..., 3]], -1)
    # alpha in float64 as the numpy decoder always did; float32 in an exported graph
    # (onnxruntime has no float64 Atan)
    rot = gather_at(preds["rotation"].float(), inds)
    extra = {}
    if "depth_uncertainty" in preds:
        extra["depth_log_scale"] = depth_log_scale(gather_at(preds["depth_uncertainty"], inds))[..., 0]
    return {
        "boxes": box * scale,
        "scores": scores,
        "classes": classes,
        "center": torch.stack([xs, ys], -1) * scale,
        "depth": decode_depth(gather_at(preds["depth"], inds))[..., 0],
        "dimensions": gather_at(preds["dimensions"].float(), inds),
        "alpha": alpha_from_bins_torch(rot if torch.compiler.is_exporting() else rot.double()),
        **extra,
    }


def mono3d_predictions(
    dets: dict[str, np.ndarray], meta: BatchMeta, depth_focal: float | None = None, scale: float = 1.0
) -> list[Predictions]:
    """``decode_mono3d_tensors`` output (numpy) -> one ``Predictions`` per image (original
    pixels, camera metres), with each image's P2 (``meta.calib``).

    extras: "dimensions" (K, 3) h, w, l; "location" (K, 3) bottom centre; "rotation_y" (K,);
    "alpha" (K,); "depth" (K,) camera z of the box centre; "corners" (K, 8, 2) projected
    box corners in pixels (NaN where a corner lies behind the camera).
    """
    if meta.calib is None:
        raise DataError(f"mono3d decode needs the camera calibration of every image ({meta.image_ids[:3]} ...)")
    b = len(meta)
    inverse = np.asarray(meta.inverse, np.float64)
    calib = np.asarray(meta.calib, np.float64)  # (B, 3, 4)
    centre = points_to_original(dets["center"], meta, scale).astype(np.float64)
    boxes = boxes_to_original(dets["boxes"], meta, scale)
    n = boxes.shape[1]
    z = np.asarray(dets["depth"]).astype(np.float64)
    to_metres = np.ones((b, 1))
    if depth_focal is not None:
        zoom = 1.0 / np.sqrt(np.abs(np.linalg.det(inverse[:, :, :2])))  # cells per pixel
        to_metres = (calib[:, 0, 0] * zoom / depth_focal)[:, None]
    z = z * to_metres
    dims_np = np.asarray(dets["dimensions"]).astype(np.float64)
    alpha = np.asarray(dets["alpha"]).astype(np.float64)
    location = unproject(centre, z, calib[:, None])
    location[..., 1] += dims_np[..., 0] / 2
    rotation_y = alpha_to_rotation_y(alpha, centre[..., 0], calib[:, None])
    corners3 = box3d_corners(dims_np.reshape(-1, 3), location.reshape(-1, 3), rotation_y.reshape(-1)).reshape(
        b, n, 8, 3
    )
    uv, w = project(corners3, calib)
    uv[w <= 0.1] = np.nan
    scores_np, classes_np = np.asarray(dets["scores"]), np.asarray(dets["classes"])
    order = np.broadcast_to(np.arange(n), (b, n))
    more = {}
    if "depth_log_scale" in dets:
        sigma = np.exp(np.asarray(dets["depth_log_scale"], np.float64)) * to_metres
        more = {"score2d": scores_np, "depth_sigma": sigma.astype(np.float32)}
        scores_np = (scores_np * np.exp(-sigma)).astype(np.float32)
        order = np.argsort(-scores_np, axis=1, kind="stable")
    out = []
    for i in range(b):
        extras = {
            "dimensions": dims_np[i].astype(np.float32),
            "location": location[i].astype(np.float32),
            "rotation_y": rotation_y[i].astype(np.float32),
            "alpha": alpha[i].astype(np.float32),
            "depth": z[i].astype(np.float32),
            "corners": uv[i].astype(np.float32),
            **{k: v[i] for k, v in more.items()},
        }
        pred = Predictions(meta.image_ids[i], boxes[i].astype(np.float32), scores_np[i], classes_np[i], extras)
        out.append(pred.select(order[i]) if more else pred)
    return out
