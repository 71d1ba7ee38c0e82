"""KITTI evaluator on folders of label / result files (``kitti_eval_dirs``) and on the real
val labels scored against themselves."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from centerpoint_suite.datasets.kitti import read_label_file, write_label_file
from centerpoint_suite.errors import UserError
from centerpoint_suite.tasks.mono3d.eval import format_kitti_metrics, kitti_eval_dirs
from tests.tasks.mono3d.kitti_cases import as_detections, car_row, make_objects

# ---------------------------------------------------------------- folders and real data


def test_kitti_eval_dirs_frames_without_results_are_misses(tmp_path, caplog) -> None:
    """A partial results folder must not score higher than a complete one."""
    gt_dir, res_dir = tmp_path / "label_2", tmp_path / "results"
    gt = make_objects([car_row(k) for k in range(45)])
    for frame in ("000000", "000001", "000002"):
        write_label_file(gt_dir / f"{frame}.txt", gt)
    write_label_file(res_dir / "000001.txt", as_detections(gt, np.ones(45)))
    with caplog.at_level(logging.WARNING):
        strict = kitti_eval_dirs(gt_dir, res_dir)
    assert "2 of 3 frames have no result file" in caplog.text
    # 45 of 135 objects found at precision 1: AP = recall 1/3, to within one of the 40 recall points
    assert abs(strict["Car/3d/moderate/R40@0.7"] - 100 / 3) <= 100 / 40
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        metrics = kitti_eval_dirs(gt_dir, res_dir, skip_missing=True)
    assert "skipped 2 of 3 frames" in caplog.text
    assert metrics["Car/3d/moderate/R40@0.7"] == pytest.approx(100.0)
    # an empty result file is the same as a missing one in strict mode
    (res_dir / "000000.txt").write_text("")
    (res_dir / "000002.txt").write_text("")
    assert kitti_eval_dirs(gt_dir, res_dir) == strict
    # an explicit id list; the KITTI submission layout results/data/*.txt
    write_label_file(tmp_path / "sub" / "data" / "000002.txt", as_detections(gt, np.ones(45)))
    assert kitti_eval_dirs(gt_dir, tmp_path / "sub", ids=["000002"])["Car/bbox/easy/R11@0.7"] == pytest.approx(100)
    assert "Car" in format_kitti_metrics(metrics)


def test_kitti_eval_dirs_errors(tmp_path) -> None:
    gt_dir, res_dir = tmp_path / "label_2", tmp_path / "results"
    write_label_file(gt_dir / "000000.txt", make_objects([car_row(0)]))
    res_dir.mkdir()
    with pytest.raises(UserError, match="no KITTI result files"):
        kitti_eval_dirs(gt_dir, res_dir)
    write_label_file(res_dir / "000000.txt", make_objects([car_row(0)]))  # no score column
    with pytest.raises(UserError, match="16th field"):
        kitti_eval_dirs(gt_dir, res_dir)
    write_label_file(res_dir / "000000.txt", make_objects([car_row(0)], score=True))
    with pytest.raises(UserError, match="label file not found"):
        kitti_eval_dirs(gt_dir, res_dir, ids=["000009"])
    with pytest.raises(UserError, match="not found"):
        kitti_eval_dirs(tmp_path / "nope", res_dir)


def test_real_val_labels_against_themselves(kitti_root, tmp_path) -> None:
    """The 8 real val frames scored against their own labels (score 1), every line kept.

    Car moderate counts objects with height > 25 px, occlusion <= 1 and truncation <= 0.3.
    Each TP adds one recall step, so with n of them precision is 1 at samples 0..n-1 and 0 after:
    R40 = (n - 1) / 40 and R11 = #{0, 4, 8, ...} < n / 11.  The DontCare lines carry alpha = -10,
    so (as the devkit does) AOS is not computed.
    """
    val = (kitti_root / "ImageSets" / "val.txt").read_text().split()
    label_dir = kitti_root / "training" / "label_2"
    frames = [i for i in val if (label_dir / f"{i}.txt").is_file()]
    assert len(frames) == 8
    n = 0
    for frame in frames:
        objs = read_label_file(label_dir / f"{frame}.txt")
        write_label_file(tmp_path / f"{frame}.txt", as_detections(objs, np.ones(len(objs))))
        height = objs.bbox[:, 3] - objs.bbox[:, 1]
        n += int(np.sum((objs.type == "Car") & (height > 25) & (objs.occluded <= 1) & (objs.truncated <= 0.3)))
    assert n == 13
    metrics = kitti_eval_dirs(label_dir, tmp_path, ids=frames)
    assert metrics["Car/bbox/moderate/R40@0.7"] == pytest.approx((n - 1) / 40 * 100) == 30.0
    assert metrics["Car/bbox/moderate/R11@0.7"] == pytest.approx(((n - 1) // 4 + 1) / 11 * 100)  # 36.36
    assert metrics["Car/3d/moderate/R40@0.7"] == pytest.approx(30.0)
    assert metrics["Car/bev/moderate/R40@0.5"] == pytest.approx(30.0)
    assert not any("/aos/" in k for k in metrics)
    # without the DontCare lines the orientation is scored too (identical alphas: AOS = AP)
    for frame in frames:
        objs = read_label_file(tmp_path / f"{frame}.txt")
        write_label_file(tmp_path / f"{frame}.txt", objs.select(objs.type != "DontCare"))
    metrics = kitti_eval_dirs(label_dir, tmp_path, ids=frames)
    assert metrics["Car/aos/moderate/R40@0.7"] == pytest.approx(30.0)
    assert metrics["Car/bbox/moderate/R40@0.7"] == pytest.approx(30.0)
