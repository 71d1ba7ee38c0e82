"""COCO evaluation is over exactly the task's categories, not every category of the file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.errors import DataError
from centerpoint_suite.tasks.boxes2d.eval import evaluate_boxes
from centerpoint_suite.types import Predictions


def three_category_file(root: Path) -> Path:
    """Two 64x64 images, each with one box of categories a (id 1), b (id 2) and c (id 5)."""
    (root / "val").mkdir(parents=True)
    images, anns = [], []
    for i in range(2):
        cv2.imwrite(str(root / "val" / f"{i}.jpg"), np.full((64, 64, 3), 90, np.uint8))
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 64, "height": 64})
        for k, cid in enumerate((1, 2, 5)):
            box = [4.0 + 18 * k, 8.0 + 3 * i, 14.0, 20.0]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cid, "bbox": box,
                         "area": 280.0, "iscrowd": 0})  # fmt: skip
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 5, "name": "c"}]
    (root / "annotations").mkdir()
    path = root / "annotations" / "instances_val.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def perfect_predictions(source: CocoSource) -> list[Predictions]:
    out = []
    for i in range(len(source)):
        s = source[i]
        out.append(Predictions(s.image_id, s.boxes.copy(), np.ones(len(s), np.float32), s.classes.copy()))
    return out


@pytest.mark.parametrize("names", [("b",), ("c", "a")])
def test_subset_model_scored_over_its_categories_only(tmp_path: Path, names: tuple[str, ...]) -> None:
    three_category_file(tmp_path)
    source = CocoSource(tmp_path, "val", category_names=names)
    metrics = evaluate_boxes(source, perfect_predictions(source))
    # averaged over all three categories of the file this was 1/3 (or 2/3)
    assert metrics["bbox/AP"] == pytest.approx(1.0)


def test_all_categories_still_averaged(tmp_path: Path) -> None:
    three_category_file(tmp_path)
    full = CocoSource(tmp_path, "val")
    preds = perfect_predictions(full)
    preds = [p.select(p.classes != 1) for p in preds]  # category b never predicted
    assert evaluate_boxes(full, preds)["bbox/AP"] == pytest.approx(2 / 3)


def test_unknown_category_id_named(tmp_path: Path) -> None:
    from centerpoint_suite.coco_eval import evaluate_coco, load_coco

    path = three_category_file(tmp_path)
    res = [{"image_id": 1, "category_id": 1, "bbox": [4, 8, 14, 20], "score": 1.0}]
    with pytest.raises(DataError, match=r"\[7\]"):
        evaluate_coco(load_coco(path), res, "bbox", cat_ids=[1, 7])
