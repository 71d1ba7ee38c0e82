"""Task ``boxes2d``: CenterNet 2D object detection (COCO boxes)."""

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
from centerpoint_suite.types import BatchMeta, OutputGeometry, Predictions, Sample

from .decode import BOX_FIELDS, box_predictions, decode_box_tensors
from .eval import evaluate_boxes
from .loss import box_losses
from .targets import build_box_targets
from .visualize import draw_boxes


@dataclass(frozen=True)
class BoxWeights:
    heatmap: float = 1.0
    size: float = 0.1
    offset: float = 1.0


@TASKS.register("boxes2d")
@dataclass(frozen=True)
class Boxes2D(Task):
    """2D boxes: class heatmap + box size + sub-cell offset at each box centre.

    classes:        class names; empty: taken from the dataset when training starts.
    max_objects:    object slots per image (COCO: 128).
    radius_formula: "cornernet" (the original's, for checkpoint compatibility) or "exact".
    """

    name: ClassVar[str] = "boxes2d"
    real_config: ClassVar[str] = "boxes2d_coco"
    classes: tuple[str, ...] = ()
    max_objects: int = 128
    radius_formula: str = "cornernet"
    min_overlap: float = 0.7
    weights: BoxWeights = BoxWeights()

    def heads(self) -> dict[str, int]:
        return {"heatmap": max(1, len(self.classes)), "size": 2, "offset": 2}

    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        return ()

    def build_targets(self, sample: Sample, geometry: OutputGeometry) -> dict[str, np.ndarray]:
        return build_box_targets(
            sample, geometry, len(self.classes), self.max_objects, self.radius_formula, self.min_overlap
        )

    def loss(
        self, preds: dict[str, Tensor], targets: dict[str, Tensor], params: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        parts = box_losses(preds, targets)
        w = self.weights
        total = w.heatmap * parts["heatmap"] + w.size * parts["size"] + w.offset * parts["offset"]
        return {"loss": total, **parts}

    def decode(self, preds: dict[str, Tensor], meta: BatchMeta, k: int = 100) -> list[Predictions]:
        return self.to_predictions(detections_to_numpy(self.decode_tensors(preds, k)), meta)

    def decode_tensors(self, preds: dict[str, Tensor], k: int = 100, scale: float = 1.0) -> dict[str, Tensor]:
        return decode_box_tensors(preds, k, scale)

    def detection_fields(self) -> dict[str, str]:
        return dict(BOX_FIELDS)

    def to_predictions(self, dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
        return box_predictions(dets, meta, scale)

    def merge_flip(self, preds: dict[str, Tensor], flipped: dict[str, Tensor]) -> dict[str, Tensor]:
        return {
            "heatmap": flip_average_logits(preds["heatmap"], flipped["heatmap"]),
            "size": (preds["size"] + flipped["size"].flip(-1)) / 2,
            "offset": preds["offset"],
        }

    def merges_scales(self) -> bool:
        """Multi-scale testing merges boxes by (soft-)NMS per class."""
        return True

    def oracle_maps(self, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        hw = tuple(targets["heatmap"].shape[-2:])
        inds, mask = targets["indices"], targets["mask"]
        return {
            "heatmap": logit(targets["heatmap"]),
            "size": scatter_at(targets["size"], inds, mask, hw),
            "offset": scatter_at(targets["offset"], inds, mask, hw),
        }

    def open_dataset(self, root: Path, split: str | None):
        from centerpoint_suite.datasets.coco import CocoSource

        return CocoSource(root, split, "instances", self.classes or None)

    def default_data(self, cache_dir: Path) -> Path:
        from centerpoint_suite.datasets.synthetic_shapes import generate_shapes

        return generate_shapes(cache_dir / "synthetic_shapes")

    def evaluate(self, source, predictions: list[Predictions], out_dir: Path | None = None) -> dict[str, float]:
        return evaluate_boxes(source, predictions, out_dir)

    def write_results(self, source, predictions: list[Predictions], path: Path) -> None:
        from centerpoint_suite.coco_eval import box_results, write_json

        cat_ids = source.cat_ids if source is not None else list(range(1, len(self.classes) + 1))
        write_json(box_results(predictions, cat_ids), path)

    def draw(self, image: np.ndarray, predictions: Predictions, score_threshold: float = 0.3) -> np.ndarray:
        return draw_boxes(image, predictions, self.classes, score_threshold)

    def primary_metric(self) -> str:
        return "bbox/AP"
