"""Synthetic people generator: COCO keypoint validity, visibility flags, left/right, determinism."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.datasets.synthetic_people import JOINTS, SKELETON, generate_people

SMALL = {"num_train": 12, "num_val": 3, "image_size": (128, 112)}


@pytest.fixture(scope="module")
def people_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_people(tmp_path_factory.mktemp("people"), **SMALL, seed=0)


@pytest.fixture(scope="module")
def coco(people_root: Path) -> COCO:
    return COCO(str(people_root / "annotations" / "person_keypoints_train.json"))


def _keypoints(ann: dict) -> np.ndarray:
    return np.asarray(ann["keypoints"], np.float64).reshape(17, 3)


def test_category(coco: COCO) -> None:
    (cat,) = coco.loadCats(coco.getCatIds())
    assert cat["id"] == 1 and cat["name"] == "person"
    assert cat["keypoints"][:3] == ["nose", "left_eye", "right_eye"] and len(cat["keypoints"]) == 17
    assert tuple(cat["keypoints"]) == JOINTS
    assert len(cat["skeleton"]) == 19 == len(SKELETON)
    assert all(1 <= a <= 17 and 1 <= b <= 17 for a, b in cat["skeleton"])
    assert [16, 14] in cat["skeleton"] and [6, 7] in cat["skeleton"]


def test_annotations_valid(people_root: Path, coco: COCO) -> None:
    assert len(coco.getImgIds()) == 12
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(people_root / "train" / img["file_name"]))
        assert pixels.shape == (img["height"], img["width"], 3) == (128, 112, 3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert 1 <= len(anns) <= 4
        for ann in anns:
            kp = _keypoints(ann)
            v = kp[:, 2]
            x, y, w, h = ann["bbox"]
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0
            assert set(np.unique(v)) <= {0, 1, 2}
            assert ann["num_keypoints"] == int((v > 0).sum()) >= 10
            assert (kp[v == 0, :2] == 0).all()
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= img["width"] and y + h <= img["height"]
            lab = kp[v > 0, :2]
            assert (lab >= (x, y)).all() and (lab <= (x + w, y + h)).all()
            assert (lab >= 0).all() and (lab <= (img["width"] - 1, img["height"] - 1)).all()
            assert 0 < ann["area"] <= w * h


def test_visibility_matches_pixels(coco: COCO) -> None:
    """v=2 joints are not inside another person's visible mask; v=1 joints are (one pixel tolerance)."""
    kernel = np.ones((3, 3), np.uint8)
    seen = {1: 0, 2: 0}
    for img_id in coco.getImgIds():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        masks = [coco.annToMask(a) for a in anns]
        for k, ann in enumerate(anns):
            others = [m for j, m in enumerate(masks) if j != k]
            if not others:
                continue
            union = np.max(others, axis=0)
            core, grown = cv2.erode(union, kernel), cv2.dilate(union, kernel)
            for x, y, v in _keypoints(ann):
                if v == 2:
                    assert not core[int(round(y)), int(round(x))]
                elif v == 1:
                    assert grown[int(round(y)), int(round(x))]
                if v:
                    seen[int(v)] += 1
    assert seen[1] > 0 and seen[2] > 50  # the check was not vacuous


def test_front_facing_left_is_image_right(coco: COCO) -> None:
    pairs = [(5, 6), (11, 12), (1, 2), (3, 4)]  # left/right shoulders, hips, eyes, ears (0-based)
    checked = 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        kp = _keypoints(ann)
        for left, right in pairs:
            if kp[left, 2] and kp[right, 2]:
                assert kp[left, 0] > kp[right, 0]
                checked += 1
    assert checked > 20


def test_reader_loads_it(people_root: Path) -> None:
    src = CocoSource(people_root, "val", kind="person_keypoints")
    assert src.classes == ("person",) and src.num_joints == 17 and len(src) == 3
    sample = src[0]
    assert sample.keypoints is not None and sample.keypoints.shape == (len(sample), 17, 3)


def test_deterministic_and_done(tmp_path: Path, people_root: Path) -> None:
    again = generate_people(tmp_path / "a", **SMALL, seed=0)
    other = generate_people(tmp_path / "b", num_train=12, num_val=3, image_size=(128, 112), seed=5)
    name = "annotations/person_keypoints_train.json"
    assert (again / name).read_bytes() == (people_root / name).read_bytes()
    assert (again / "val/000001.jpg").read_bytes() == (people_root / "val/000001.jpg").read_bytes()
    assert (other / name).read_bytes() != (people_root / name).read_bytes()
    # an interrupted run (no DONE, half-written annotation) is generated again
    (again / "DONE").unlink()
    (again / name).write_text("{")
    generate_people(again, **SMALL, seed=0)
    assert (again / name).read_bytes() == (people_root / name).read_bytes()
    assert (again / "DONE").is_file()
