"""KITTI evaluator on hand-built cases: the devkit's score thresholds, its known properties
(one recall step per TP, R11 vs R40, interpolation, AOS, difficulty limits, neighbour classes,
DontCare regions) and its input errors."""

from __future__ import annotations

import numpy as np
import pytest

from centerpoint_suite.datasets.kitti import KittiObjects
from centerpoint_suite.errors import UserError
from centerpoint_suite.tasks.mono3d.eval import evaluate_kitti, get_thresholds
from tests.tasks.mono3d.kitti_cases import as_detections, car_row, make_objects
from tests.tasks.mono3d.kitti_twins import twin_get_thresholds

ALL_SETS = [
    (m, d, r) for m in ("bbox", "aos", "bev", "3d") for d in ("easy", "moderate", "hard") for r in ("R11", "R40")
]


# ---------------------------------------------------------------- thresholds


@pytest.mark.parametrize("num_gt,n_tp", [(1, 1), (13, 13), (40, 40), (50, 37), (200, 150), (1000, 3)])
def test_get_thresholds_matches_twin(num_gt, n_tp) -> None:
    scores = np.random.default_rng(num_gt).uniform(size=n_tp)
    ours = get_thresholds(scores, num_gt, 41)
    assert list(ours) == twin_get_thresholds(list(scores), num_gt)
    assert len(ours) <= min(n_tp, 41)


def test_get_thresholds_one_step_per_tp() -> None:
    assert len(get_thresholds(np.ones(13), 13, 41)) == 13
    assert len(get_thresholds(np.ones(200), 200, 41)) == 41


# ---------------------------------------------------------------- hand-built cases


def test_perfect_detections_score_100_with_41_or_more_objects() -> None:
    gt = [make_objects([car_row(k, alpha=0.1 * k, ry=0.1 * k) for k in range(9)]) for _ in range(5)]  # 45 cars
    dt = [as_detections(g, np.linspace(1, 0.5, len(g))) for g in gt]
    metrics = evaluate_kitti(gt, dt, classes=("Car",))
    for metric, difficulty, sampling in ALL_SETS:
        for iou in ("0.7", "0.5"):
            assert metrics[f"Car/{metric}/{difficulty}/{sampling}@{iou}"] == pytest.approx(100.0)
    assert not any(k.startswith("Pedestrian") for k in metrics)  # no GT: no key


@pytest.mark.parametrize("n", [1, 5, 13, 20, 40])
def test_perfect_detections_are_capped_below_40_objects(n) -> None:
    """One recall step per TP: n < 41 objects -> R40 = (n - 1) / 40, R11 = #{0,4,..} below n / 11."""
    gt = [make_objects([car_row(k) for k in range(n)])]
    dt = [as_detections(gt[0], np.ones(n))]
    metrics = evaluate_kitti(gt, dt, classes=("Car",))
    assert metrics["Car/bbox/easy/R40@0.7"] == pytest.approx((n - 1) / 40 * 100)
    assert metrics["Car/3d/hard/R11@0.7"] == pytest.approx(((n - 1) // 4 + 1) / 11 * 100)
    assert metrics["Car/aos/moderate/R40@0.7"] == pytest.approx((n - 1) / 40 * 100)


def test_known_shift_drops_strict_but_not_loose_iou() -> None:
    """50 cars; 10 detections shifted by 20 % (IoU 2/3, lowest scores): TP at 0.5, FP + FN at 0.7."""
    n, shifted = 50, 10
    gt = [make_objects([car_row(k) for k in range(n)])]
    rows = []
    for k in range(n):
        if k < n - shifted:
            rows.append(car_row(k, score=1.0 - 0.01 * k))
        else:  # 20 px of 100 in 2D, 0.8 m of 4 m along the car in 3D
            row = car_row(k, score=0.4 - 0.01 * (k - n + shifted))
            x1, y1, x2, y2 = row["bbox"]
            row["bbox"] = (x1 + 20, y1, x2 + 20, y2)
            row["loc"] = (row["loc"][0] + 0.8, 1.5, 20.0)
            rows.append(row)
    metrics = evaluate_kitti(gt, [make_objects(rows, score=True)], classes=("Car",))
    # strict: 40 TP of 50 GT, precision 1 up to recall 0.8 = sample 32 -> 33 samples of precision 1
    for metric in ("bbox", "bev", "3d", "aos"):
        assert metrics[f"Car/{metric}/easy/R40@0.7"] == pytest.approx(32 / 40 * 100)
        assert metrics[f"Car/{metric}/easy/R11@0.7"] == pytest.approx(9 / 11 * 100)
        assert metrics[f"Car/{metric}/easy/R40@0.5"] == pytest.approx(100.0)
        assert metrics[f"Car/{metric}/easy/R11@0.5"] == pytest.approx(100.0)


def _tp_fp_case(fp_scores: np.ndarray) -> dict[str, float]:
    """40 cars detected exactly with scores 1.00, 0.99, ...; extra false positives far away."""
    n = 40
    gt = [make_objects([car_row(k) for k in range(n)])]
    rows = [car_row(k, score=1.0 - 0.01 * k) for k in range(n)]
    rows += [car_row(100 + k, score=s) for k, s in enumerate(fp_scores)]
    return evaluate_kitti(gt, [make_objects(rows, score=True)], classes=("Car",))


def test_r11_and_r40_on_an_interleaved_pr_curve() -> None:
    # FP k just below TP k: at the t-th threshold TP = t + 1, FP = t -> precision (t + 1) / (2t + 1)
    metrics = _tp_fp_case(1.0 - 0.01 * np.arange(40) - 0.005)
    prec = [(t + 1) / (2 * t + 1) for t in range(40)] + [0.0]
    assert metrics["Car/bbox/easy/R40@0.7"] == pytest.approx(sum(prec[1:]) / 40 * 100)
    assert metrics["Car/bbox/easy/R11@0.7"] == pytest.approx(sum(prec[0::4]) / 11 * 100)
    assert abs(metrics["Car/bbox/easy/R40@0.7"] - metrics["Car/bbox/easy/R11@0.7"]) > 0.4  # 51.03 vs 51.51


def test_precision_is_interpolated_by_the_maximum_to_the_right() -> None:
    # 10 FP above every TP: raw precision (t + 1) / (t + 11) rises to 40 / 50; interpolated 0.8 everywhere
    metrics = _tp_fp_case(np.full(10, 2.0))
    assert metrics["Car/bbox/easy/R40@0.7"] == pytest.approx(0.8 * 39 / 40 * 100)
    assert metrics["Car/bbox/easy/R11@0.7"] == pytest.approx(0.8 * 10 / 11 * 100)


def test_aos_measures_orientation() -> None:
    gt = [make_objects([car_row(k, alpha=0.3) for k in range(45)])]
    dt = make_objects([car_row(k, alpha=0.3 + (np.pi if k % 2 else np.pi / 2), score=1.0) for k in range(45)], True)
    metrics = evaluate_kitti(gt, [dt], classes=("Car",))
    assert metrics["Car/bbox/easy/R40@0.7"] == pytest.approx(100.0)
    # similarity (1 + cos) / 2: 0 for half a turn, 0.5 for a quarter turn; mean 0.25 at every recall
    assert metrics["Car/aos/easy/R40@0.7"] == pytest.approx(25.0, abs=1.5)
    dt.alpha[0] = -10.0  # "no orientation": the devkit skips AOS altogether
    assert not any("/aos/" in k for k in evaluate_kitti(gt, [dt], classes=("Car",)))


def test_difficulty_limits() -> None:
    # heights 41 / 40 px; occlusion 0 / 1 / 2 / 3; truncation 0.15 / 0.16 / 0.3 / 0.31 / 0.5 / 0.51
    specs = [
        dict(h=41.0),
        dict(h=40.0),
        dict(h=26.0),
        dict(h=25.0),
        dict(occluded=1),
        dict(occluded=2),
        dict(occluded=3),
        dict(truncated=0.15),
        dict(truncated=0.16),
        dict(truncated=0.3),
        dict(truncated=0.31),
        dict(truncated=0.5),
        dict(truncated=0.51),
    ]
    rows = []
    for k, spec in enumerate(specs):
        h = spec.pop("h", 60.0)
        rows.append(car_row(k, bbox=(10.0 + 120 * k, 100.0, 110.0 + 120 * k, 100.0 + h), **spec))
    gt = [make_objects(rows)]
    # ground truth only, no detections: AP 0, but the keys exist iff some object counts
    metrics = evaluate_kitti(gt, [KittiObjects.empty(True)], classes=("Car",))
    assert metrics["Car/bbox/easy/R40@0.7"] == 0.0
    # everything detected exactly: with n counted objects R40 = (n - 1) / 40 (one recall step per TP)
    dt = [as_detections(gt[0], np.ones(len(rows)))]
    metrics = evaluate_kitti(gt, dt, classes=("Car",))
    counted = {
        "easy": 2,  # h 41, truncation 0.15
        "moderate": 7,  # + h 40, h 26, occlusion 1, truncation 0.16, 0.3
        "hard": 10,  # + occlusion 2, truncation 0.31, 0.5  (never: h 25, occlusion 3, truncation 0.51)
    }
    for difficulty, n in counted.items():
        assert metrics[f"Car/bbox/{difficulty}/R40@0.7"] == pytest.approx((n - 1) / 40 * 100), difficulty


def test_neighbour_class_and_small_detections_are_not_false_positives() -> None:
    base = [car_row(k) for k in range(45)]
    van = car_row(50, type="Van")
    gt = [make_objects(base + [van])]
    dets = [dict(r, score=1.0) for r in base]
    dets.append(dict(van, type="Car", score=1.0))  # a Car detection on a Van: ignored, not a FP
    tiny = car_row(60, bbox=(7300.0, 100.0, 7330.0, 120.0), score=1.0)  # 20 px high: ignored detection
    dets.append(tiny)
    metrics = evaluate_kitti(gt, [make_objects(dets, score=True)], classes=("Car",))
    assert metrics["Car/bbox/moderate/R40@0.7"] == pytest.approx(100.0)
    # the same detection on a Truck is a false positive (Truck is no neighbour of Car)
    gt2 = [make_objects(base + [dict(van, type="Truck")])]
    metrics2 = evaluate_kitti(gt2, [make_objects(dets, score=True)], classes=("Car",))
    assert metrics2["Car/bbox/moderate/R40@0.7"] < 100.0


def test_dontcare_regions_absorb_2d_false_positives_only() -> None:
    base = [car_row(k) for k in range(45)]
    dc = dict(type="DontCare", bbox=(6000.0, 90.0, 6200.0, 160.0), truncated=-1, occluded=-1, alpha=-10,
              dims=(-1, -1, -1), loc=(-1000, -1000, -1000), ry=-10)  # fmt: skip
    gt = [make_objects(base + [dc])]
    inside = car_row(50, bbox=(6050.0, 100.0, 6150.0, 150.0), loc=(300.0, 1.5, 20.0), score=2.0)
    dets = [dict(r, score=1.0) for r in base] + [inside]
    metrics = evaluate_kitti(gt, [make_objects(dets, score=True)], classes=("Car",))
    assert metrics["Car/bbox/easy/R40@0.7"] == pytest.approx(100.0)
    assert metrics["Car/3d/easy/R40@0.7"] < 100.0  # the devkit's DontCare has no 3D extent
    # the devkit's bar is the class's minimum overlap: 60 % inside absorbs a Pedestrian (0.5)
    # but not a Car (0.7) false positive
    part_out = dict(inside, bbox=(6140.0, 100.0, 6240.0, 150.0))
    metrics = evaluate_kitti(gt, [make_objects(dets[:-1] + [part_out], score=True)], classes=("Car",))
    assert metrics["Car/bbox/easy/R40@0.7"] < 100.0
    peds = [dict(r, type="Pedestrian") for r in base]
    gt_ped = [make_objects(peds + [dc])]
    dets_ped = [dict(r, score=1.0) for r in peds] + [dict(part_out, type="Pedestrian")]
    metrics = evaluate_kitti(gt_ped, [make_objects(dets_ped, score=True)], classes=("Pedestrian",))
    assert metrics["Pedestrian/bbox/easy/R40@0.5"] == pytest.approx(100.0)


def test_input_errors() -> None:
    gt = [make_objects([car_row(0)])]
    with pytest.raises(UserError, match="2 detection frames"):
        evaluate_kitti(gt, [KittiObjects.empty(True)] * 2)
    with pytest.raises(UserError, match="no score"):
        evaluate_kitti(gt, gt)
    with pytest.raises(UserError, match="Tram"):
        evaluate_kitti(gt, gt, classes=("Tram",))


def test_frames_without_objects() -> None:
    empty_gt, empty_dt = KittiObjects.empty(), KittiObjects.empty(with_score=True)
    assert evaluate_kitti([empty_gt] * 3, [empty_dt] * 3) == {}
    gt = [make_objects([car_row(k) for k in range(45)]), empty_gt]
    dt = [empty_dt, as_detections(gt[0], np.ones(45))]  # detections in the wrong frame
    metrics = evaluate_kitti(gt, dt, classes=("Car",))
    assert metrics["Car/3d/easy/R40@0.7"] == 0.0 and len(metrics) == 48
