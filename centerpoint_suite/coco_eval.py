"""COCO results files and pycocotools evaluation, shared by the COCO-format tasks."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .errors import DataError
from .types import Predictions

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
KEYPOINT_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl")


def box_results(predictions: list[Predictions], cat_ids: list[int]) -> list[dict]:
    """COCO detection results: one dict per detection, bbox [x, y, w, h] in original pixels."""
    out = []
    for p in predictions:
        if not len(p):
            continue
        xywh = np.concatenate([p.boxes[:, :2], p.boxes[:, 2:] - p.boxes[:, :2]], 1).round(2)
        for box, score, cls in zip(xywh.tolist(), p.scores.tolist(), p.classes.tolist()):
            out.append({"image_id": p.image_id, "category_id": cat_ids[cls], "bbox": box, "score": round(score, 5)})
    return out


def keypoint_results(predictions: list[Predictions], cat_id: int) -> list[dict]:
    """COCO keypoint results: flat [x, y, score] * J per person plus its box."""
    out = []
    for p in predictions:
        if not len(p):
            continue
        kps = p.extras["keypoints"]
        xywh = np.concatenate([p.boxes[:, :2], p.boxes[:, 2:] - p.boxes[:, :2]], 1).round(2)
        for box, score, kp in zip(xywh.tolist(), p.scores.tolist(), kps):
            flat = np.concatenate([kp[:, :2], np.ones((kp.shape[0], 1))], 1).round(2).reshape(-1).tolist()
            out.append(
                {
                    "image_id": p.image_id,
                    "category_id": cat_id,
                    "bbox": box,
                    "keypoints": flat,
                    "score": round(score, 5),
                }
            )
    return out


def write_json(results: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results))
    tmp.replace(path)


def load_coco(ann_file: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(ann_file))


def evaluate_coco(
    coco_gt: COCO,
    results: list[dict],
    iou_type: str,
    image_ids: list | None = None,
    prefix: str | None = None,
    cat_ids: list[int] | None = None,
) -> dict[str, float]:
    """Run COCOeval; returns ``{prefix/AP: ...}`` fractions 0..1 (0 for no detections).

    cat_ids: the category ids the model predicts (the task's classes). COCOeval averages AP
    over every category it evaluates, so a model trained on a subset of a file's categories
    must be scored over that subset only; None evaluates every category of the file.
    """
    names = KEYPOINT_STAT_NAMES if iou_type == "keypoints" else STAT_NAMES
    prefix = prefix or ("keypoints" if iou_type == "keypoints" else "bbox")
    if cat_ids is not None:
        unknown = sorted(set(int(c) for c in cat_ids) - set(coco_gt.getCatIds()))
        if unknown:
            raise DataError(f"category ids {unknown} are not in the annotation file")
    if not results:
        return {f"{prefix}/{n}": 0.0 for n in names}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if image_ids is not None:
            ev.params.imgIds = list(image_ids)
        if cat_ids is not None:
            ev.params.catIds = sorted(int(c) for c in cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 where a category/area has no ground truth; keep it as a missing value (nan)
    return {f"{prefix}/{n}": (float(v) if v >= 0 else float("nan")) for n, v in zip(names, ev.stats)}
