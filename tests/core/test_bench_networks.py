"""The network bench's baselines compute what ours compute (the same objective, the same FLOP count)."""

from __future__ import annotations

import pytest
import torch

from centerpoint_suite import create_task
from centerpoint_suite.bench_networks import box_batch, count_gflop, original_loss
from centerpoint_suite.models.dcn import ModulatedDeformConv


def test_original_loss_equals_the_task_loss():
    task = create_task("boxes2d", classes=tuple(f"c{i}" for i in range(80)))
    targets = box_batch(2, (24, 20), objects=5, seed=3)
    assert int(targets["heatmap"].eq(1).sum()) >= 5  # peaks exist: the positive term is exercised
    g = torch.Generator().manual_seed(0)
    preds = {
        "heatmap": 3 * torch.randn(2, 80, 24, 20, generator=g),
        "size": 20 * torch.rand(2, 2, 24, 20, generator=g),
        "offset": torch.rand(2, 2, 24, 20, generator=g),
    }
    ours = task.loss(preds, targets)["loss"]
    assert float(original_loss(preds, targets)) == pytest.approx(float(ours), rel=1e-4)


def test_flop_count_includes_the_deformable_gemm():
    # 2 FLOPs per multiply-add: the offset/mask 3x3 conv (4 -> 27 channels) plus the
    # deformable conv's (100 x 36) @ (36 x 6) product, on a 10 x 10 map
    layer = ModulatedDeformConv(4, 6)
    expected = 2 * 4 * 27 * 9 * 100 + 2 * 100 * 36 * 6
    assert count_gflop(layer, torch.randn(1, 4, 10, 10)) * 1e9 == pytest.approx(expected)
