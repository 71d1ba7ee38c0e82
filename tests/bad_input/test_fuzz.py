"""Random bytes and random JSON fed to every reader: a result or a one-line UserError, nothing else."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.datasets.images import read_image
from centerpoint_suite.datasets.kitti import read_calib_file, read_label_file, read_split
from centerpoint_suite.errors import UserError

from .conftest import CAR, P2

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def outcome(fn, *args) -> object:
    """Call ``fn``; a UserError must be one line naming something (a path or option)."""
    try:
        return fn(*args)
    except UserError as e:
        text = str(e)
        assert text and "\n" not in text and "Traceback" not in text, text
        return e


_SCRATCH = tempfile.TemporaryDirectory(prefix="cp-fuzz-")  # removed at interpreter exit


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(dir=_SCRATCH.name))


@given(
    st.binary(max_size=2000) | st.builds(lambda n, b: JPEG[:n] + b, st.integers(0, len(JPEG)), st.binary(max_size=8))
)
@SETTINGS
def test_read_image_random_bytes(data: bytes) -> None:
    path = _scratch() / "x.jpg"
    path.write_bytes(data)
    result = outcome(read_image, path)
    if isinstance(result, UserError):
        assert str(path) in str(result)
    else:
        assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3


TEXT_LINES = st.lists(
    st.sampled_from([CAR, CAR + " 0.5", f"P2: {P2}", "nan", "Car 1 2", "", "P2:", ":", "\x00\xff", "1e999"])
    | st.text(max_size=60),
    max_size=6,
)


@given(TEXT_LINES, st.binary(max_size=200))
@SETTINGS
def test_kitti_text_readers_random_input(lines: list[str], raw: bytes) -> None:
    folder = _scratch()
    for name, content in (("t.txt", "\n".join(lines).encode("utf-8", "surrogatepass")), ("b.txt", raw)):
        path = folder / name
        path.write_bytes(content)
        for reader in (read_label_file, read_calib_file):
            result = outcome(reader, path)
            if isinstance(result, UserError):
                assert str(path) in str(result)
        result = outcome(read_split, folder, str(path))
        if not isinstance(result, UserError):
            assert all(isinstance(i, str) and i for i in result)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
VALUE = st.one_of(st.integers(-2, 3), st.floats(-5, 50) | st.just(math.nan), st.text(max_size=3), st.none(), JSON)


@st.composite
def coco_like(draw) -> dict:
    """A well-formed COCO dict (one image, random boxes / keypoints) with up to three random fields
    replaced by odd values (NaN, wrong types, nested junk) or deleted."""
    joints = draw(st.sampled_from([0, 3]))
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    if joints:
        cats[0]["keypoints"] = ["j", "k", "l"]
    anns = []
    for k in range(draw(st.integers(0, 3))):
        xy, wh = st.floats(-5, 40), st.floats(0, 30)
        bbox = [draw(xy), draw(xy), draw(wh), draw(wh)]
        ann = {"id": k + 1, "image_id": 1, "category_id": draw(st.sampled_from([1, 2])), "iscrowd": 0, "bbox": bbox}
        if joints and draw(st.booleans()):
            ann["keypoints"] = draw(st.lists(st.floats(0, 30), min_size=9, max_size=9))
        anns.append(ann)
    data = {"images": [{"id": 1, "file_name": "0.jpg"}], "annotations": anns, "categories": cats}
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(["images", "annotations", "categories"]))
        entries = data[section]
        entry = entries[draw(st.integers(0, len(entries) - 1))] if entries else {}
        if not entry:
            continue
        key = draw(st.sampled_from(sorted(entry)))
        if draw(st.booleans()):
            entry[key] = draw(VALUE)
        elif isinstance(entry[key], list) and entry[key]:
            entry[key][draw(st.integers(0, len(entry[key]) - 1))] = draw(VALUE)
        else:
            del entry[key]
    return data


def _read_all(root: Path, kind: str) -> int:
    source = CocoSource(root, "val", kind)
    for i in range(len(source)):
        sample = source[i]
        assert np.isfinite(sample.boxes).all() and (sample.boxes[:, 2:] >= sample.boxes[:, :2]).all()
        if sample.keypoints is not None:
            assert np.isfinite(sample.keypoints).all()
    return len(source)


@given(coco_like() | JSON, st.sampled_from(["instances", "person_keypoints"]))
@SETTINGS
def test_coco_reader_random_json(data: object, kind: str) -> None:
    root = _scratch()
    (root / "val").mkdir()
    (root / "val" / "0.jpg").write_bytes(JPEG)
    (root / "annotations").mkdir()
    (root / "annotations" / f"{kind}_val.json").write_text(json.dumps(data))
    result = outcome(_read_all, root, kind)
    if isinstance(result, UserError):
        assert str(root) in str(result)


@given(st.binary(max_size=300))
@SETTINGS
def test_coco_reader_random_bytes(raw: bytes) -> None:
    root = _scratch()
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val.json").write_bytes(raw)
    result = outcome(CocoSource, root, "val")
    assert isinstance(result, UserError) and str(root) in str(result)
