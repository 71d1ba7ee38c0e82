"""Synthetic shapes generator: COCO validity, geometry, determinism and the DONE marker."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.datasets.synthetic_common import is_complete
from centerpoint_suite.datasets.synthetic_shapes import CLASSES, generate_shapes, shape_polygon
from centerpoint_suite.errors import UserError

SMALL = {"num_train": 6, "num_val": 3, "image_size": (96, 128)}


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("shapes"), **SMALL, seed=0)


def _load(root: Path, split: str) -> COCO:
    return COCO(str(root / "annotations" / f"instances_{split}.json"))


@pytest.mark.parametrize("split,count", [("train", 6), ("val", 3)])
def test_valid_coco(shapes_root: Path, split: str, count: int) -> None:
    coco = _load(shapes_root, split)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert sorted(coco.getCatIds()) == list(range(1, len(CLASSES) + 1))
    assert len(coco.getImgIds()) == count
    assert len(coco.getAnnIds()) >= count  # at least one object per image
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(shapes_root / split / img["file_name"]))
        assert pixels.shape == (img["height"], img["width"], 3) == (96, 128, 3)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            x, y, w, h = ann["bbox"]
            assert ann["iscrowd"] == 0 and ann["category_id"] in coco.getCatIds()
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= img["width"] and y + h <= img["height"]
            assert 0 < ann["area"] <= w * h
            # visible outline inside the (amodal) box
            for poly in ann["segmentation"]:
                pts = np.asarray(poly).reshape(-1, 2)
                assert (pts >= (x, y)).all() and (pts <= (x + w - 1, y + h - 1)).all()


def test_reader_loads_it(shapes_root: Path) -> None:
    src = CocoSource(shapes_root, "train")
    assert src.classes == CLASSES and len(src) == 6
    sample = src[0]
    assert sample.image.shape == (96, 128, 3) and len(sample) >= 1
    assert (sample.boxes[:, 2:] > sample.boxes[:, :2]).all()


def test_objects_are_drawn_where_annotated(shapes_root: Path) -> None:
    """The visible region of a shape differs in colour from the image median (it is not background)."""
    coco = _load(shapes_root, "train")
    contrasts = []
    for img in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(str(shapes_root / "train" / img["file_name"])).astype(np.float32)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            m = coco.annToMask(ann).astype(bool)
            if m.sum() >= 20:
                ring = cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~m
                contrasts.append(np.linalg.norm(pixels[m].mean(0) - pixels[ring].mean(0)))
    assert len(contrasts) >= 3 and np.median(contrasts) > 40


@pytest.mark.parametrize("cls", range(len(CLASSES)))
def test_shape_polygon_size_and_centre(cls: int) -> None:
    rng = np.random.default_rng(cls)
    for size in (16.0, 50.0, 150.0):
        poly = shape_polygon(rng, cls, size, (60.0, 40.0))
        lo, hi = poly.min(0), poly.max(0)
        assert (hi - lo).max() == pytest.approx(size)
        np.testing.assert_allclose((lo + hi) / 2, (60.0, 40.0), atol=1e-9)


def test_deterministic(tmp_path: Path, shapes_root: Path) -> None:
    again = generate_shapes(tmp_path / "a", **SMALL, seed=0)
    other = generate_shapes(tmp_path / "b", **SMALL, seed=1)
    for split in ("train", "val"):
        name = f"annotations/instances_{split}.json"
        assert (again / name).read_bytes() == (shapes_root / name).read_bytes()
        assert (other / name).read_bytes() != (shapes_root / name).read_bytes()
    assert (again / "train/000003.jpg").read_bytes() == (shapes_root / "train/000003.jpg").read_bytes()


def test_val_independent_of_train_size(tmp_path: Path, shapes_root: Path) -> None:
    root = generate_shapes(tmp_path, num_train=2, num_val=3, image_size=(96, 128), seed=0)
    name = "annotations/instances_val.json"
    assert (root / name).read_bytes() == (shapes_root / name).read_bytes()


def test_done_marker_reuse_and_regenerate(tmp_path: Path) -> None:
    root = generate_shapes(tmp_path, **SMALL, seed=0)
    ann = root / "annotations/instances_train.json"
    reference = ann.read_bytes()
    assert is_complete(root, json.loads((root / "DONE").read_text()))
    # complete set is reused as is
    (root / "train/000000.jpg").write_bytes(b"stale")
    generate_shapes(root, **SMALL, seed=0)
    assert (root / "train/000000.jpg").read_bytes() == b"stale"
    # interrupted run (no marker, truncated json, extra image): regenerated
    (root / "DONE").unlink()
    ann.write_bytes(reference[:100])
    (root / "train/000099.jpg").write_bytes(b"partial")
    generate_shapes(root, **SMALL, seed=0)
    assert ann.read_bytes() == reference
    assert (root / "DONE").is_file() and not (root / "train/000099.jpg").exists()
    assert cv2.imread(str(root / "train/000000.jpg")) is not None
    # other parameters: regenerated
    generate_shapes(root, num_train=4, num_val=3, image_size=(96, 128), seed=0)
    assert len(json.loads(ann.read_text())["images"]) == 4
    assert sorted(p.name for p in (root / "train").iterdir())[-1] == "000003.jpg"


def test_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "my_photo.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="my_photo.jpg"):
        generate_shapes(tmp_path, **SMALL)
    assert (tmp_path / "train" / "my_photo.jpg").exists()


def test_vary_size(tmp_path: Path) -> None:
    root = generate_shapes(tmp_path, num_train=5, num_val=1, image_size=(96, 128), vary_size=True)
    coco = _load(root, "train")
    sizes = set()
    for img in coco.loadImgs(coco.getImgIds()):
        assert cv2.imread(str(root / "train" / img["file_name"])).shape[:2] == (img["height"], img["width"])
        sizes.add((img["height"], img["width"]))
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            x, y, w, h = ann["bbox"]
            assert x + w <= img["width"] and y + h <= img["height"]
    assert len(sizes) > 1
