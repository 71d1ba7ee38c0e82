"""boxes2d loss: focal on the heatmap, masked L1 on size and offset."""

from __future__ import annotations

from torch import Tensor

from centerpoint_suite.losses import focal_loss, masked_l1


def box_losses(preds: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
    """Unweighted parts: heatmap, size, offset (scalars)."""
    inds, mask = targets["indices"], targets["mask"]
    return {
        "heatmap": focal_loss(preds["heatmap"], targets["heatmap"], targets["heatmap_ignore"]),
        "size": masked_l1(preds["size"], inds, mask, targets["size"]),
        "offset": masked_l1(preds["offset"], inds, mask, targets["offset"]),
    }
