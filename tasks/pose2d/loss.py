"""pose2d loss: focal on both heatmaps, masked L1 on size, offset, joint offsets and the
joint sub-cell offset (unweighted parts; the task applies the weights)."""

from __future__ import annotations

import torch
from torch import Tensor

from centerpoint_suite.losses import focal_loss, masked_l1, normalised


def gather_joint_offsets(feature: Tensor, inds: Tensor) -> Tensor:
    """Sub-cell joint offsets read at joint cells: (B, 2 or 2J, H, W), (B, J, K) -> (B, J, K, 2).

    With 2 channels (the original's layout) every joint reads the same shared pair; with 2J
    channels joint j reads channels 2j, 2j+1. ``inds`` are flat cell indices y * W + x.
    """
    b, c, h, w = feature.shape
    j, k = inds.shape[1], inds.shape[2]
    flat = feature.reshape(b, c // 2, 2, h * w)
    if c == 2:
        flat = flat.expand(b, j, 2, h * w)
    elif c != 2 * j:
        raise ValueError(f"joint_offset map has {c} channels; expected 2 or {2 * j}")
    out = flat.gather(3, inds.unsqueeze(2).expand(b, j, 2, k))  # (B, J, 2, K)
    return out.permute(0, 1, 3, 2)


def pose_losses(preds: dict[str, Tensor], targets: dict[str, Tensor], num_joints: int) -> dict[str, Tensor]:
    """Unweighted parts: heatmap, size, offset, joint_offsets, joint_heatmap, joint_offset (scalars).

    The joint sub-cell offset is an L1 over the labelled joints read at their own cells,
    normalised by the number of masked elements (as the original's RegL1Loss).
    """
    inds, mask = targets["indices"], targets["mask"]
    b = inds.shape[0]
    j_inds = targets["joint_indices"].view(b, -1, num_joints).transpose(1, 2)  # (B, J, M)
    j_mask = targets["joint_mask"].view(b, -1, num_joints).transpose(1, 2).float().unsqueeze(-1)
    j_target = targets["joint_offset"].view(b, -1, num_joints, 2).transpose(1, 2).float()
    pred_off = gather_joint_offsets(preds["joint_offset"].float(), j_inds)
    j_mask = j_mask.expand_as(pred_off)
    joint_offset = normalised((torch.abs(pred_off - j_target) * j_mask).sum(), j_mask.sum(), 1e-4)
    return {
        "heatmap": focal_loss(preds["heatmap"], targets["heatmap"], targets["heatmap_ignore"]),
        "size": masked_l1(preds["size"], inds, mask, targets["size"]),
        "offset": masked_l1(preds["offset"], inds, mask, targets["offset"]),
        "joint_offsets": masked_l1(
            preds["joint_offsets"], inds, targets["joint_offsets_mask"], targets["joint_offsets"]
        ),
        "joint_heatmap": focal_loss(preds["joint_heatmap"], targets["joint_heatmap"]),
        "joint_offset": joint_offset,
    }
