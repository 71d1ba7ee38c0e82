"""boxes2d decode, in two halves: ``decode_box_tensors`` (pure torch, fixed K, exportable into
an ONNX graph) -> ``box_predictions`` (numpy: inverse affine to original pixels)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from centerpoint_suite.centers import boxes_to_original, center_peaks
from centerpoint_suite.types import BatchMeta, Predictions

#: the fields of ``decode_box_tensors`` (B = batch, K = top-K)
BOX_FIELDS: dict[str, str] = {
    "boxes": "(B, K, 4) float32 x1, y1, x2, y2 in {frame}",
    "scores": "(B, K) float32 sigmoid score, descending",
    "classes": "(B, K) int64 class index",
}


def decode_box_tensors(preds: dict[str, Tensor], k: int = 100, scale: float = 1.0) -> dict[str, Tensor]:
    """Raw maps (B, C, H, W) -> top-``k`` boxes, coordinates in output cells times ``scale``."""
    det = center_peaks(preds, k)
    return {"boxes": det.boxes_out * scale, "scores": det.scores, "classes": det.classes}


def box_predictions(dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
    """``decode_box_tensors`` output (numpy) -> per image Predictions in original pixels."""
    boxes = boxes_to_original(dets["boxes"], meta, scale)
    scores, classes = dets["scores"], dets["classes"]
    return [Predictions(meta.image_ids[i], boxes[i], scores[i], classes[i]) for i in range(len(meta))]
