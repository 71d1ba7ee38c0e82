"""Soft-NMS and NMS over 2D boxes (numba, no compiled extension), used to merge the
detections of several test scales.

Soft-NMS (Bodla et al. 2017) as the original CenterNet runs it on multi-scale detections:
repeatedly take the highest-scoring remaining box, then decay the score of every remaining
box of the same class by its IoU ``o`` with the taken one:

- ``soft_nms_gaussian``: ``s *= exp(-o^2 / sigma)`` (the original's choice: ``method=2``,
  ``sigma=0.5``; its ``Nt`` does not enter the gaussian rule);
- ``soft_nms_linear``:   ``s *= 1 - o`` where ``o > iou_threshold``;
- ``nms``:               ``s = 0`` where ``o > iou_threshold`` (greedy NMS).

A box whose score is under ``score_threshold`` (the original's 0.001), at the start or after a
decay, is dropped. The original computes areas with pixel-inclusive ``+1`` widths
(``plus_one=True``); ours default to the COCO convention ``w = x2 - x1`` of our boxes.
Unlike the original merge (which keeps the whole in-place array and so emits copies of boxes
moved over dropped ones), only the surviving boxes are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .errors import UserError

MERGE_METHODS: dict[str, int] = {"nms": 0, "soft_nms_linear": 1, "soft_nms_gaussian": 2}


@dataclass(frozen=True)
class MergeSettings:
    """How overlapping detections are merged (see the module docstring).

    method:          one of ``MERGE_METHODS``.
    iou_threshold:   IoU over which ``nms`` / ``soft_nms_linear`` suppress (original ``Nt``: 0.5).
    sigma:           gaussian soft-NMS spread (original: 0.5).
    score_threshold: boxes scoring under this are dropped (original: 0.001).
    plus_one:        pixel-inclusive areas ``(x2 - x1 + 1) (y2 - y1 + 1)``, as the original.
    """

    method: str = "soft_nms_gaussian"
    iou_threshold: float = 0.5
    sigma: float = 0.5
    score_threshold: float = 0.001
    plus_one: bool = False

    def __post_init__(self) -> None:
        if self.method not in MERGE_METHODS:
            raise UserError(f"test.merge {self.method}: unknown merge method; use one of {', '.join(MERGE_METHODS)}")
        if not self.sigma > 0:
            raise UserError(f"test.soft_nms_sigma {self.sigma}: must be > 0")


@numba.njit(cache=True, nogil=True)
def _soft_nms_kernel(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    method: int,
    iou_threshold: float,
    sigma: float,
    score_threshold: float,
    offset: float,
) -> tuple[np.ndarray, np.ndarray]:
    """boxes (N, 4) f64 x1 y1 x2 y2, scores (N,) f64, classes (N,) i64 -> (order, scores) of the
    kept boxes in the order taken (scores non-increasing). Ties go to the lower index."""
    n = scores.shape[0]
    s = scores.copy()
    alive = s >= score_threshold
    areas = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    order = np.empty(n, np.int64)
    kept_scores = np.empty(n, np.float64)
    m = 0
    while True:
        best = -1
        best_score = -np.inf
        for i in range(n):
            if alive[i] and s[i] > best_score:
                best = i
                best_score = s[i]
        if best < 0:
            break
        alive[best] = False
        order[m] = best
        kept_scores[m] = best_score
        m += 1
        bx1, by1, bx2, by2 = boxes[best, 0], boxes[best, 1], boxes[best, 2], boxes[best, 3]
        for j in range(n):
            if not alive[j] or classes[j] != classes[best]:
                continue
            iw = min(bx2, boxes[j, 2]) - max(bx1, boxes[j, 0]) + offset
            if iw <= 0:
                continue
            ih = min(by2, boxes[j, 3]) - max(by1, boxes[j, 1]) + offset
            if ih <= 0:
                continue
            inter = iw * ih
            iou = inter / (areas[best] + areas[j] - inter)
            if method == 2:
                weight = np.exp(-(iou * iou) / sigma)
            elif iou > iou_threshold:
                weight = 1.0 - iou if method == 1 else 0.0
            else:
                weight = 1.0
            s[j] *= weight
            if s[j] < score_threshold:
                alive[j] = False
    return order[:m], kept_scores[:m]


def soft_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None = None, settings: MergeSettings = MergeSettings()
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-NMS / NMS per class.

    boxes: (N, 4) x1, y1, x2, y2 (any pixel frame, float); scores: (N,); classes: (N,) int or
    None (one class). Returns ``keep`` (M,) int64 indices into the inputs, in the order taken,
    and their decayed scores (M,) float32, non-increasing.
    """
    boxes = np.ascontiguousarray(boxes, np.float64).reshape(-1, 4)
    scores = np.ascontiguousarray(scores, np.float64).reshape(-1)
    cls = np.zeros(len(scores), np.int64) if classes is None else np.ascontiguousarray(classes, np.int64)
    if not (len(boxes) == len(scores) == len(cls)):
        raise ValueError(f"soft_nms: {len(boxes)} boxes, {len(scores)} scores, {len(cls)} classes")
    order, kept = _soft_nms_kernel(
        boxes,
        scores,
        cls,
        MERGE_METHODS[settings.method],
        float(settings.iou_threshold),
        float(settings.sigma),
        float(settings.score_threshold),
        1.0 if settings.plus_one else 0.0,
    )
    return order, kept.astype(np.float32)
