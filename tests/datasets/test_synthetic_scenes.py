"""Synthetic scenes (shapes + people): two COCO files that agree, cross-kind occlusion, determinism,
and the refactored single-kind generators still writing exactly what they wrote before."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.datasets.synthetic_canvas import Canvas
from centerpoint_suite.datasets.synthetic_people import JOINTS, generate_people, place_person
from centerpoint_suite.datasets.synthetic_scenes import CLASSES, generate_scenes
from centerpoint_suite.datasets.synthetic_shapes import generate_shapes

SMALL = {"num_train": 10, "num_val": 2, "image_size": (144, 160)}


@pytest.fixture(scope="module")
def scenes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scenes(tmp_path_factory.mktemp("scenes"), **SMALL, seed=0)


def _coco(root: Path, kind: str, split: str = "train") -> COCO:
    return COCO(str(root / "annotations" / f"{kind}_{split}.json"))


def _keypoints(ann: dict) -> np.ndarray:
    return np.asarray(ann["keypoints"], np.float64).reshape(17, 3)


def test_both_files_load(scenes_root: Path) -> None:
    for split, count in (("train", 10), ("val", 2)):
        boxes = CocoSource(scenes_root, split, "instances")
        pose = CocoSource(scenes_root, split, "person_keypoints")
        assert boxes.classes == CLASSES == ("person", "circle", "rectangle", "triangle", "star", "cross")
        assert pose.classes == ("person",) and pose.num_joints == 17 and boxes.num_joints == 0
        assert len(boxes) == len(pose) == count and boxes.image_dir == pose.image_dir
        sample = pose[0]
        assert sample.keypoints is not None and sample.keypoints.shape == (len(sample), 17, 3)
        assert sample.image.shape == (144, 160, 3)
    kp = _coco(scenes_root, "person_keypoints")
    (cat,) = kp.loadCats(kp.getCatIds())
    assert tuple(cat["keypoints"]) == JOINTS and len(cat["skeleton"]) == 19
    inst = _coco(scenes_root, "instances")
    assert inst.getCatIds(catNms=["person"]) == [cat["id"]]  # the same person id in both files


def test_ids_and_boxes_agree(scenes_root: Path) -> None:
    inst, kp = _coco(scenes_root, "instances"), _coco(scenes_root, "person_keypoints")
    person = kp.getCatIds()[0]
    assert inst.getImgIds() == kp.getImgIds()
    assert inst.loadImgs(inst.getImgIds()) == kp.loadImgs(kp.getImgIds())
    people = inst.loadAnns(inst.getAnnIds(catIds=[person]))
    assert sorted(a["id"] for a in people) == sorted(kp.getAnnIds())
    assert len(set(inst.getAnnIds())) == len(inst.getAnnIds())  # unique ids, shapes and people together
    for a in people:
        b = kp.anns[a["id"]]
        for key in ("image_id", "category_id", "bbox", "area", "segmentation", "iscrowd"):
            assert a[key] == b[key], key
        assert "keypoints" not in a


def test_contents(scenes_root: Path) -> None:
    inst, kp = _coco(scenes_root, "instances"), _coco(scenes_root, "person_keypoints")
    person = kp.getCatIds()[0]
    for img in inst.loadImgs(inst.getImgIds()):
        anns = inst.loadAnns(inst.getAnnIds(imgIds=img["id"]))
        n_people = sum(a["category_id"] == person for a in anns)
        assert 1 <= n_people <= 4 and 1 <= len(anns) - n_people <= 6
        for a in anns:
            x, y, w, h = a["bbox"]
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= img["width"] and y + h <= img["height"]
            assert 0 < a["area"] <= w * h
            # the visible segmentation has (about) the visible area
            assert inst.annToMask(a).sum() == pytest.approx(a["area"], rel=0.35, abs=30)
    inside = total = 0
    for a in kp.loadAnns(kp.getAnnIds()):
        k = _keypoints(a)
        v = k[:, 2]
        assert set(np.unique(v)) <= {0, 1, 2} and a["num_keypoints"] == int((v > 0).sum()) >= 10
        assert (k[v == 0, :2] == 0).all()
        x, y, w, h = a["bbox"]
        lab = k[v > 0, :2]
        inside += int(((lab >= (x, y)) & (lab <= (x + w, y + h))).all(1).sum())
        total += len(lab)
    assert total > 100 and inside == total


def test_people_and_shapes_occlude_each_other(scenes_root: Path) -> None:
    """v=2 joints lie outside every other object's visible mask; v=1 joints lie inside one, and
    some are hidden by shapes; shapes are partly hidden by people too."""
    inst, kp = _coco(scenes_root, "instances"), _coco(scenes_root, "person_keypoints")
    person = kp.getCatIds()[0]
    kernel = np.ones((3, 3), np.uint8)
    hidden_by_shape = shapes_behind_people = 0
    seen = {1: 0, 2: 0}
    for img_id in inst.getImgIds():
        anns = inst.loadAnns(inst.getAnnIds(imgIds=img_id))
        masks = {a["id"]: inst.annToMask(a) for a in anns}
        shape_union = np.max([masks[a["id"]] for a in anns if a["category_id"] != person], axis=0)
        for a in anns:
            if a["category_id"] != person:
                x, y, w, h = (int(round(c)) for c in a["bbox"])
                box = np.zeros_like(shape_union)
                box[y : y + h, x : x + w] = 1
                people_union = np.max([masks[b["id"]] for b in anns if b["category_id"] == person], axis=0)
                shapes_behind_people += bool((box & people_union).sum() > 0.1 * a["area"])
                continue
            others = np.max([m for i, m in masks.items() if i != a["id"]], axis=0)
            core, grown = cv2.erode(others, kernel), cv2.dilate(others, kernel)
            for x, y, v in _keypoints(kp.anns[a["id"]]):
                px, py = int(round(x)), int(round(y))
                if v == 2:
                    assert not core[py, px]
                elif v == 1:
                    assert grown[py, px]
                    hidden_by_shape += int(cv2.dilate(shape_union, kernel)[py, px])
                if v:
                    seen[int(v)] += 1
    assert seen[2] > 100 and seen[1] > 5 and hidden_by_shape > 0 and shapes_behind_people > 0


def test_shape_over_joints_is_refused() -> None:
    """A person keeps its joint rule against objects of another kind: a mask covering only small
    disks at its joints (a tiny pixel fraction) is refused, one beside it is accepted."""
    rng = np.random.default_rng(3)
    canvas = Canvas(np.full((160, 160, 3), 128, np.uint8))
    assert place_person(rng, canvas, 120.0)
    joints = canvas.records[0].joints
    dots = np.zeros((160, 160), np.uint8)
    for x, y in np.round(joints).astype(int):
        cv2.circle(dots, (int(x), int(y)), 1, 1, -1)
    dots = dots.astype(bool)
    covered = canvas.covered(dots)
    assert covered[0] < 0.2 * canvas.full[0]  # the pixel fraction alone would allow it
    assert not canvas.keeps_visible(covered, dots)
    corner = np.zeros((4, 4), bool)
    corner[:] = True
    assert canvas.keeps_visible(canvas.covered(corner, 0, 0), corner, 0, 0)


def test_deterministic_and_done(tmp_path: Path, scenes_root: Path) -> None:
    again = generate_scenes(tmp_path / "a", **SMALL, seed=0)
    other = generate_scenes(tmp_path / "b", num_train=3, num_val=2, image_size=(144, 160), seed=1)
    for name in ("instances_train", "person_keypoints_train", "instances_val", "person_keypoints_val"):
        path = f"annotations/{name}.json"
        assert (again / path).read_bytes() == (scenes_root / path).read_bytes()
    for name in ("person_keypoints_val", "instances_val"):
        assert (other / f"annotations/{name}.json").read_bytes() != (
            scenes_root / f"annotations/{name}.json"
        ).read_bytes()
    assert (again / "train/000007.jpg").read_bytes() == (scenes_root / "train/000007.jpg").read_bytes()
    assert (again / "DONE").read_bytes() == (scenes_root / "DONE").read_bytes()
    # an interrupted run (no DONE, one annotation file missing) is generated again
    (again / "DONE").unlink()
    (again / "annotations/person_keypoints_train.json").unlink()
    generate_scenes(again, **SMALL, seed=0)
    path = "annotations/person_keypoints_train.json"
    assert (again / path).read_bytes() == (scenes_root / path).read_bytes()


def _digest(root: Path) -> str:
    """sha256 over every file of a generated folder (relative path + content hash, sorted)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# recorded with the generators as they were before they were split into canvas pieces (commit f631ba6)
OLD_OUTPUTS = {
    "shapes": {
        "annotations/instances_train.json": "497a96a1758a1ac71c77fc52e5a661381d70657b32e5f8639145d583e66253f6",
        "train/000004.jpg": "02694a15398cef441c3d031cfe607f21d10a8d4fe6eb90a242c019631f8fe187",
        "all": "a7d47c8f79f5b5794bbd6961c6620d199279b2e0da381ff856dbf69148d0f8c8",
        "vary": "e98ea602d8b500e83f5dee20f3dd13207ef8319fde3c5e9809f2faabf549c035",
    },
    "people": {
        "annotations/person_keypoints_train.json": "2417eced74fa5b1e359626ecc328759fbbb074da711a36e9ffdb2f480c3bb9f9",
        "train/000004.jpg": "340c3596de1b8f811235bbcc110878de04bf421e4f132fd69cb801573c383a0b",
        "all": "8b6e9b833a6a416e721cadde1e3ae96730dfa8d8592d239f4bc4bd6655ade9fd",
        "vary": "db82db2d29481ab2f770aa95e6a3c5a8cf9c02eeb7eba81b1f45361568056f20",
    },
}


@pytest.mark.parametrize("name", ["shapes", "people"])
def test_single_kind_generators_unchanged(tmp_path: Path, name: str) -> None:
    generate = {"shapes": generate_shapes, "people": generate_people}[name]
    root = generate(tmp_path / "fixed", num_train=5, num_val=2, image_size=(96, 112), seed=3)
    vary = generate(tmp_path / "vary", num_train=3, num_val=1, image_size=(96, 112), seed=4, vary_size=True)
    found = {rel: _sha(root / rel) for rel in OLD_OUTPUTS[name] if rel not in ("all", "vary")}
    found |= {"all": _digest(root), "vary": _digest(vary)}
    assert found == OLD_OUTPUTS[name]
