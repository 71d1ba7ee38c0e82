"""Draw people: box, score and the COCO skeleton (left limbs, right limbs, centre in three colours)."""

from __future__ import annotations

import cv2
import numpy as np

from centerpoint_suite.types import Predictions

# COCO skeleton, 0-based joint indices (the annotation file's 1-based "skeleton" minus 1)
COCO_LIMBS: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
LEFT_COLOUR = (255, 128, 0)  # BGR: blue-ish for the person's left side
RIGHT_COLOUR = (0, 128, 255)  # orange for the right side
CENTRE_COLOUR = (0, 220, 0)  # green: limbs across the body and the face centre
BOX_COLOUR = (255, 255, 0)


def joint_side(num_joints: int, flip_pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(J,) int: -1 left, +1 right, 0 centre (COCO: the first of each pair is the left joint)."""
    side = np.zeros(num_joints, np.int64)
    for left, right in flip_pairs:
        side[left], side[right] = -1, 1
    return side


def limb_colours(limbs: tuple[tuple[int, int], ...], side: np.ndarray) -> list[tuple[int, int, int]]:
    """Left colour when both ends are left joints, right colour when both are right, else centre."""
    out = []
    for a, b in limbs:
        if side[a] == side[b] == -1:
            out.append(LEFT_COLOUR)
        elif side[a] == side[b] == 1:
            out.append(RIGHT_COLOUR)
        else:
            out.append(CENTRE_COLOUR)
    return out


def draw_poses(
    image: np.ndarray,
    pred: Predictions,
    flip_pairs: tuple[tuple[int, int], ...],
    score_threshold: float = 0.3,
    joint_threshold: float | None = None,
    limbs: tuple[tuple[int, int], ...] = COCO_LIMBS,
) -> np.ndarray:
    """Copy of a BGR image with people over ``score_threshold`` drawn: box with score, joints
    scoring at least ``joint_threshold`` (default: ``score_threshold``) and the limbs whose two
    joints are both drawn."""
    out = image.copy()
    jthr = score_threshold if joint_threshold is None else joint_threshold
    thick = max(1, round(min(out.shape[:2]) / 250))
    kps = pred.extras.get("keypoints")
    num_joints = 0 if kps is None else kps.shape[1]
    side = joint_side(num_joints, flip_pairs)
    colours = limb_colours(tuple(l for l in limbs if max(l) < num_joints), side)
    limbs = tuple(l for l in limbs if max(l) < num_joints)
    joint_colour = [LEFT_COLOUR if s < 0 else RIGHT_COLOUR if s > 0 else CENTRE_COLOUR for s in side]
    for i in np.flatnonzero(pred.scores >= score_threshold):
        x1, y1, x2, y2 = (int(round(v)) for v in pred.boxes[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thick)
        cv2.putText(
            out, f"{pred.scores[i]:.2f}", (x1 + 2, max(y1 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BOX_COLOUR, 1,
            cv2.LINE_AA,
        )  # fmt: skip
        if kps is None:
            continue
        pts = np.round(kps[i, :, :2]).astype(np.int64)
        shown = (kps[i, :, 2] >= jthr) & np.isfinite(kps[i, :, :2]).all(1)
        for (a, b), colour in zip(limbs, colours):
            if shown[a] and shown[b]:
                cv2.line(out, tuple(pts[a].tolist()), tuple(pts[b].tolist()), colour, thick + 1, cv2.LINE_AA)
        for jj in np.flatnonzero(shown):
            cv2.circle(out, tuple(pts[jj].tolist()), thick + 2, joint_colour[jj], -1, cv2.LINE_AA)
    return out
