"""boxes2d decode: top-K peaks -> boxes in original pixels, batched."""

from __future__ import annotations

from torch import Tensor

from centerpoint_suite.centers import decode_centers
from centerpoint_suite.types import BatchMeta, Predictions


def decode_boxes(preds: dict[str, Tensor], meta: BatchMeta, k: int = 100) -> list[Predictions]:
    det = decode_centers(preds, meta, k)
    scores = det.scores.cpu().numpy()
    classes = det.classes.cpu().numpy()
    return [Predictions(meta.image_ids[i], det.boxes[i], scores[i], classes[i]) for i in range(len(meta))]
