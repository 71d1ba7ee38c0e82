"""mono3d loss: focal on the heatmap, L1 on depth (decoded as 1 / sigmoid(x) - 1), L1 on
dimensions, the two-bin rotation loss, L1 on 2D size and offset.

With a ``depth_uncertainty`` head (log of a Laplace scale s, in the regressed depth's units)
the depth term is the Laplace negative log-likelihood ``sqrt(2) * |d - d*| / exp(s) + s``
(aleatoric uncertainty, Kendall & Gal 2017; used for monocular depth by e.g. MonoPair and
GUPNet): objects whose depth the image cannot tell (far, truncated, occluded) learn a large
scale and pull less on the shared features, and decode ranks detections by the depth
confidence as well as the heatmap score.

Differences from the original (none changes what a checkpoint means):

- the original's depth / dimension L1 is averaged over *all* object slots (padding
  included) and its bin cross-entropy over all slots with zeroed logits for padding; here
  every regression is averaged over the real objects only (``mask``);
- the original drops depth and dimensions from the loss on scale-augmented images; here
  the depth target itself is made consistent with the zoom (see ``Mono3D.depth_focal``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from centerpoint_suite.heatmap import gather_at
from centerpoint_suite.losses import focal_loss, masked_l1, normalised


def decode_depth(raw: Tensor) -> Tensor:
    """Raw depth output -> depth: ``1 / (sigmoid(x) + 1e-6) - 1`` (the original's encoding)."""
    return 1.0 / (torch.sigmoid(raw.float()) + 1e-6) - 1.0


def encode_depth(depth: Tensor) -> Tensor:
    """Inverse of :func:`decode_depth` for depth >= 0: the raw value that decodes to ``depth``."""
    p = (1.0 / (depth.double() + 1.0) - 1e-6).clamp(1e-12, 1 - 1e-12)
    return (torch.log(p) - torch.log1p(-p)).to(depth.dtype)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    m = mask.float()
    return normalised((values * m).sum(), m.sum(), 1e-4)


def bin_rotation_loss(rot: Tensor, inds: Tensor, mask: Tensor, bins: Tensor, res: Tensor) -> Tensor:
    """The two-bin rotation loss at object cells.

    rot: (B, 8, H, W) raw rotation map; inds/mask: (B, M); bins: (B, M, 2) int 0/1 in-bin
    flags; res: (B, M, 2) residual angle to each bin centre (radians).
    Per bin: cross-entropy of (out, in) logits over the objects, plus smooth L1 of the
    predicted (sin, cos) against sin / cos of the residual over the objects in the bin.
    """
    pred = gather_at(rot, inds).float()  # (B, M, 8)
    valid = mask.bool()
    total = pred.new_zeros(())
    for b, off in enumerate((0, 4)):
        logits = pred[..., off : off + 2]
        ce = F.cross_entropy(logits.reshape(-1, 2), bins[..., b].reshape(-1).long(), reduction="none")
        total = total + _masked_mean(ce.view_as(mask.float()), valid)
        in_bin = valid & bins[..., b].bool()
        r = res[..., b].float()
        sin_l = F.smooth_l1_loss(pred[..., off + 2], torch.sin(r), reduction="none")
        cos_l = F.smooth_l1_loss(pred[..., off + 3], torch.cos(r), reduction="none")
        total = total + _masked_mean(sin_l, in_bin) + _masked_mean(cos_l, in_bin)
    return total


#: bounds of the predicted log depth scale (regressed units): exp(-8) keeps the NLL finite
#: for a perfect fit, exp(5) is far beyond any depth in the data
LOG_SCALE_RANGE = (-8.0, 5.0)


def depth_log_scale(raw: Tensor) -> Tensor:
    """Raw ``depth_uncertainty`` output -> log Laplace scale s, clamped to ``LOG_SCALE_RANGE``."""
    return raw.float().clamp(*LOG_SCALE_RANGE)


def mono3d_losses(preds: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """Unweighted parts: heatmap, depth, dimensions, rotation, size, offset (scalars).

    depth: L1, or with a ``depth_uncertainty`` head the Laplace NLL (may be negative).
    """
    inds, mask = targets["indices"], targets["mask"]
    depth_pred = decode_depth(gather_at(preds["depth"], inds))  # (B, M, 1)
    error = torch.abs(depth_pred - targets["depth"].float())
    if "depth_uncertainty" in preds:
        s = depth_log_scale(gather_at(preds["depth_uncertainty"], inds))
        error = math.sqrt(2.0) * error * torch.exp(-s) + s
    depth = _masked_mean(error, mask.unsqueeze(-1))
    return {
        "heatmap": focal_loss(preds["heatmap"], targets["heatmap"], targets["heatmap_ignore"]),
        "depth": depth,
        "dimensions": masked_l1(preds["dimensions"], inds, mask, targets["dimensions"]),
        "rotation": bin_rotation_loss(preds["rotation"], inds, mask, targets["rotation_bin"], targets["rotation_res"]),
        "size": masked_l1(preds["size"], inds, mask, targets["size"]),
        "offset": masked_l1(preds["offset"], inds, mask, targets["offset"]),
    }
