"""KITTI object layout: label / calib / split parsing, the class mapping, errors naming file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from centerpoint_suite.datasets.kitti import (
    KittiObjects,
    KittiSource,
    format_label_lines,
    objects_from_predictions,
    read_calib_file,
    read_label_file,
    read_p2,
    read_split,
    write_label_file,
)
from centerpoint_suite.errors import DataError, UserError
from centerpoint_suite.task import SampleSource
from centerpoint_suite.types import Predictions

VAL = ["000001", "000002", "000004", "000005", "000006", "000008", "000134", "007091"]


# ---------------------------------------------------------------- labels


def test_read_real_label_file(kitti_root: Path) -> None:
    objs = read_label_file(kitti_root / "training" / "label_2" / "000001.txt")
    assert list(objs.type) == ["Truck", "Car", "Cyclist"] + ["DontCare"] * 4
    assert objs.score is None
    np.testing.assert_allclose(objs.bbox[1], [387.63, 181.54, 423.81, 203.12])
    np.testing.assert_allclose(objs.dimensions[1], [1.67, 1.87, 3.69])  # h w l
    np.testing.assert_allclose(objs.location[1], [-16.53, 2.39, 58.49])
    assert objs.rotation_y[1] == pytest.approx(1.57) and objs.alpha[1] == pytest.approx(1.85)
    assert objs.occluded.dtype == np.int64 and objs.occluded[2] == 3 and objs.occluded[3] == -1
    assert objs.boxes3d.shape == (7, 7)
    np.testing.assert_allclose(objs.boxes3d[1], [-16.53, 2.39, 58.49, 1.67, 1.87, 3.69, 1.57])


def test_label_round_trip_reproduces_real_files(kitti_root: Path, tmp_path: Path) -> None:
    for path in sorted((kitti_root / "training" / "label_2").glob("*.txt")):
        objs = read_label_file(path)
        out = tmp_path / path.name
        write_label_file(out, objs)
        again = read_label_file(out)
        for field in ("type", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y"):
            np.testing.assert_array_equal(getattr(again, field), getattr(objs, field), err_msg=f"{path} {field}")
        # the text itself is KITTI's, except DontCare rows which KITTI writes as "-1 -1 -10 ..."
        original = [line for line in path.read_text().splitlines() if not line.startswith("DontCare")]
        written = [line for line in out.read_text().splitlines() if not line.startswith("DontCare")]
        assert written == original


def test_round_trip_with_scores_is_exact_to_printed_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 30
    objs = KittiObjects(
        type=rng.choice(["Car", "Pedestrian", "Cyclist"], n),
        truncated=rng.uniform(0, 1, n),
        occluded=rng.integers(0, 4, n),
        alpha=rng.uniform(-np.pi, np.pi, n),
        bbox=rng.uniform(0, 1000, (n, 4)),
        dimensions=rng.uniform(0.5, 5, (n, 3)),
        location=rng.uniform(-50, 50, (n, 3)),
        rotation_y=rng.uniform(-np.pi, np.pi, n),
        score=rng.uniform(0, 1, n),
    )
    write_label_file(tmp_path / "r" / "000000.txt", objs)
    back = read_label_file(tmp_path / "r" / "000000.txt")
    assert list(back.type) == list(objs.type)
    np.testing.assert_array_equal(back.occluded, objs.occluded)
    for field in ("truncated", "alpha", "bbox", "dimensions", "location", "rotation_y"):
        np.testing.assert_allclose(getattr(back, field), np.round(getattr(objs, field), 2), atol=1e-12)
    np.testing.assert_allclose(back.score, np.round(objs.score, 4), atol=1e-12)
    assert all(len(line.split()) == 16 for line in format_label_lines(objs))
    # an empty result file reads back as no objects
    write_label_file(tmp_path / "empty.txt", KittiObjects.empty(with_score=True))
    assert len(read_label_file(tmp_path / "empty.txt")) == 0


@pytest.mark.parametrize(
    "line,match",
    [
        ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49", "got 14"),
        ("Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57 0.9 7", "got 17"),
        ("Car 0.00 0 1.85 387.63 181.54 abc 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57", "malformed"),
        ("Car 0.00 0.5 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57", "occluded"),
    ],
)
def test_malformed_label_line_names_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    good = "Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01"
    path = tmp_path / "000007.txt"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(DataError, match=match) as info:
        read_label_file(path)
    assert f"{path}:3" in str(info.value)


def test_mixed_score_columns_and_missing_file(tmp_path: Path) -> None:
    good = "Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57"
    path = tmp_path / "x.txt"
    path.write_text(f"{good} 0.5\n{good}\n")
    with pytest.raises(DataError, match=rf"{path}:2"):
        read_label_file(path)
    with pytest.raises(DataError, match="label file not found"):
        read_label_file(tmp_path / "nope.txt")


def test_objects_from_predictions() -> None:
    pred = Predictions(
        "000001",
        np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.float32),
        np.array([0.9, 0.5], np.float32),
        np.array([1, 0]),
        {"dimensions": np.ones((2, 3)), "location": np.zeros((2, 3)), "rotation_y": np.zeros(2), "alpha": np.ones(2)},
    )
    objs = objects_from_predictions(pred, ("Pedestrian", "Car", "Cyclist"))
    assert list(objs.type) == ["Car", "Pedestrian"]
    np.testing.assert_allclose(objs.score, [0.9, 0.5])
    np.testing.assert_allclose(objs.alpha, [1, 1])
    boxes_only = objects_from_predictions(Predictions(1, pred.boxes, pred.scores, pred.classes), ("a", "b"))
    assert np.all(boxes_only.alpha == -10) and np.all(boxes_only.location == -1000)
    assert len(objects_from_predictions(Predictions(1, np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)), ("a",))) == 0


# ---------------------------------------------------------------- calibration and splits


def test_read_calib_file_and_p2(kitti_root: Path) -> None:
    calib = read_calib_file(kitti_root / "training" / "calib" / "000134.txt")
    assert calib["P2"].shape == (3, 4) and calib["R0_rect"].shape == (3, 3)
    assert calib["Tr_velo_to_cam"].shape == (3, 4) and calib["Tr_imu_to_velo"].shape == (3, 4)
    assert calib["P2"][0, 3] == pytest.approx(45.75831)
    fx = {read_p2(p)[0, 0] for p in (kitti_root / "training" / "calib").glob("*.txt")}
    assert sorted(round(float(f), 3) for f in fx) == [707.049, 718.335, 721.538]
    assert read_p2(kitti_root / "training" / "calib" / "000001.txt").dtype == np.float32


def test_calib_errors(tmp_path: Path) -> None:
    bad = tmp_path / "c.txt"
    bad.write_text("P0: 1 2 3 4 5 6 7 8 9 10 11 12\nP2 1 2 3\n")
    with pytest.raises(DataError, match=rf"{bad}:2"):
        read_calib_file(bad)
    bad.write_text("P2: 1 2 x 4 5 6 7 8 9 10 11 12\n")
    with pytest.raises(DataError, match=rf"{bad}:1"):
        read_calib_file(bad)
    bad.write_text("P0: 1 2 3 4 5 6 7 8 9 10 11 12\n")
    with pytest.raises(DataError, match="no 'P2'"):
        read_p2(bad)
    with pytest.raises(DataError, match="calibration file not found"):
        read_p2(tmp_path / "missing.txt")


def test_read_split(kitti_root: Path, tmp_path: Path) -> None:
    assert len(read_split(kitti_root, "val")) == 3769
    assert len(read_split(kitti_root, "train")) == 3712
    custom = tmp_path / "mine.txt"
    custom.write_text("000134\n\n000001\n")
    assert read_split(kitti_root, str(custom)) == ["000134", "000001"]
    with pytest.raises(UserError, match="unknown KITTI split 'nope'.*available: test, train, trainval, val"):
        read_split(kitti_root, "nope")
    # without ImageSets, "all" / "trainval" mean every labelled frame
    root = tmp_path / "k"
    (root / "training" / "label_2").mkdir(parents=True)
    for frame in ("000003", "000001"):
        (root / "training" / "label_2" / f"{frame}.txt").write_text("")
    assert read_split(root, "all") == ["000001", "000003"]
    with pytest.raises(UserError, match="no split files"):
        read_split(root, "val")


# ---------------------------------------------------------------- the sample source


def test_source_reads_the_val_frames(kitti_root: Path) -> None:
    source = KittiSource(kitti_root, "val")
    assert isinstance(source, SampleSource)
    assert source.ids == VAL and len(source) == 8
    assert source.root == kitti_root and source.label_dir == kitti_root / "training" / "label_2"
    assert source.classes == ("Pedestrian", "Car", "Cyclist")
    sample = source[VAL.index("000134")]
    assert sample.image_id == "000134" and sample.image.shape == (370, 1224, 3) and sample.image.dtype == np.uint8
    assert sample.path.endswith("image_2/000134.png")
    targets = ~sample.ignore
    assert np.sum(sample.classes[targets] == 0) == 7 and np.sum(sample.classes[targets] == 2) == 5  # 7 ped, 5 cyc
    assert sample.calib.shape == (3, 4) and sample.calib[0, 0] == pytest.approx(707.0493)
    assert sample.boxes.dtype == np.float32 and sample.classes.dtype == np.int64
    for key, shape in (("dimensions", (3,)), ("location", (3,)), ("rotation_y", ()), ("alpha", ()),
                       ("truncated", ()), ("occluded", ())):  # fmt: skip
        assert sample.objects3d[key].shape == (len(sample), *shape)
    assert len(KittiSource(kitti_root, "train")) == 6


def test_class_mapping(kitti_root: Path) -> None:
    # frame 000001: Truck, Car, Cyclist, 4 x DontCare
    sample = KittiSource(kitti_root, "val")[0]
    np.testing.assert_array_equal(sample.classes, [1, 1, 2, -1, -1, -1, -1])
    np.testing.assert_array_equal(sample.ignore, [True, False, False, True, True, True, True])
    np.testing.assert_allclose(sample.boxes[2], [676.60, 163.95, 688.98, 193.93], rtol=1e-6)
    source = KittiSource(kitti_root, "val", classes=("Car",))
    types = np.array(["Car", "Van", "Truck", "Person_sitting", "Pedestrian", "DontCare", "Tram", "Misc", "Cyclist"])
    keep, cls, ignore = source.map_classes(types)
    np.testing.assert_array_equal(keep, [1, 1, 1, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(cls[keep], [0, 0, 0, -1])
    np.testing.assert_array_equal(ignore[keep], [0, 1, 1, 1])
    keep, cls, ignore = KittiSource(kitti_root, "val", classes=("Cyclist", "Pedestrian")).map_classes(types)
    np.testing.assert_array_equal(keep, [0, 0, 0, 1, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(cls[keep], [1, 1, -1, 0])
    np.testing.assert_array_equal(ignore[keep], [1, 0, 1, 0])


def _copy_frames(kitti_root: Path, dest: Path, frames: list[str]) -> Path:
    for sub, ext in (("image_2", "png"), ("label_2", "txt"), ("calib", "txt")):
        (dest / "training" / sub).mkdir(parents=True, exist_ok=True)
        for frame in frames:
            shutil.copy(kitti_root / "training" / sub / f"{frame}.{ext}", dest / "training" / sub)
    return dest


def test_source_errors_name_the_file(kitti_root: Path, tmp_path: Path) -> None:
    root = _copy_frames(kitti_root, tmp_path / "k", ["000001", "000002"])
    source = KittiSource(root, "all")
    assert len(source[0]) == 7
    (root / "training" / "image_2" / "000002.png").unlink()
    with pytest.raises(DataError, match=r"image file not found: .*image_2/000002\.png"):
        KittiSource(root, "all")  # a labelled frame without its image: an error up front
    with pytest.raises(DataError, match=r"image_2/000002\.png"):
        source[1]
    (root / "training" / "image_2" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"000001\.png: not a decodable image"):
        source[0]
    shutil.copy(kitti_root / "training" / "image_2" / "000002.png", root / "training" / "image_2")
    (root / "training" / "calib" / "000002.txt").unlink()
    with pytest.raises(DataError, match=r"calibration file not found: .*calib/000002\.txt"):
        KittiSource(root, "all")
    with pytest.raises(DataError, match="no training/"):
        KittiSource(tmp_path, "all")
    split = tmp_path / "ids.txt"
    split.write_text("009999\n")
    with pytest.raises(DataError, match="none of the 1 ids"):
        KittiSource(root, str(split))
