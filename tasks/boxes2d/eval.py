"""boxes2d evaluation with pycocotools COCOeval (bbox)."""

from __future__ import annotations

from pathlib import Path

from centerpoint_suite.coco_eval import box_results, evaluate_coco, load_coco, write_json
from centerpoint_suite.types import Predictions


def evaluate_boxes(source, predictions: list[Predictions], out_dir: Path | None = None) -> dict[str, float]:
    """bbox/AP, AP50, AP75, APs, APm, APl (fractions) over the images of ``source`` and exactly
    its categories (``source.cat_ids``: a model trained on some categories of a file is not
    averaged over the others)."""
    results = box_results(predictions, source.cat_ids)
    if out_dir is not None:
        write_json(results, Path(out_dir) / "detections.json")
    coco = load_coco(source.ann_file)
    return evaluate_coco(coco, results, "bbox", image_ids=[p.image_id for p in predictions], cat_ids=source.cat_ids)
