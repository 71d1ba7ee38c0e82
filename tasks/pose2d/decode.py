"""pose2d decode (batched): person peaks -> boxes + regressed joints, each joint snapped to
a nearby joint-heatmap peak under the original's three rules (``decode_pose_tensors``: pure
torch, fixed K, exportable), then mapped to original pixels (``pose_predictions``: numpy)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from centerpoint_suite.centers import boxes_to_original, center_peaks, detections_to_numpy, points_to_original
from centerpoint_suite.heatmap import cell_xy, gather_at, peak_scores
from centerpoint_suite.types import BatchMeta, Predictions

from .loss import gather_joint_offsets


def joint_peaks(joint_heatmap: Tensor, joint_offset: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` 3x3 local maxima per joint channel.

    joint_heatmap: (B, J, H, W) raw logits; joint_offset: (B, 2 or 2J, H, W) sub-cell offsets
    or None (then the cell centre, +0.5). Returns xy (B, J, k', 2) refined peak positions in
    output cells and scores (B, J, k') sigmoid probabilities (0 for missing peaks),
    k' = min(k, H*W).
    """
    b, j, h, w = joint_heatmap.shape
    k = min(k, h * w)
    top, inds = torch.topk(peak_scores(joint_heatmap.float()).reshape(b, j, h * w), k)
    xs, ys = cell_xy(inds, w)
    if joint_offset is not None:
        off = gather_joint_offsets(joint_offset.float(), inds)
        xs, ys = xs + off[..., 0], ys + off[..., 1]
    else:
        xs, ys = xs + 0.5, ys + 0.5
    return torch.stack([xs, ys], -1), torch.sigmoid(top)


def snap_joints(
    joints: Tensor,
    boxes: Tensor,
    peak_xy: Tensor,
    peak_scores_: Tensor,
    threshold: float = 0.1,
    distance: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor]:
    """Move each regressed joint onto its nearest joint-heatmap peak, as the original.

    joints: (B, K, J, 2) regressed joints; boxes: (B, K, 4) person boxes x1, y1, x2, y2;
    peak_xy: (B, J, P, 2) and peak_scores_: (B, J, P) from ``joint_peaks``; all output cells.
    The nearest peak scoring over ``threshold`` (of the same joint type) is taken; the joint
    moves there only if that peak lies inside the person box (borders included) and within
    ``distance * max(box w, box h)``; otherwise the regressed joint stays.
    Returns joints (B, K, J, 2), the chosen peak's score (B, K, J; 0 where no peak scores
    over the threshold) and snapped (B, K, J) bool.
    """
    b, k, j, _ = joints.shape
    reg = joints.permute(0, 2, 1, 3).float()  # (B, J, K, 2)
    # (B, J, K, P): bitwise equal to cdist without matmul, and exportable (cdist is not)
    dist = torch.linalg.vector_norm(reg.unsqueeze(3) - peak_xy.float().unsqueeze(2), dim=-1)
    valid = peak_scores_ > threshold
    dist = dist.masked_fill(~valid.unsqueeze(2), float("inf"))
    min_dist, arg = dist.min(-1)  # (B, J, K)
    near = peak_xy.gather(2, arg.unsqueeze(-1).expand(b, j, k, 2))  # (B, J, K, 2)
    score = peak_scores_.gather(2, arg).masked_fill(~torch.isfinite(min_dist), 0.0)
    bx = boxes.float().unsqueeze(1)  # (B, 1, K, 4)
    x, y = near[..., 0], near[..., 1]
    inside = (x >= bx[..., 0]) & (x <= bx[..., 2]) & (y >= bx[..., 1]) & (y <= bx[..., 3])
    limit = distance * torch.maximum(bx[..., 2] - bx[..., 0], bx[..., 3] - bx[..., 1])
    snapped = torch.isfinite(min_dist) & inside & (min_dist <= limit)
    out = torch.where(snapped.unsqueeze(-1), near, reg)
    return out.permute(0, 2, 1, 3), score.permute(0, 2, 1), snapped.permute(0, 2, 1)


#: the fields of ``decode_pose_tensors`` (B = batch, K = top-K people, J = joints)
POSE_FIELDS: dict[str, str] = {
    "boxes": "(B, K, 4) float32 person box x1, y1, x2, y2 in {frame}",
    "scores": "(B, K) float32 person score, descending",
    "classes": "(B, K) int64 class index (0: person)",
    "keypoints": "(B, K, J, 3) float32 joint x, y in {frame} and a per-joint score in 0..1",
}


def decode_pose_tensors(
    preds: dict[str, Tensor],
    k: int = 100,
    num_joints: int = 17,
    snap_threshold: float = 0.1,
    snap_distance: float = 0.3,
    scale: float = 1.0,
) -> dict[str, Tensor]:
    """Raw maps of a batch -> top-``k`` people as tensors (pure torch, fixed K, exportable).

    Returns ``POSE_FIELDS``; box and joint x, y in output cells times ``scale``.
    The joint score is the snapped peak's joint-heatmap score where the joint snapped, else
    the joint heatmap's probability at the regressed joint's cell (0 outside the map): a
    per-joint confidence for drawing. Without a ``joint_heatmap`` head the regressed joints
    are kept and scored by the person.
    """
    det = center_peaks(preds, k)
    b, kk = det.scores.shape
    h, w = preds["heatmap"].shape[-2:]
    cell = torch.stack(cell_xy(det.inds, w), -1)
    joints = gather_at(preds["joint_offsets"].float(), det.inds).view(b, kk, num_joints, 2) + cell.unsqueeze(2)
    if "joint_heatmap" in preds:
        hm = preds["joint_heatmap"].float()
        peak_xy, peak_sc = joint_peaks(hm, preds.get("joint_offset"), k)
        joints, snap_score, snapped = snap_joints(
            joints, det.boxes_out, peak_xy, peak_sc, snap_threshold, snap_distance
        )
        jx, jy = joints[..., 0].floor().long(), joints[..., 1].floor().long()
        in_map = (jx >= 0) & (jx < w) & (jy >= 0) & (jy < h)
        flat = (jy.clamp(0, h - 1) * w + jx.clamp(0, w - 1)).permute(0, 2, 1)  # (B, J, K)
        at_cell = torch.sigmoid(hm.reshape(b, num_joints, -1).gather(2, flat)).permute(0, 2, 1)
        jscore = torch.where(snapped, snap_score, at_cell * in_map)
    else:
        jscore = det.scores.unsqueeze(-1).expand(b, kk, num_joints)
    keypoints = torch.cat([joints * scale, jscore.unsqueeze(-1)], -1)
    return {"boxes": det.boxes_out * scale, "scores": det.scores, "classes": det.classes, "keypoints": keypoints}


def pose_predictions(dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
    """``decode_pose_tensors`` output (numpy) -> per image Predictions with extras["keypoints"]
    (K, J, 3): joint x, y in original pixels and the joint score.

    COCO evaluation, as the original, gives every joint score 1 and ranks people by the
    person score.
    """
    boxes = boxes_to_original(dets["boxes"], meta, scale)
    kp = dets["keypoints"]
    xy = points_to_original(kp[..., :2], meta, scale)  # (B, K, J, 2) original pixels
    kps = np.concatenate([xy, kp[..., 2:3]], -1).astype(np.float32)
    scores, classes = dets["scores"], dets["classes"]
    return [
        Predictions(meta.image_ids[i], boxes[i], scores[i], classes[i], {"keypoints": kps[i]}) for i in range(len(meta))
    ]


def decode_poses(
    preds: dict[str, Tensor],
    meta: BatchMeta,
    k: int = 100,
    num_joints: int = 17,
    snap_threshold: float = 0.1,
    snap_distance: float = 0.3,
) -> list[Predictions]:
    """Raw maps of a batch -> per image Predictions (``decode_pose_tensors`` then ``pose_predictions``)."""
    dets = decode_pose_tensors(preds, k, num_joints, snap_threshold, snap_distance)
    return pose_predictions(detections_to_numpy(dets), meta)
