"""pose2d loss: zero regression loss on the oracle maps, weights, gradients reach every head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centerpoint_suite.tasks.pose2d import Pose2D, PoseWeights
from centerpoint_suite.types import OutputGeometry
from tests.tasks.pose2d.samples import random_geometry, random_sample


def batch_targets(task: Pose2D, seed: int = 0, b: int = 2) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    items = [task.build_targets(random_sample(rng, 5), random_geometry(rng, flip=i % 2 == 1)) for i in range(b)]
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


@pytest.mark.parametrize("per_joint", [False, True])
def test_oracle_maps_have_zero_regression_loss(per_joint: bool) -> None:
    task = Pose2D(per_joint_offsets=per_joint, max_objects=8)
    targets = batch_targets(task)
    assert targets["joint_mask"].sum() > 5
    parts = task.loss(task.oracle_maps(targets), targets)
    if per_joint:  # one offset pair per joint: exact
        assert float(parts["joint_offset"]) < 1e-6
    for name in ("size", "offset", "joint_offsets"):
        assert float(parts[name]) < 1e-6, name
    noisy = {k: v + 0.3 for k, v in task.oracle_maps(targets).items()}
    worse = task.loss(noisy, targets)
    assert all(float(worse[n]) > 0.1 for n in ("size", "offset", "joint_offsets", "joint_offset"))


def test_weights_and_gradients() -> None:
    task = Pose2D(max_objects=8, weights=PoseWeights(size=0.5, joint_heatmap=2.0))
    targets = batch_targets(task, seed=3)
    h, w = targets["heatmap"].shape[-2:]
    g = torch.Generator().manual_seed(0)
    preds = {k: torch.randn(2, c, h, w, generator=g, requires_grad=True) for k, c in task.heads().items()}
    parts = task.loss(preds, targets)
    expect = sum(getattr(task.weights, n) * parts[n] for n in task.heads())
    torch.testing.assert_close(parts["loss"], expect)
    parts["loss"].backward()
    for name, p in preds.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_sample_without_people_gives_finite_loss() -> None:
    task = Pose2D(max_objects=4)
    sample = random_sample(np.random.default_rng(0), 0)
    t = task.build_targets(sample, OutputGeometry(np.array([[0.25, 0, 0], [0, 0.25, 0]], np.float32), (16, 16)))
    targets = {k: torch.from_numpy(v)[None] for k, v in t.items()}
    preds = {k: torch.zeros(1, c, 16, 16) for k, c in task.heads().items()}
    assert torch.isfinite(task.loss(preds, targets)["loss"])
