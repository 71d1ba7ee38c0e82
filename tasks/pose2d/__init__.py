"""Task ``pose2d``: CenterNet multi-person pose (COCO keypoints).

A person is its box centre (heatmap, size, offset, as ``boxes2d``) plus 17 joint offsets
regressed from that centre; 17 joint heatmaps (with a sub-cell joint offset) refine them:
at decode each regressed joint snaps to the nearest nearby joint-heatmap peak.

Differences from the original, on purpose: size and centre offset are supervised for every
person placed on the heatmap, including people with no labelled joint (the original masks
their size/offset loss); the rest (targets, radii, loss weights, decode rules) follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from torch import Tensor

from centerpoint_suite.centers import detections_to_numpy, flip_average_logits, logit
from centerpoint_suite.heatmap import scatter_at
from centerpoint_suite.registry import TASKS
from centerpoint_suite.task import Task
from centerpoint_suite.transforms import STRIDE
from centerpoint_suite.types import BatchMeta, OutputGeometry, Predictions, Sample

from .decode import POSE_FIELDS, decode_pose_tensors, pose_predictions
from .eval import evaluate_poses
from .loss import pose_losses
from .targets import build_pose_targets, flip_permutation
from .visualize import draw_poses

# COCO left/right joint pairs (0-based): eyes, ears, shoulders, elbows, wrists, hips, knees, ankles
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))


@dataclass(frozen=True)
class PoseWeights:
    """Loss weights (the original's hm, wh, off, hp, hm_hp and hp_offset weights)."""

    heatmap: float = 1.0
    size: float = 0.1
    offset: float = 1.0
    joint_offsets: float = 1.0
    joint_heatmap: float = 1.0
    joint_offset: float = 1.0


@TASKS.register("pose2d")
@dataclass(frozen=True)
class Pose2D(Task):
    """Multi-person 2D pose: person centre heatmap + box + 17 joint offsets + joint heatmaps.

    num_joints:        joints per person (COCO: 17; flip augmentation needs the COCO layout).
    max_objects:       person slots per image (original: 32).
    radius_formula:    "cornernet" (the original's, for checkpoint compatibility) or "exact";
                       joint gaussians use the person's radius, as the original.
    per_joint_offsets: False: the original's 2-channel sub-cell joint offset shared by all
                       joints (checkpoint compatible; two joints in one cell share one offset);
                       True: 2 channels per joint.
    snap_threshold:    a joint-heatmap peak must score over this to attract a joint.
    snap_distance:     ... and lie within this fraction of max(box w, h) (and inside the box).
    original_flip_offsets: flip test mirrors the joint offsets by negating x only, as the
                       original. A mirrored input maps output x to ``W - (s-1)/s - x`` (stride s,
                       pixel centres at integers), so a displacement from a cell mirrors to
                       ``(s-1)/s - dx``; plain negation biases unsnapped joints by 3/8 cell
                       (1.5 input px) to the left. False (default) mirrors exactly.
    """

    name: ClassVar[str] = "pose2d"
    real_config: ClassVar[str] = "pose2d_coco"
    classes: tuple[str, ...] = ("person",)
    num_joints: int = 17
    max_objects: int = 32
    radius_formula: str = "cornernet"
    min_overlap: float = 0.7
    per_joint_offsets: bool = False
    weights: PoseWeights = PoseWeights()
    snap_threshold: float = 0.1
    snap_distance: float = 0.3
    original_flip_offsets: bool = False

    def heads(self) -> dict[str, int]:
        j = self.num_joints
        return {
            "heatmap": 1,
            "size": 2,
            "offset": 2,
            "joint_offsets": 2 * j,
            "joint_heatmap": j,
            "joint_offset": 2 * j if self.per_joint_offsets else 2,
        }

    def heatmap_heads(self) -> tuple[str, ...]:
        return ("heatmap", "joint_heatmap")

    def flip_pairs(self) -> tuple[tuple[int, int], ...] | None:
        """The COCO pairs for 17 joints; None (no flip augmentation) for another joint layout."""
        return COCO_FLIP_PAIRS if self.num_joints == 17 else None

    def build_targets(self, sample: Sample, geometry: OutputGeometry) -> dict[str, np.ndarray]:
        return build_pose_targets(
            sample,
            geometry,
            self.num_joints,
            self.max_objects,
            self.flip_pairs(),
            self.radius_formula,
            self.min_overlap,
        )

    def loss(
        self, preds: dict[str, Tensor], targets: dict[str, Tensor], params: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        parts = pose_losses(preds, targets, self.num_joints)
        w = self.weights
        total = sum(getattr(w, name) * value for name, value in parts.items())
        return {"loss": total, **parts}

    def decode(self, preds: dict[str, Tensor], meta: BatchMeta, k: int = 100) -> list[Predictions]:
        return self.to_predictions(detections_to_numpy(self.decode_tensors(preds, k)), meta)

    def decode_tensors(self, preds: dict[str, Tensor], k: int = 100, scale: float = 1.0) -> dict[str, Tensor]:
        return decode_pose_tensors(preds, k, self.num_joints, self.snap_threshold, self.snap_distance, scale)

    def detection_fields(self) -> dict[str, str]:
        return dict(POSE_FIELDS)

    def to_predictions(self, dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
        return pose_predictions(dets, meta, scale)

    def merge_flip(self, preds: dict[str, Tensor], flipped: dict[str, Tensor]) -> dict[str, Tensor]:
        """Average with the mirrored image's maps mirrored back: heatmaps in probability space,
        size as is, joint offsets with x mirrored (see ``original_flip_offsets``) and left/right
        joints swapped, joint heatmaps with their channels swapped. Sub-cell offsets are taken
        from the unflipped image (as the original)."""
        j = self.num_joints
        perm = flip_permutation(j, self.flip_pairs() or ())
        b, _, h, w = flipped["joint_offsets"].shape
        jo = flipped["joint_offsets"].flip(-1).reshape(b, j, 2, h, w)[:, perm]
        shift = 0.0 if self.original_flip_offsets else (STRIDE - 1) / STRIDE
        jo = jo * jo.new_tensor([-1.0, 1.0]).view(1, 1, 2, 1, 1) + jo.new_tensor([shift, 0.0]).view(1, 1, 2, 1, 1)
        return {
            "heatmap": flip_average_logits(preds["heatmap"], flipped["heatmap"]),
            "size": (preds["size"] + flipped["size"].flip(-1)) / 2,
            "offset": preds["offset"],
            "joint_offsets": (preds["joint_offsets"] + jo.reshape(b, 2 * j, h, w)) / 2,
            "joint_heatmap": flip_average_logits(preds["joint_heatmap"], flipped["joint_heatmap"][:, perm]),
            "joint_offset": preds["joint_offset"],
        }

    def merges_scales(self) -> bool:
        """Multi-scale testing merges people by their boxes; the joints follow the kept box."""
        return True

    def oracle_maps(self, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Targets as raw maps. With the shared joint offset, joints of one cell keep one value."""
        hw = tuple(targets["heatmap"].shape[-2:])
        inds, mask = targets["indices"], targets["mask"]
        j_inds, j_mask, j_off = targets["joint_indices"], targets["joint_mask"], targets["joint_offset"]
        if self.per_joint_offsets:
            b, mj = j_inds.shape
            j = self.num_joints
            out = j_off.new_zeros(b, j, hw[0] * hw[1], 2)
            bi, si = j_mask.bool().nonzero(as_tuple=True)
            out[bi, si % j, j_inds[bi, si]] = j_off[bi, si]
            joint_offset = out.permute(0, 1, 3, 2).reshape(b, 2 * j, *hw)
        else:
            joint_offset = scatter_at(j_off, j_inds, j_mask, hw)
        return {
            "heatmap": logit(targets["heatmap"]),
            "size": scatter_at(targets["size"], inds, mask, hw),
            "offset": scatter_at(targets["offset"], inds, mask, hw),
            "joint_offsets": scatter_at(targets["joint_offsets"], inds, mask, hw),
            "joint_heatmap": logit(targets["joint_heatmap"]),
            "joint_offset": joint_offset,
        }

    def open_dataset(self, root: Path, split: str | None):
        """COCO person keypoints: ``ROOT/annotations/person_keypoints_<split>.json`` + images, or
        an annotation json given directly / lying in ROOT with images in a sub-folder."""
        from centerpoint_suite.datasets.coco import CocoSource

        return CocoSource(root, split, "person_keypoints", self.classes or ("person",))

    def default_data(self, cache_dir: Path) -> Path:
        from centerpoint_suite.datasets.synthetic_people import generate_people

        return generate_people(Path(cache_dir) / "synthetic_people")

    def evaluate(self, source, predictions: list[Predictions], out_dir: Path | None = None) -> dict[str, float]:
        return evaluate_poses(source, predictions, out_dir)

    def write_results(self, source, predictions: list[Predictions], path: Path) -> None:
        from centerpoint_suite.coco_eval import keypoint_results, write_json

        cat_id = source.cat_ids[0] if source is not None else 1
        write_json(keypoint_results(predictions, cat_id), path)

    def draw(self, image: np.ndarray, predictions: Predictions, score_threshold: float = 0.3) -> np.ndarray:
        return draw_poses(image, predictions, self.flip_pairs() or (), score_threshold)

    def primary_metric(self) -> str:
        return "keypoints/AP"
