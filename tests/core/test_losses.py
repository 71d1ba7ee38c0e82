"""Focal loss and masked L1 against direct formulas on small cases."""

from __future__ import annotations

import math

import torch

from centerpoint_suite.losses import focal_loss, masked_l1


def focal_twin(logits, target, alpha=2, beta=4):
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target == 1
    pos_loss = (torch.log(p) * (1 - p) ** alpha)[pos].sum()
    neg_loss = (torch.log(1 - p) * p**alpha * (1 - target) ** beta)[~pos].sum()
    n = pos.sum()
    return -(pos_loss + neg_loss) / n if n > 0 else -neg_loss


def test_focal_matches_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 9, 11, generator=g) * 3
    target = torch.rand(2, 3, 9, 11, generator=g) * 0.9
    target[0, 1, 4, 5] = 1
    target[1, 2, 0, 0] = 1
    assert torch.allclose(focal_loss(logits, target), focal_twin(logits, target), rtol=1e-4)


def test_focal_ignore_removes_negatives_only():
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 0, 0] = 1
    ignore = torch.ones(1, 1, 4, 4, dtype=torch.uint8)
    only_pos = focal_loss(logits, target, ignore)
    expected = -math.log(0.5) * 0.25
    assert abs(only_pos.item() - expected) < 1e-5
    assert focal_loss(logits, target).item() > only_pos.item()


def test_masked_l1_normalised_per_element():
    pred = torch.zeros(1, 2, 3, 3)
    pred[0, :, 1, 2] = torch.tensor([1.0, 2.0])
    inds = torch.tensor([[5, 0]])
    mask = torch.tensor([[1, 0]])
    target = torch.tensor([[[0.0, 0.0], [9.0, 9.0]]])
    assert abs(masked_l1(pred, inds, mask, target).item() - 1.5) < 1e-3
