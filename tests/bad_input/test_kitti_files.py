"""KITTI labels, calibrations and split files: one line naming the file and line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from centerpoint_suite.datasets.kitti import KittiSource

from .conftest import CAR, write_kitti


@pytest.fixture
def kitti(tmp_path: Path) -> Path:
    return write_kitti(tmp_path / "kitti")


LABELS = {
    "too-few-fields": (
        "Car 0.00 0 -1.50 10.00 8.00",
        "expected 15 fields (16 with a score) in a KITTI label line, got 6",
    ),
    "not-a-number": (CAR.replace("1.60 3.90", "1.60 abc"), "malformed KITTI label line (could not convert"),
    "nan-value": (CAR.replace("20.00", "nan"), "non-finite value 'nan' in a KITTI label line"),
}


@pytest.mark.parametrize("case", sorted(LABELS))
def test_bad_label_line_named_by_file_and_line(kitti, cli, case) -> None:
    line, message = LABELS[case]
    label = kitti / "training" / "label_2" / "000001.txt"
    label.write_text(CAR + "\n" + line + "\n")
    res = cli("oracle", "--task", "mono3d", "--data", kitti, "--split", "val")
    assert res.error.startswith(f"{label}:2: {message}")


def test_calib_without_p2(kitti, cli) -> None:
    calib = kitti / "training" / "calib" / "000000.txt"
    calib.write_text("P0: " + " ".join(["1"] * 12) + "\n")
    res = cli("oracle", "--task", "mono3d", "--data", kitti, "--split", "val")
    assert res.error == f"{calib}: no 'P2' line in the calibration file"


def test_split_naming_a_frame_without_image(kitti, cli) -> None:
    (kitti / "training" / "image_2" / "000001.png").unlink()
    res = cli("oracle", "--task", "mono3d", "--data", kitti, "--split", "val")
    assert res.error.startswith(f"image file not found: {kitti / 'training' / 'image_2' / '000001.png'}")


def test_split_naming_frames_without_labels_is_a_counted_logged_skip(kitti, caplog) -> None:
    # partial copies of KITTI are the norm (the split files list all 3769 val frames)
    (kitti / "ImageSets" / "val.txt").write_text("000000\n000001\n000077\n")
    with caplog.at_level(logging.WARNING):
        source = KittiSource(kitti, "val")
    assert source.ids == ["000000", "000001"]
    assert "1 of 3 ids have no label file" in caplog.text


def test_kitti_eval_split_file_naming_a_missing_frame(kitti, cli, tmp_path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "000000.txt").write_text(CAR + " 0.9\n")
    split = tmp_path / "ids.txt"
    split.write_text("000000\n\n000042\n")
    labels = kitti / "training" / "label_2"
    res = cli("kitti-eval", "--gt", labels, "--results", results, "--split-file", split)
    assert res.error.startswith(f"{split}:3: frame 000042 has no label file in {labels}")


def test_kitti_eval_counts_frames_without_results_as_misses(kitti, tmp_path) -> None:
    from click.testing import CliRunner

    from centerpoint_suite.cli.main import main

    # 45 separate cars per frame: the devkit's 40-point recall sampling needs more than 40 objects
    cars = [CAR.replace("10.00 8.00 40.00 60.00", f"{10 + 50 * k}.00 8.00 {40 + 50 * k}.00 60.00") for k in range(45)]
    labels = kitti / "training" / "label_2"
    for frame in ("000000", "000001"):
        (labels / f"{frame}.txt").write_text("".join(c + "\n" for c in cars))
    results = tmp_path / "results"
    results.mkdir()
    (results / "000000.txt").write_text("".join(c + " 0.9\n" for c in cars))  # 000001: no result file
    metrics = {}
    for flag in ([], ["--skip-missing"]):
        out = tmp_path / f"m{len(flag)}.json"
        res = CliRunner().invoke(main, ["kitti-eval", "--gt", str(labels), "--results", str(results),
                                        "--json", str(out), *flag])  # fmt: skip
        assert res.exit_code == 0, res.output
        metrics[len(flag)] = json.loads(out.read_text())["Car/bbox/easy/R40@0.7"]
    assert metrics[1] == pytest.approx(100.0)  # the devkit's skipping: a perfect score
    assert metrics[0] == pytest.approx(50.0, abs=2.5)  # strict: one of two cars missed
