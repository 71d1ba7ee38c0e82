"""mono3d task: targets -> decode round trips on real KITTI frames (per-image calibration in
one batch), ignore regions, flips, focal-normalised depth, loss, result files, drawing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from centerpoint_suite.data import collate, prepare_eval
from centerpoint_suite.datasets.kitti import KittiSource, read_label_file
from centerpoint_suite.geometry import center_scale_affine
from centerpoint_suite.tasks.mono3d import KITTI_DEFAULT_P2, Mono3D
from centerpoint_suite.tasks.mono3d.geometry3d import wrap_angle
from centerpoint_suite.tasks.mono3d.targets import build_mono3d_targets
from centerpoint_suite.transforms import EvalResize
from centerpoint_suite.types import OutputGeometry, Sample

# frames with three different P2 (fx 707.05, 721.54, 718.34) and sizes
FRAMES = ("000000", "000001", "000134", "000006")


@pytest.fixture(scope="module")
def kitti_samples(kitti_root: Path) -> list[Sample]:
    src = KittiSource(kitti_root, "trainval")
    index = {f: i for i, f in enumerate(src.ids)}
    return [src[index[f]] for f in FRAMES]


def _oracle(task: Mono3D, samples: list[Sample], resize: EvalResize):
    items = [prepare_eval(s, task, resize, with_targets=True) for s in samples]
    batch = collate(items)
    return task.decode(task.oracle_maps(batch.targets), batch.meta, k=100), batch


def _match(pred, sample: Sample, kept_only: np.ndarray):
    """Index of the confident detection nearest to each GT object's 2D box."""
    conf = pred.select(pred.scores > 0.9)
    gt = sample.boxes[kept_only]
    d = np.abs(conf.boxes[None, :, :] - gt[:, None, :]).sum(-1)
    return conf, d.argmin(axis=1), d.min(axis=1)


@pytest.mark.parametrize("depth_focal", [None, 150.0])
def test_projected3d_round_trip_recovers_3d_boxes_in_a_mixed_calibration_batch(kitti_samples, depth_focal):
    task = Mono3D(center_mode="projected3d", depth_focal=depth_focal)
    preds, batch = _oracle(task, kitti_samples, EvalResize((384, 1280)))
    assert len({float(c[0, 0]) for c in batch.meta.calib}) == 3  # really several cameras
    for pred, sample, mask in zip(preds, kitti_samples, batch.targets["mask"]):
        targets = ~sample.ignore
        n_slots = int(mask.sum())
        conf, idx, dist = _match(pred, sample, targets)
        assert len(conf) == n_slots  # one confident detection per placed object, none else
        obj = {k: v[targets] for k, v in sample.objects3d.items()}
        inside = dist < 1.0  # objects whose projected centre left the map got no slot
        assert inside.sum() == n_slots
        ex = {k: v[idx[inside]] for k, v in conf.extras.items()}
        np.testing.assert_allclose(conf.boxes[idx[inside]], sample.boxes[targets][inside], atol=0.05)
        np.testing.assert_allclose(ex["location"], obj["location"][inside], atol=0.02)
        np.testing.assert_allclose(ex["dimensions"], obj["dimensions"][inside], atol=1e-4)
        assert np.all(np.abs(wrap_angle(ex["alpha"] - obj["alpha"][inside])) < 1e-4)
        # label rotation_y vs alpha + ray angle: equal up to the labels' 2-decimal rounding
        assert np.all(np.abs(wrap_angle(ex["rotation_y"] - obj["rotation_y"][inside])) < 0.05)
        assert conf.classes[idx[inside]].tolist() == sample.classes[targets][inside].tolist()


def test_box2d_round_trip_keeps_boxes_depth_and_angles(kitti_samples):
    """The original's keypoint: the 2D box centre. 2D box, alpha, dimensions and depth are exact;
    the unprojected location is off by the 2D-centre / 3D-centre gap (the original's limit)."""
    task = Mono3D(center_mode="box2d")
    preds, batch = _oracle(task, kitti_samples, EvalResize((384, 1280)))
    gaps = []
    for pred, sample in zip(preds, kitti_samples):
        targets = ~sample.ignore
        conf, idx, dist = _match(pred, sample, targets)
        assert len(conf) == targets.sum() and dist.max() < 0.05
        obj = {k: v[targets] for k, v in sample.objects3d.items()}
        np.testing.assert_allclose(conf.extras["depth"][idx], obj["location"][:, 2], rtol=1e-4)
        np.testing.assert_allclose(conf.extras["dimensions"][idx], obj["dimensions"], atol=1e-4)
        assert np.all(np.abs(wrap_angle(conf.extras["alpha"][idx] - obj["alpha"])) < 1e-4)
        gaps.append(np.abs(conf.extras["location"][idx] - obj["location"])[:, 0])
    gaps = np.concatenate(gaps)
    assert np.median(gaps) < 0.3 and gaps.max() > 0.05  # close, but not exact


def test_ignore_regions_shape_the_loss_but_never_become_detections(kitti_samples):
    """Frame 000001: a Truck (ignored for Car) and 4 DontCare areas; the original drew 0.9999
    peaks there that decoded as confident detections."""
    sample = kitti_samples[1]
    assert sample.ignore.sum() == 5
    task = Mono3D()
    preds, batch = _oracle(task, [sample], EvalResize((384, 1280)))
    t = batch.targets
    assert t["heatmap_ignore"].sum() > 0
    assert float(t["heatmap"][t["heatmap_ignore"] > 0].max()) < 1.0
    assert (preds[0].scores > 0.5).sum() == (~sample.ignore).sum() == 2
    truck = sample.boxes[sample.ignore][0]
    centres = (preds[0].boxes[:, :2] + preds[0].boxes[:, 2:]) / 2
    near = np.abs(centres - (truck[:2] + truck[2:]) / 2).max(axis=1) < 10
    assert not np.any(preds[0].scores[near] > 0.05)


def test_flip_maps_alpha_to_pi_minus_alpha(kitti_samples):
    sample = kitti_samples[1]
    h, w = sample.hw
    plain = center_scale_affine((w / 2, h / 2), w, (1280, 384)) / 4
    mirror = center_scale_affine((w / 2, h / 2), w, (1280, 384), flip_width=w) / 4
    t0 = build_mono3d_targets(sample, OutputGeometry(plain, (96, 320)), 3, 50)
    t1 = build_mono3d_targets(sample, OutputGeometry(mirror, (96, 320), flipped=True), 3, 50)
    m = int(t0["mask"].sum())
    alpha0 = t0["rotation_res"][:m, 0] - math.pi / 2
    alpha1 = t1["rotation_res"][:m, 0] - math.pi / 2
    np.testing.assert_allclose(wrap_angle(alpha1 - (math.pi - alpha0)), 0, atol=1e-5)
    np.testing.assert_allclose(t1["depth"][:m], t0["depth"][:m])
    assert not np.allclose(t0["indices"][:m], t1["indices"][:m])


def test_focal_normalised_depth_follows_the_zoom(kitti_samples):
    sample = kitti_samples[1]
    h, w = sample.hw
    depth = {}
    for zoom in (1.0, 1.5):
        m = center_scale_affine((w / 2, h / 2), w / zoom, (1280, 384)) / 4
        t = build_mono3d_targets(sample, OutputGeometry(m, (96, 320)), 3, 50, depth_focal=100.0)
        depth[zoom] = t["depth"][: int(t["mask"].sum()), 0]
    np.testing.assert_allclose(depth[1.5] * 1.5, depth[1.0], rtol=1e-5)  # looks closer when zoomed


def test_oracle_losses_vanish_for_regressions(kitti_samples):
    task = Mono3D(center_mode="projected3d")
    batch = collate([prepare_eval(s, task, EvalResize((384, 1280)), with_targets=True) for s in kitti_samples])
    parts = task.loss(task.oracle_maps(batch.targets), batch.targets)
    for key in ("depth", "dimensions", "size", "offset"):
        assert float(parts[key]) < 1e-3, key
    zero = {k: torch.zeros_like(v) for k, v in task.oracle_maps(batch.targets).items()}
    worse = task.loss(zero, batch.targets)
    assert float(worse["rotation"]) > float(parts["rotation"])
    assert float(worse["depth"]) > 5 and torch.isfinite(worse["loss"])


def test_loss_without_objects_is_finite():
    task = Mono3D()
    img = np.zeros((100, 300, 3), np.uint8)
    s = Sample(img, "x", np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool),
               calib=KITTI_DEFAULT_P2, objects3d={})  # fmt: skip
    batch = collate([prepare_eval(s, task, EvalResize((128, 384)), with_targets=True)])
    preds = {k: torch.randn(1, c, 32, 96) for k, c in task.heads().items()}
    parts = task.loss(preds, batch.targets)
    assert all(torch.isfinite(v) for v in parts.values())


def test_oracle_evaluation_and_result_files(kitti_root, tmp_path):
    task = Mono3D(center_mode="projected3d")
    src = KittiSource(kitti_root, "val", task.classes)
    preds, _ = _oracle(task, [src[i] for i in range(len(src))], EvalResize((384, 1280)))
    metrics = task.evaluate(src, preds, tmp_path)
    # 13 moderate cars in the 8 val frames: perfect detections score (13 - 1) / 40 at R40
    assert metrics["Car/3d/moderate/R40@0.7"] == pytest.approx(30.0)
    assert metrics["Car/bbox/moderate/R40@0.7"] == pytest.approx(30.0)
    files = sorted((tmp_path / "kitti_results").glob("*.txt"))
    assert [f.stem for f in files] == sorted(src.ids)
    rows = read_label_file(files[0])
    assert rows.score is not None and np.all(rows.score >= task.min_score)
    assert len(list((tmp_path / "vis").glob("*.png"))) == len(src)


def test_draw_and_calibration_helpers(tmp_path, kitti_samples):
    task = Mono3D(center_mode="projected3d")
    sample = kitti_samples[1]
    preds, _ = _oracle(task, [sample], EvalResize((384, 1280)))
    picture = task.draw(sample.image, preds[0], 0.3)
    assert picture.shape[0] == sample.hw[0] and picture.shape[1] > sample.hw[1]
    assert not np.array_equal(picture[:, : sample.hw[1]], sample.image)
    np.testing.assert_allclose(task.default_calib((375, 1242)), KITTI_DEFAULT_P2)
    assert task.default_calib((400, 1300))[0, 2] == pytest.approx(KITTI_DEFAULT_P2[0, 2] + 29)
    (tmp_path / "p.txt").write_text(" ".join(str(v) for v in KITTI_DEFAULT_P2.ravel()))
    np.testing.assert_allclose(task.read_calib(tmp_path / "p.txt"), KITTI_DEFAULT_P2)
    (tmp_path / "k.txt").write_text("700 0 600 0 700 180 0 0 1")
    assert task.read_calib(tmp_path / "k.txt")[:, 3].tolist() == [0, 0, 0]
    kitti_calib = Path(sample.path).parents[1] / "calib" / f"{sample.image_id}.txt"
    np.testing.assert_allclose(task.read_calib(kitti_calib), sample.calib)


def test_objects_without_a_slot_become_ignore_regions_not_background(kitti_samples):
    """Projected-3D keypoints off the map (a truncated car) -> ignore region of its class."""
    sample = kitti_samples[1]
    h, w = sample.hw
    # a window over columns 0..400 cuts the car whose box spans 387..424 px: its 2D box keeps
    # a sliver on the map, its projected 3D centre (about 405 px) is off the map
    m = center_scale_affine((200, h / 2), 400, (400, 384)) / 4
    geo = OutputGeometry(m, (96, 100))
    box2d = build_mono3d_targets(sample, geo, 3, 50, center_mode="box2d")
    p3d = build_mono3d_targets(sample, geo, 3, 50, center_mode="projected3d")
    assert p3d["mask"].sum() < box2d["mask"].sum()
    car = 1
    assert p3d["heatmap_ignore"][car].sum() > box2d["heatmap_ignore"][car].sum()
