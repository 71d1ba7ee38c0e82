"""pose2d evaluation with pycocotools: keypoints (OKS) and person boxes."""

from __future__ import annotations

from pathlib import Path

from centerpoint_suite.coco_eval import box_results, evaluate_coco, keypoint_results, load_coco, write_json
from centerpoint_suite.types import Predictions


def evaluate_poses(source, predictions: list[Predictions], out_dir: Path | None = None) -> dict[str, float]:
    """keypoints/AP, AP50, AP75, APm, APl and bbox/AP ... APl (fractions 0..1) over the images
    of ``source`` that have predictions. Results files: OUT/keypoints.json, OUT/detections.json.

    As the original, every joint is submitted with score 1 and people are ranked by the
    person (centre) score; COCOeval ignores ground-truth people with no labelled joint.
    """
    cat_id = source.cat_ids[0]
    kp = keypoint_results(predictions, cat_id)
    boxes = box_results(predictions, source.cat_ids)
    if out_dir is not None:
        write_json(kp, Path(out_dir) / "keypoints.json")
        write_json(boxes, Path(out_dir) / "detections.json")
    coco = load_coco(source.ann_file)
    ids = [p.image_id for p in predictions]
    return {
        **evaluate_coco(coco, kp, "keypoints", image_ids=ids, cat_ids=[cat_id]),
        **evaluate_coco(coco, boxes, "bbox", image_ids=ids, cat_ids=source.cat_ids),
    }
