"""The original multi_pose_dla_3x checkpoint layout loads into the heads Pose2D declares."""

from __future__ import annotations

import torch

from centerpoint_suite.tasks.pose2d import Pose2D
from centerpoint_suite.zoo import load_original_checkpoint
from tests.models.golden import golden_state_dict


def test_original_pose_checkpoint_fits_pose2d_heads(reference_dir, tmp_path) -> None:
    state = golden_state_dict(reference_dir / "dla34_pose2d.keys.json")
    path = tmp_path / "multi_pose_dla_3x.pth"
    torch.save({"epoch": 1, "state_dict": state}, path)
    model = load_original_checkpoint(path, "dla34", Pose2D())
    assert model.heads_spec == Pose2D().heads()
    torch.testing.assert_close(model.heads[0]["joint_offset"][-1].bias, state["hp_offset.2.bias"])
