"""Flip test for mono3d: every map of the mirrored pass merged back (rotation as pi - alpha,
offset as 1 - x, depth by inverse variance), so an equivariant network changes nothing."""

from __future__ import annotations

import math

import numpy as np
import torch

from centerpoint_suite.tasks.mono3d import Mono3D
from centerpoint_suite.tasks.mono3d.decode import alpha_from_bins_torch, merge_mirrored_rotation
from centerpoint_suite.tasks.mono3d.targets import BIN_CENTERS


def rotation_map(alpha: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W) angles -> (B, 8, H, W) rotation map with bin logits ``logits`` (B, 4, H, W)
    in channels 0, 1, 4, 5 and exact residuals for both bins."""
    out = torch.zeros(alpha.shape[0], 8, *alpha.shape[1:], dtype=torch.float64)
    out[:, [0, 1, 4, 5]] = logits.double()
    for b, centre in enumerate(BIN_CENTERS):
        out[:, 4 * b + 2] = torch.sin(alpha - float(centre))
        out[:, 4 * b + 3] = torch.cos(alpha - float(centre))
    return out


def alpha_of(rot: torch.Tensor) -> torch.Tensor:
    return alpha_from_bins_torch(rot.movedim(1, -1).double())


def angle_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.atan2(torch.sin(a - b), torch.cos(a - b)).abs()


def test_equivariant_network_changes_no_map():
    task = Mono3D(center_mode="projected3d", depth_uncertainty=True)
    g = torch.Generator().manual_seed(1)
    preds = {k: torch.randn(2, c, 8, 12, generator=g) for k, c in task.heads().items()}
    alpha = (torch.rand(2, 8, 12, generator=g) * 2 - 1) * math.pi
    preds["rotation"] = rotation_map(alpha, torch.randn(2, 4, 8, 12, generator=g)).float()
    preds["offset"] = torch.rand(2, 2, 8, 12, generator=g)
    # what the same network gives for the mirrored image, at the mirrored cells
    mirrored = {k: v.flip(-1) for k, v in preds.items()}
    mirrored["size"] = mirrored["size"][:, [2, 1, 0, 3]]
    mirrored["offset"] = torch.stack([1 - preds["offset"][:, 0], preds["offset"][:, 1]], 1).flip(-1)
    logits_m = torch.randn(2, 4, 8, 12, generator=g)  # any bin choice decodes the same exact residuals
    mirrored["rotation"] = rotation_map(math.pi - alpha, logits_m).float().flip(-1)
    merged = task.merge_flip(preds, mirrored)
    for k in ("heatmap", "depth", "dimensions", "size", "offset", "depth_uncertainty"):
        torch.testing.assert_close(merged[k], preds[k], atol=1e-4, rtol=1e-4)
    assert angle_gap(alpha_of(merged["rotation"]), alpha).max() < 1e-5


def test_rotation_takes_the_circular_mean_across_minus_pi():
    a = torch.full((1, 1, 1), 3.0, dtype=torch.float64)  # just under pi
    b = torch.full((1, 1, 1), -3.0, dtype=torch.float64)  # just over -pi: 0.28 rad away across the wrap
    logits = torch.zeros(1, 4, 1, 1)
    merged = merge_mirrored_rotation(rotation_map(a, logits), rotation_map(math.pi - b, logits))
    assert angle_gap(alpha_of(merged), torch.tensor(math.pi)).item() < 1e-6


def test_rotation_keeps_the_direct_angle_when_the_passes_disagree_front_to_back():
    g = torch.Generator().manual_seed(2)
    alpha = (torch.rand(1, 4, 5, generator=g) * 2 - 1) * math.pi
    logits = torch.randn(1, 4, 4, 5, generator=g)
    opposite = alpha + math.pi - 0.2  # the mirrored pass sees the car turned round
    merged = merge_mirrored_rotation(rotation_map(alpha, logits), rotation_map(math.pi - opposite, logits))
    assert angle_gap(alpha_of(merged), alpha).max() < 1e-6
    # and averages when the two agree within a quarter turn
    near = alpha + 0.4
    merged = merge_mirrored_rotation(rotation_map(alpha, logits), rotation_map(math.pi - near, logits))
    assert angle_gap(alpha_of(merged), alpha + 0.2).max() < 1e-6
    np.testing.assert_array_equal(merged[:, [0, 1, 4, 5]].numpy(), logits.double().numpy())
