"""pose2d targets: person centres (heatmap, size, offset) plus the joint targets.

Per kept person (slot m, centre cell ``c``) and joint j with v > 0 whose mapped position
``p`` (output cells) lies inside the map:

- ``joint_offsets[m, 2j:2j+2] = p - c`` (the joint relative to the integer centre cell);
- a gaussian of the person's radius (the box's radius, as the original) at ``floor(p)`` in
  ``joint_heatmap[j]``;
- slot ``m * J + j`` of the joint list: ``joint_indices`` (flat cell of ``floor(p)``),
  ``joint_mask`` and ``joint_offset = p - floor(p)`` (sub-cell offset).

Persons with no labelled joint keep their centre (heatmap, size, offset) and get no joint
target; crowd regions only mark ``heatmap_ignore`` (see ``center_targets``). The joints of all
people go through one numba pass (``_joint_targets``; its numpy twin is in the tests).
"""

from __future__ import annotations

import numba
import numpy as np

from centerpoint_suite import streaming
from centerpoint_suite.centers import center_targets
from centerpoint_suite.errors import DataError
from centerpoint_suite.geometry import apply_affine
from centerpoint_suite.heatmap import splat_gaussians
from centerpoint_suite.types import OutputGeometry, Sample


def flip_permutation(num_joints: int, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(J,) int64 joint index permutation that swaps every left/right pair."""
    perm = np.arange(num_joints)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


@numba.njit(cache=True, nogil=True)
def _joint_targets(pts, visible, perm, centre_indices, radii, outs) -> None:
    """All joints of the kept people in one pass (person-major), into ``outs`` in place.

    pts (n, J, 2) f32 joints in output cells, visible (n, J) bool, perm (J,) joint j reads
    joint perm[j] (the flip swap), centre_indices (n,) i64 flat integer centre cell y * W + x,
    radii (n,) i32;
    outs = (joint_offsets (M, J, 2) f32, joint_offsets_mask (M, J, 2) u8, joint_heatmap (J, H, W)
    f32, joint_indices (M, J) i64, joint_mask (M, J) u8, joint_offset (M, J, 2) f32).
    """
    offsets, offsets_mask, heatmap, indices, mask, offset = outs
    out_h, out_w = heatmap.shape[1], heatmap.shape[2]
    channel = np.empty(1, np.int64)
    cell = np.empty((1, 2), np.int32)
    radius = np.empty(1, np.int32)
    for p in range(pts.shape[0]):
        cx, cy = np.float32(centre_indices[p] % out_w), np.float32(centre_indices[p] // out_w)
        for j in range(pts.shape[1]):
            src = perm[j]
            x, y = pts[p, src, 0], pts[p, src, 1]
            if not (visible[p, src] and x >= 0 and x < out_w and y >= 0 and y < out_h):
                continue
            ix, iy = np.int32(x), np.int32(y)  # non-negative: truncation is floor
            offsets[p, j, 0], offsets[p, j, 1] = x - cx, y - cy
            offsets_mask[p, j, 0], offsets_mask[p, j, 1] = 1, 1
            indices[p, j] = np.int64(iy) * out_w + ix
            mask[p, j] = 1
            offset[p, j, 0], offset[p, j, 1] = x - np.float32(ix), y - np.float32(iy)
            channel[0], cell[0, 0], cell[0, 1], radius[0] = j, ix, iy, radii[p]
            splat_gaussians(heatmap, channel, cell, radius)


def build_pose_targets(
    sample: Sample,
    geometry: OutputGeometry,
    num_joints: int,
    max_objects: int,
    flip_pairs: tuple[tuple[int, int], ...] | None,
    radius_formula: str = "cornernet",
    min_overlap: float = 0.7,
) -> dict[str, np.ndarray]:
    """Targets of one sample, M = ``max_objects``, J = ``num_joints``, maps (H, W) in output cells.

    Returns the ``center_targets`` entries (heatmap (1, H, W), heatmap_ignore, indices (M,),
    mask (M,), size (M, 2), offset (M, 2)) and
    joint_offsets (M, 2J) f32, joint_offsets_mask (M, 2J) u8, joint_heatmap (J, H, W) f32,
    joint_indices (M*J,) i64, joint_mask (M*J,) u8, joint_offset (M*J, 2) f32.
    When ``geometry.flipped`` the joints are swapped along ``flip_pairs`` after mapping, so
    the mirrored person's left wrist is again joint "left_wrist".
    """
    ct = center_targets(sample, geometry, 1, max_objects, radius_formula, min_overlap)
    out_h, out_w = geometry.output_hw
    J, M = num_joints, max_objects
    joint_offsets = np.zeros((M, J, 2), np.float32)
    joint_offsets_mask = np.zeros((M, J, 2), np.uint8)
    joint_heatmap = streaming.zeros((J, out_h, out_w), np.float32)
    joint_indices = np.zeros((M, J), np.int64)
    joint_mask = np.zeros((M, J), np.uint8)
    joint_offset = np.zeros((M, J, 2), np.float32)
    n = len(ct.kept)
    if n and sample.keypoints is not None:
        kps = np.asarray(sample.keypoints, np.float32)[ct.kept]  # (n, J, 3) original pixels
        if kps.shape[1] != J:
            raise DataError(f"{sample.path or sample.image_id}: {kps.shape[1]} joints per person, the task expects {J}")
        pts = apply_affine(geometry.trans_output, kps[..., :2].astype(np.float64)).astype(np.float32)
        perm = flip_permutation(J, flip_pairs) if geometry.flipped and flip_pairs else np.arange(J)
        flat = ct.targets["indices"][:n]  # the integer centre cell placed by center_targets
        outs = (joint_offsets, joint_offsets_mask, joint_heatmap, joint_indices, joint_mask, joint_offset)
        _joint_targets(pts, kps[..., 2] > 0, perm, flat, ct.radii, outs)  # each joint: its person's radius
    targets = dict(ct.targets)
    targets.update(
        joint_offsets=joint_offsets.reshape(M, 2 * J),
        joint_offsets_mask=joint_offsets_mask.reshape(M, 2 * J),
        joint_heatmap=joint_heatmap,
        joint_indices=joint_indices.reshape(M * J),
        joint_mask=joint_mask.reshape(M * J),
        joint_offset=joint_offset.reshape(M * J, 2),
    )
    return targets
