"""COCO annotation files: each defect is one line naming the file (and annotation id)."""

from __future__ import annotations

import json
import logging

import pytest

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.errors import DataError

from .conftest import PERSON


def ann(**fields) -> dict:
    base = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [4, 4, 20, 12], "area": 240, "iscrowd": 0}
    return {**base, **fields}


CASES = {
    "unknown-category-id": (ann(category_id=9), "annotation id 7: unknown category id 9 (the file lists [1, 2])"),
    "negative-width": (ann(bbox=[4, 4, -3, 12]), "annotation id 7: negative box width or height [4, 4, -3, 12]"),
    "nan-coordinate": (ann(bbox=[4, float("nan"), 20, 12]), "annotation id 7: 'bbox' must be 4 finite numbers"),
    "string-coordinate": (ann(bbox=[4, "4", 20, 12]), "annotation id 7: 'bbox' must be 4 finite numbers"),
    "three-numbers": (ann(bbox=[4, 4, 20]), "annotation id 7: 'bbox' must be 4 finite numbers"),
    "unknown-image": (ann(image_id=99), "annotation id 7 refers to unknown image 99"),
    "float-category": (ann(category_id=1.5), "annotation id 7: 'category_id' must be an integer, got 1.5"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_annotation_named_by_file_and_id(coco, cli, case) -> None:
    bad, message = CASES[case]
    path = coco(annotations=[ann(id=1), bad])
    res = cli("oracle", "--task", "boxes2d", "--data", path.parents[1], "--split", "val")
    assert res.error.startswith(f"{path}: {message}")


def test_zero_size_box_is_a_counted_logged_skip(coco, caplog) -> None:
    path = coco(annotations=[ann(id=1), ann(id=2, bbox=[4, 4, 0, 12]), ann(id=3, bbox=[4, 4, 5, 0])])
    with caplog.at_level(logging.WARNING):
        source = CocoSource(path.parents[1], "val")
    assert source.skipped == 2 and len(source[0]) == 1
    assert "skipped 2 annotation(s) with a zero-width or zero-height box (e.g. id 2)" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty annotation file"), ('{"images": [{"id": 1,\n "file_', ":2:"), ("[]", "not a COCO annotation file")],
    ids=["empty", "truncated", "a-list"],
)
def test_empty_or_truncated_json(coco, cli, text, message) -> None:
    path = coco()
    path.write_text(text)
    res = cli("oracle", "--task", "boxes2d", "--data", path.parents[1], "--split", "val")
    assert res.error.startswith(f"{path}") and message in res.error


@pytest.mark.parametrize(
    ("keypoints", "got"),
    [
        ([10, 10, 2] * 2, "6 values"),
        ([10, 10, 2] * 4, "12 values"),
        ([10, "x", 2] * 3, "a NaN, infinite or non-numeric value"),
        ([10, float("nan"), 2] * 3, "a NaN, infinite or non-numeric value"),
        ({"x": 1}, "a dict"),
    ],
    ids=["short", "long", "string", "nan", "dict"],
)
def test_keypoints_of_wrong_length_or_type(coco, cli, keypoints, got) -> None:
    path = coco(kind="person_keypoints", categories=PERSON, annotations=[ann(keypoints=keypoints, num_keypoints=2)])
    res = cli("oracle", "--task", "pose2d", "--data", path.parents[1], "--split", "val")
    expected = f"{path}: annotation id 7: 'keypoints' must be 9 finite numbers (x, y, v for 3 joints), got {got}"
    assert res.error == expected


def test_keypoints_on_a_category_without_joint_names(coco) -> None:
    # the reader reads every annotation's keypoints as the dataset's joints: a category naming
    # none (or another count) cannot hold them, whatever its values ('' and NaN passed through once)
    categories = [*PERSON, {"id": 2, "name": "thing"}]
    for keypoints in ([5, 6, 2] * 3, ["", 6, 2] * 3):
        annotations = [ann(keypoints=[5, 6, 2] * 3), ann(id=8, category_id=2, keypoints=keypoints)]
        path = coco(kind="person_keypoints", categories=categories, annotations=annotations)
        message = f"{path}: annotation id 8: 'keypoints' on category 2, which names 0 joints, not the 3 read here"
        with pytest.raises(DataError) as err:
            CocoSource(path.parents[1], "val", "person_keypoints")
        assert str(err.value) == message


def test_good_keypoints_and_missing_keypoints_read(coco) -> None:
    path = coco(kind="person_keypoints", categories=PERSON, annotations=[ann(keypoints=[5, 6, 2] * 3), ann(id=8)])
    sample = CocoSource(path.parents[1], "val", "person_keypoints")[0]
    assert sample.keypoints.shape == (2, 3, 3) and sample.keypoints[0, :, 0].tolist() == [5, 5, 5]
    assert sample.keypoints[1].sum() == 0


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([{"id": "1", "file_name": "0.jpg"}], "images[0] needs an integer 'id' and a string 'file_name'"),
        ([{"id": 1}], "images[0] needs an integer 'id'"),
        ([{"id": 1, "file_name": "0.jpg"}, {"id": 1, "file_name": "1.jpg"}], "image id 1 listed twice"),
    ],
    ids=["string-id", "no-file-name", "duplicate-id"],
)
def test_malformed_image_entries(coco, images, message) -> None:
    path = coco()
    data = json.loads(path.read_text())
    data["images"] = images
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CocoSource(path.parents[1], "val")
