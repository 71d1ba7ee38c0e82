"""Focal loss and masked L1 against direct formulas on small cases."""

from __future__ import annotations

import math

import pytest
import torch

from centerpoint_suite import losses
from centerpoint_suite.losses import focal_loss, focal_terms, masked_l1


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


def whole_focal(logits, target, ignore=None):
    """The focal loss on whole tensors (autograd through the formula, no chunks)."""
    total, positives = focal_terms(logits, target, ignore)
    return -total / positives if positives > 0 else -total


@pytest.mark.parametrize("chunk_samples", [1, 2, 5])
@pytest.mark.parametrize("with_ignore", [False, True])
def test_chunked_focal_equals_the_whole_tensor_formula(monkeypatch, chunk_samples, with_ignore):
    # chunks of 1, 2 (with a remainder) and all 5 samples, on a channels-last map as the trainer's
    g = torch.Generator().manual_seed(1)
    shape = (5, 4, 9, 11)
    monkeypatch.setattr(losses, "FOCAL_CHUNK", chunk_samples * 4 * 9 * 11)
    logits = (torch.randn(shape, generator=g) * 6).contiguous(memory_format=torch.channels_last)
    target = torch.rand(shape, generator=g) * 0.95
    target[target > 0.9] = 1
    ignore = (torch.rand(shape, generator=g) > 0.8).to(torch.uint8) if with_ignore else None
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    la, lb = focal_loss(a, target, ignore), whole_focal(b, target, ignore)
    (2.5 * la).backward()
    (2.5 * lb).backward()
    assert torch.allclose(la, lb, rtol=1e-6)
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-9)
    assert a.grad.abs().sum() > 0


def test_focal_without_positives_sums_the_negatives():
    logits = torch.full((2, 1, 3, 3), 0.5, requires_grad=True)
    target = torch.zeros(2, 1, 3, 3)
    loss = focal_loss(logits, target)
    p = torch.sigmoid(torch.tensor(0.5))
    assert abs(loss.item() - (-torch.log(1 - p) * p**2 * 18).item()) < 1e-4
    loss.backward()
    assert (logits.grad > 0).all()  # pushing every cell's logit down lowers the loss


def test_focal_without_gradient_gives_the_same_value():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 2, 5, 5, generator=g)
    target = torch.rand(3, 2, 5, 5, generator=g)
    target[0, 0, 2, 2] = 1
    with torch.no_grad():
        a = focal_loss(logits, target)
    assert torch.allclose(a, whole_focal(logits, target), rtol=1e-6)
