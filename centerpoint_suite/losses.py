"""Losses shared by the tasks: penalty-reduced focal loss on heatmaps, masked L1 on regressions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributed import global_mean_count, world_size
from .heatmap import gather_at


def normalised(total: Tensor, count: Tensor, eps: float = 0.0) -> Tensor:
    """``total / (count + eps)`` with ``count`` taken over the global batch of a distributed run
    (see ``distributed.global_mean_count``), so N processes optimise the 1-process objective."""
    return total / (global_mean_count(count) + eps)


def focal_loss(
    logits: Tensor, target: Tensor, ignore: Tensor | None = None, alpha: float = 2.0, beta: float = 4.0
) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet / CenterNet), normalised by the positives
    of the global batch.

    logits: (B, C, H, W) raw heatmap; target: same shape, gaussian-splatted, exactly 1 at centres;
    ignore: optional same-shape mask (non-zero = no loss at that cell).
    Probabilities are clamped to [1e-4, 1 - 1e-4] as the original. Computed from logsigmoid
    for numerical stability.
    """
    logits = logits.float()
    target = target.float()
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    log_p = F.logsigmoid(logits).clamp(min=torch.log(torch.tensor(1e-4)).item())
    log_1mp = F.logsigmoid(-logits).clamp(min=torch.log(torch.tensor(1e-4)).item())
    pos = target.eq(1).float()
    neg = 1.0 - pos
    if ignore is not None:
        neg = neg * (1.0 - ignore.float())
    pos_loss = (log_p * (1 - p).pow(alpha) * pos).sum()
    neg_loss = (log_1mp * p.pow(alpha) * (1 - target).pow(beta) * neg).sum()
    num_pos = global_mean_count(pos.sum())
    if num_pos == 0:  # no object in the whole global batch: the summed negative loss
        return -neg_loss * world_size()
    return -(pos_loss + neg_loss) / num_pos


def masked_l1(pred_map: Tensor, inds: Tensor, mask: Tensor, target: Tensor) -> Tensor:
    """L1 between a dense map read at object cells and per-object targets.

    pred_map: (B, C, H, W); inds: (B, M) flat cell index; mask: (B, M) or (B, M, C) 0/1;
    target: (B, M, C). Normalised by the number of masked elements (as the original).
    """
    pred = gather_at(pred_map, inds).float()
    m = mask.float()
    if m.dim() == 2:
        m = m.unsqueeze(2).expand_as(pred)
    loss = (torch.abs(pred - target.float()) * m).sum()
    return normalised(loss, m.sum(), 1e-4)
