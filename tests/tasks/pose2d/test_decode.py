"""pose2d decode: the snapping rules on hand-made maps, batching, offset gathering, flip merge."""

from __future__ import annotations

import numpy as np
import torch

from centerpoint_suite.centers import logit
from centerpoint_suite.tasks.pose2d import Pose2D
from centerpoint_suite.tasks.pose2d.decode import decode_poses, snap_joints
from centerpoint_suite.tasks.pose2d.loss import gather_joint_offsets
from centerpoint_suite.types import BatchMeta

H = W = 32
J = 17


def person_maps(b: int = 1) -> dict[str, torch.Tensor]:
    """One person per image at cell (10, 10), box 10 x 16 cells: x 5..15, y 2..18."""
    maps = {
        "heatmap": torch.full((b, 1, H, W), -10.0),
        "size": torch.zeros(b, 2, H, W),
        "offset": torch.zeros(b, 2, H, W),
        "joint_offsets": torch.zeros(b, 2 * J, H, W),
        "joint_heatmap": torch.full((b, J, H, W), -10.0),
        "joint_offset": torch.zeros(b, 2, H, W),
    }
    maps["heatmap"][:, 0, 10, 10] = 5.0
    maps["size"][:, 0, 10, 10] = 10.0
    maps["size"][:, 1, 10, 10] = 16.0
    return maps


def set_joint(maps, j: int, dx: float, dy: float, b: int = 0) -> None:
    maps["joint_offsets"][b, 2 * j, 10, 10] = dx
    maps["joint_offsets"][b, 2 * j + 1, 10, 10] = dy


def set_peak(maps, j: int, x: int, y: int, score: float, b: int = 0) -> None:
    maps["joint_heatmap"][b, j, y, x] = float(logit(torch.tensor(score)))


def meta(b: int) -> BatchMeta:
    inv = np.tile(np.array([[4.0, 0, 0], [0, 4.0, 0]], np.float32), (b, 1, 1))  # cells -> pixels (x4)
    return BatchMeta(inv, list(range(b)), [(4 * H, 4 * W)] * b)


def decode_one(maps, b: int = 1):
    return decode_poses(maps, meta(b), k=5, num_joints=J)


def test_snapping_rules_on_hand_made_maps() -> None:
    maps = person_maps(2)
    # joint 0: regressed (12, 5); peaks (13, 5) 0.5 and (14, 6) 0.9 -> the nearest one
    set_joint(maps, 0, 2, -5)
    set_peak(maps, 0, 13, 5, 0.5)
    set_peak(maps, 0, 14, 7, 0.9)
    # joint 1: the only peak scores under the threshold -> stays
    set_joint(maps, 1, 0, 0)
    set_peak(maps, 1, 11, 10, 0.09)
    # joint 2: peak outside the box (x 17 > 15) -> stays
    set_joint(maps, 2, 4, 0)
    set_peak(maps, 2, 17, 10, 0.9)
    # joint 3: peak inside the box but 5.5 cells away (> 0.3 * 16 = 4.8) -> stays
    set_joint(maps, 3, 0, 2)
    set_peak(maps, 3, 10, 17, 0.9)
    maps["joint_offset"][0, 1, 17, 10] = 0.5  # refined peak y 17.5
    # joint 4: the nearest valid peak is outside the box; a farther one inside does not count
    set_joint(maps, 4, -2, -2)
    set_peak(maps, 4, 4, 8, 0.9)  # 4 cells away, x 4 < 5
    set_peak(maps, 4, 7, 12, 0.9)  # 4.12 cells away, inside
    # joint 5: no peak at all -> stays, snapped score 0
    set_joint(maps, 5, 1, 1)
    # joint 6: a peak at the distance limit (4.8 cells, inside) -> snaps
    set_joint(maps, 6, 0, -3)
    set_peak(maps, 6, 10, 2, 0.6)
    maps["joint_offset"][0, 1, 2, 10] = 0.2  # peak y 2.2: distance 4.8 from y 7
    # joint 7: a strong peak right on it but outside the box -> stays, scored by its own cell
    set_joint(maps, 7, 10, 0)
    set_peak(maps, 7, 20, 10, 0.8)
    # image 1 of the batch has other peaks: no mixing between images
    set_peak(maps, 1, 10, 10, 0.9, b=1)
    pred = decode_one(maps, 2)
    kp = pred[0].extras["keypoints"][0]  # best person: (J, 3) pixels = 4 x cells
    np.testing.assert_allclose(kp[0, :2], [52, 20], atol=1e-4)
    assert abs(kp[0, 2] - 0.5) < 1e-4
    np.testing.assert_allclose(kp[1, :2], [40, 40], atol=1e-4)
    np.testing.assert_allclose(kp[2, :2], [56, 40], atol=1e-4)
    np.testing.assert_allclose(kp[3, :2], [40, 48], atol=1e-4)
    np.testing.assert_allclose(kp[4, :2], [32, 32], atol=1e-4)
    np.testing.assert_allclose(kp[5, :2], [44, 44], atol=1e-4)
    np.testing.assert_allclose(kp[6, :2], [40, 8.8], atol=1e-3)
    np.testing.assert_allclose(pred[0].boxes[0], [20, 8, 60, 72], atol=1e-4)
    # unsnapped joints score the joint heatmap at their own cell
    np.testing.assert_allclose(kp[7, :2], [80, 40], atol=1e-4)
    assert kp[5, 2] < 1e-3 and kp[1, 2] < 1e-3 and abs(kp[7, 2] - 0.8) < 1e-4
    kp1 = pred[1].extras["keypoints"][0]
    np.testing.assert_allclose(kp1[1, :2], [40, 40], atol=1e-4)
    np.testing.assert_allclose(kp1[0, :2], [40, 40], atol=1e-4)  # joint 0 regressed at the centre there
    assert abs(kp1[1, 2] - 0.9) < 1e-4


def test_snap_joints_batched_equals_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    b, k, p = 3, 6, 8
    joints = torch.rand(b, k, J, 2, generator=g) * 30
    xy1 = torch.rand(b, k, 2, generator=g) * 15
    boxes = torch.cat([xy1, xy1 + 5 + torch.rand(b, k, 2, generator=g) * 15], -1)
    peak_xy = torch.rand(b, J, p, 2, generator=g) * 30
    peak_sc = torch.rand(b, J, p, generator=g) * 0.4
    out, sc, snapped = snap_joints(joints, boxes, peak_xy, peak_sc)
    assert 0 < snapped.float().mean() < 1
    for i in range(b):
        o, s, n = snap_joints(joints[i : i + 1], boxes[i : i + 1], peak_xy[i : i + 1], peak_sc[i : i + 1])
        assert torch.equal(o[0], out[i]) and torch.equal(n[0], snapped[i]) and torch.equal(s[0], sc[i])
    # brute force for one joint of one person
    i, kk, j = 1, 2, 3
    d = (peak_xy[i, j] - joints[i, kk, j]).norm(dim=-1)
    d[peak_sc[i, j] <= 0.1] = float("inf")
    q = int(d.argmin())
    x1, y1, x2, y2 = boxes[i, kk].tolist()
    px, py = peak_xy[i, j, q].tolist()
    ok = bool(torch.isfinite(d[q])) and x1 <= px <= x2 and y1 <= py <= y2 and d[q] <= 0.3 * max(x2 - x1, y2 - y1)
    assert bool(snapped[i, kk, j]) == ok


def test_gather_joint_offsets_shared_and_per_joint() -> None:
    g = torch.Generator().manual_seed(1)
    inds = torch.randint(0, H * W, (2, J, 5), generator=g)
    shared = torch.randn(2, 2, H, W, generator=g)
    per = torch.randn(2, 2 * J, H, W, generator=g)
    got_s = gather_joint_offsets(shared, inds)
    got_p = gather_joint_offsets(per, inds)
    for b in range(2):
        for j in range(J):
            for n in range(5):
                y, x = divmod(int(inds[b, j, n]), W)
                assert torch.equal(got_s[b, j, n], shared[b, :, y, x])
                assert torch.equal(got_p[b, j, n], per[b, 2 * j : 2 * j + 2, y, x])


def test_merge_flip_inverts_a_mirrored_prediction() -> None:
    """Maps built as the exact mirror of a prediction merge back to that prediction."""
    task = Pose2D()
    g = torch.Generator().manual_seed(2)
    maps = {name: torch.randn(1, c, H, W, generator=g) for name, c in task.heads().items()}
    perm = torch.tensor([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
    jo = maps["joint_offsets"].view(1, J, 2, H, W)[:, perm].clone()
    jo[:, :, 0] = 0.75 - jo[:, :, 0]  # a displacement from a cell mirrors about x = 3/8 cell
    mirror = {
        "heatmap": maps["heatmap"].flip(-1),
        "size": maps["size"].flip(-1),
        "offset": torch.zeros_like(maps["offset"]),
        "joint_offsets": jo.reshape(1, 2 * J, H, W).flip(-1),
        "joint_heatmap": maps["joint_heatmap"][:, perm].flip(-1),
        "joint_offset": torch.zeros_like(maps["joint_offset"]),
    }
    merged = task.merge_flip(maps, mirror)
    for name in maps:
        torch.testing.assert_close(merged[name], maps[name], atol=1e-4, rtol=1e-4)
    orig = Pose2D(original_flip_offsets=True).merge_flip(maps, mirror)
    diff = (orig["joint_offsets"] - maps["joint_offsets"]).view(1, J, 2, H, W)
    torch.testing.assert_close(diff[:, :, 0], torch.full_like(diff[:, :, 0], -0.375), atol=1e-4, rtol=0)
