"""CocoSource layouts besides ROOT/annotations/<kind>_<split>.json: the annotation json given
directly, or lying in ROOT with the images in a sub-folder (mmpose's test data)."""

from __future__ import annotations

import json
import shutil

import pytest

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.errors import DataError, UserError


@pytest.fixture(scope="module")
def mmpose(shared_dir):
    return shared_dir / "data" / "mmpose_coco"


def test_root_json_with_images_in_a_sub_folder(mmpose) -> None:
    src = CocoSource(mmpose, None, "person_keypoints")  # test_coco_det_*.json is a results list: skipped
    assert src.ann_file.name == "test_coco.json" and src.image_dir.name == "val2017"
    assert len(src) == 4 and src.classes == ("person",)
    sample = src[0]
    assert sample.keypoints.shape == (len(sample), 17, 3) and sample.image.ndim == 3


def test_annotation_json_given_directly(mmpose) -> None:
    src = CocoSource(mmpose / "test_coco.json", "val", "person_keypoints")
    assert src.root == mmpose and src.split == "test_coco" and len(src) == 4


def test_split_that_matches_no_root_json_is_a_clear_error(mmpose) -> None:
    with pytest.raises(DataError, match="no annotation json for split 'train'"):
        CocoSource(mmpose, "train", "person_keypoints")


def test_several_root_jsons_need_a_choice(mmpose, tmp_path) -> None:
    shutil.copytree(mmpose / "val2017", tmp_path / "val2017")
    data = json.loads((mmpose / "test_coco.json").read_text())
    (tmp_path / "a.json").write_text(json.dumps(data))
    (tmp_path / "b.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="several annotation files"):
        CocoSource(tmp_path, None, "person_keypoints")
    assert len(CocoSource(tmp_path, "b", "person_keypoints")) == 4


def test_standard_layout_unchanged(coco_mini) -> None:
    src = CocoSource(coco_mini, None, "person_keypoints")
    assert src.ann_file.name == "person_keypoints_val2017.json" and src.image_dir == coco_mini / "val2017"


def test_folder_without_any_annotation(tmp_path) -> None:
    with pytest.raises(DataError, match="no COCO annotation json"):
        CocoSource(tmp_path, None, "person_keypoints")
