"""KITTI evaluator: hand-built cases, the devkit's known properties, and a plain-python twin."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from centerpoint_suite.datasets.kitti import KittiObjects, read_label_file, write_label_file
from centerpoint_suite.errors import UserError
from centerpoint_suite.tasks.mono3d.eval import (
    evaluate_kitti,
    format_kitti_metrics,
    get_thresholds,
    kitti_eval_dirs,
)
from tests.tasks.mono3d.kitti_twins import twin_2d_iou, twin_3d_iou, twin_bev_iou


def make_objects(rows: list[dict], score: bool = False) -> KittiObjects:
    """Objects from dicts with defaults: an easy, unrotated Car."""
    if not rows:
        return KittiObjects.empty(with_score=score)
    get = lambda key, default: np.array([r.get(key, default) for r in rows], dtype=float)  # noqa: E731
    return KittiObjects(
        type=np.array([r.get("type", "Car") for r in rows]),
        truncated=get("truncated", 0.0),
        occluded=get("occluded", 0).astype(np.int64),
        alpha=get("alpha", 0.0),
        bbox=np.array([r["bbox"] for r in rows], dtype=float),
        dimensions=np.array([r.get("dims", (1.5, 1.6, 4.0)) for r in rows], dtype=float),
        location=np.array([r.get("loc", (0.0, 1.5, 20.0)) for r in rows], dtype=float),
        rotation_y=get("ry", 0.0),
        score=get("score", 1.0) if score else None,
    )


def car_row(k: int, **kw) -> dict:
    """The k-th of a row of non-overlapping easy cars (2D 100 x 50 px, 3D 4 m long along x)."""
    row = {"bbox": (10.0 + 120 * k, 100.0, 110.0 + 120 * k, 150.0), "loc": (6.0 * k, 1.5, 20.0)}
    row.update(kw)
    return row


def as_detections(objs: KittiObjects, scores: np.ndarray) -> KittiObjects:
    out = objs.select(np.arange(len(objs)))
    out.score = np.asarray(scores, dtype=float)
    return out


ALL_SETS = [
    (m, d, r) for m in ("bbox", "aos", "bev", "3d") for d in ("easy", "moderate", "hard") for r in ("R11", "R40")
]


# ---------------------------------------------------------------- thresholds


def twin_get_thresholds(scores, num_gt, num_pts=41):
    scores = sorted(scores, reverse=True)
    out, current = [], 0.0
    for i, s in enumerate(scores):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < len(scores) - 1 else l_recall
        if (r_recall - current) < (current - l_recall) and i < len(scores) - 1:
            continue
        out.append(s)
        current += 1 / (num_pts - 1)
    return out


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


# ---------------------------------------------------------------- plain-python twin of the devkit


def twin_overlaps(gts, dts, metric):
    """Per frame: [detection][gt] overlap lists, from the numpy twins."""

    def overlap(det, g, k, i):
        if metric == "bbox":
            return twin_2d_iou(det.bbox[k], g.bbox[i])
        box = lambda o, j: np.concatenate([o.location[j], o.dimensions[j], [o.rotation_y[j]]])  # noqa: E731
        if metric == "bev":
            return twin_bev_iou(box(det, k)[[0, 2, 4, 5, 6]], box(g, i)[[0, 2, 4, 5, 6]])
        return twin_3d_iou(box(det, k), box(g, i))

    return [[[overlap(det, g, k, i) for i in range(len(g))] for k in range(len(det))] for g, det in zip(gts, dts)]


def twin_eval_class(gts, dts, overlaps, cls, difficulty, metric, min_overlap):
    """Devkit ``eval_class`` transcribed with python lists -> (precision[41], aos[41], n_gt)."""
    d = ("easy", "moderate", "hard").index(difficulty)
    min_h, max_occ, max_trunc = (40, 25, 25)[d], (0, 1, 2)[d], (0.15, 0.3, 0.5)[d]
    neighbour = {"car": "van", "pedestrian": "person_sitting"}.get(cls.lower())

    frames = []
    n_gt = 0
    for g, det, ov in zip(gts, dts, overlaps):
        ig = []
        for i in range(len(g)):
            name = g.type[i].lower()
            valid = 1 if name == cls.lower() else (0 if name == neighbour else -1)
            height = g.bbox[i, 3] - g.bbox[i, 1]
            ignore = g.occluded[i] > max_occ or g.truncated[i] > max_trunc or height <= min_h
            if valid == 1 and not ignore:
                ig.append(0)
                n_gt += 1
            elif valid == 0 or (ignore and valid == 1):
                ig.append(1)
            else:
                ig.append(-1)
        dc = [i for i in range(len(g)) if g.type[i].lower() == "dontcare"]
        idt = []
        for k in range(len(det)):
            height = int(abs(det.bbox[k, 3] - det.bbox[k, 1]))
            idt.append(1 if height < min_h else (0 if det.type[k].lower() == cls.lower() else -1))
        frames.append((g, det, ig, idt, dc, ov))

    def stats(g, det, ig, idt, dc, ov, compute_fp, thresh):
        assigned = [False] * len(det)
        below = [compute_fp and det.score[k] < thresh for k in range(len(det))]
        tp = fp = fn = 0
        v, delta = [], []
        for i in range(len(g)):
            if ig[i] == -1:
                continue
            det_idx, valid, max_ov, assigned_ignored = -1, -10000000.0, 0.0, False
            for k in range(len(det)):
                if idt[k] == -1 or assigned[k] or below[k]:
                    continue
                o = ov[k][i]
                if not compute_fp and o > min_overlap and det.score[k] > valid:
                    det_idx, valid = k, det.score[k]
                elif compute_fp and o > min_overlap and (o > max_ov or assigned_ignored) and idt[k] == 0:
                    max_ov, det_idx, valid, assigned_ignored = o, k, 1, False
                elif compute_fp and o > min_overlap and valid == -10000000.0 and idt[k] == 1:
                    det_idx, valid, assigned_ignored = k, 1, True
            if valid == -10000000.0 and ig[i] == 0:
                fn += 1
            elif valid != -10000000.0 and (ig[i] == 1 or idt[det_idx] == 1):
                assigned[det_idx] = True
            elif valid != -10000000.0:
                tp += 1
                v.append(det.score[det_idx])
                delta.append(g.alpha[i] - det.alpha[det_idx])
                assigned[det_idx] = True
        sim = -1
        if compute_fp:
            fp = sum(1 for k in range(len(det)) if not (assigned[k] or idt[k] in (-1, 1) or below[k]))
            nstuff = 0
            if metric == "bbox":
                for i in dc:
                    for k in range(len(det)):
                        if assigned[k] or idt[k] in (-1, 1) or below[k]:
                            continue
                        if twin_2d_overlap_det(det.bbox[k], g.bbox[i]) > min_overlap:
                            assigned[k] = True
                            nstuff += 1
            fp -= nstuff
            if tp > 0 or fp > 0:
                sim = sum((1 + math.cos(x)) / 2 for x in delta)
        return tp, fp, fn, sim, v

    scores = []
    for fr in frames:
        scores += stats(*fr, False, 0.0)[4]
    thresholds = twin_get_thresholds(scores, n_gt)
    pr = [[0, 0, 0, 0.0] for _ in thresholds]
    for fr in frames:
        for t, th in enumerate(thresholds):
            tp, fp, fn, sim, _ = stats(*fr, True, th)
            pr[t][0] += tp
            pr[t][1] += fp
            pr[t][2] += fn
            if sim != -1:
                pr[t][3] += sim
    precision, aos = [0.0] * 41, [0.0] * 41
    for t in range(len(thresholds)):
        precision[t] = pr[t][0] / (pr[t][0] + pr[t][1])
        aos[t] = pr[t][3] / (pr[t][0] + pr[t][1])
    for t in range(len(thresholds)):
        precision[t] = max(precision[t:])
        aos[t] = max(aos[t:])
    return precision, aos, n_gt


def twin_2d_overlap_det(det_box, region):
    w = min(det_box[2], region[2]) - max(det_box[0], region[0])
    h = min(det_box[3], region[3]) - max(det_box[1], region[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / ((det_box[2] - det_box[0]) * (det_box[3] - det_box[1]))


def random_scene(rng: np.random.Generator, n_frames: int):
    types = np.array(["Car", "Car", "Car", "Pedestrian", "Pedestrian", "Cyclist", "Van", "Person_sitting",
                      "Truck", "DontCare"])  # fmt: skip
    gts, dts = [], []
    for _ in range(n_frames):
        n = rng.integers(0, 9)
        t = rng.choice(types, n)
        xy = rng.uniform(0, 600, (n, 2))
        wh = rng.uniform(10, 120, (n, 2))
        bbox = np.concatenate([xy, xy + wh], 1)
        loc = np.stack([rng.uniform(-8, 8, n), rng.uniform(1, 2, n), rng.uniform(5, 40, n)], 1)
        dims = np.stack([rng.uniform(1.2, 2, n), rng.uniform(0.5, 2, n), rng.uniform(0.5, 5, n)], 1)
        g = KittiObjects(t, rng.choice([0.0, 0.1, 0.2, 0.4, 0.6], n), rng.integers(0, 4, n), rng.uniform(-3, 3, n),
                         bbox, dims, loc, rng.uniform(-3, 3, n))  # fmt: skip
        gts.append(g)
        # detections: jittered copies of some objects (class sometimes wrong) + random boxes
        keep = rng.random(n) < 0.8
        d = g.select(keep)
        m = len(d)
        d.type = np.where(rng.random(m) < 0.15, rng.choice(types[:6], m), d.type)
        d.type = np.where(d.type == "DontCare", "Car", d.type)
        d.bbox = d.bbox + rng.normal(0, 6, (m, 4))
        d.location = d.location + rng.normal(0, 0.4, (m, 3))
        d.dimensions = d.dimensions * rng.uniform(0.8, 1.2, (m, 3))
        d.rotation_y = d.rotation_y + rng.normal(0, 0.3, m)
        d.alpha = d.alpha + rng.normal(0, 0.5, m)
        k = rng.integers(0, 4)
        xy = rng.uniform(0, 600, (k, 2))
        extra = KittiObjects(rng.choice(types[:6], k), np.zeros(k), np.zeros(k, np.int64), rng.uniform(-3, 3, k),
                             np.concatenate([xy, xy + rng.uniform(10, 120, (k, 2))], 1),
                             np.stack([rng.uniform(1.2, 2, k), rng.uniform(0.5, 2, k), rng.uniform(0.5, 5, k)], 1),
                             np.stack([rng.uniform(-8, 8, k), rng.uniform(1, 2, k), rng.uniform(5, 40, k)], 1),
                             rng.uniform(-3, 3, k))  # fmt: skip
        both = KittiObjects(*(np.concatenate([getattr(d, f), getattr(extra, f)]) for f in (
            "type", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y")))  # fmt: skip
        both.score = rng.uniform(0, 1, len(both))
        dts.append(both)
    return gts, dts


@pytest.mark.parametrize("seed", [0, 1])
def test_evaluator_matches_plain_python_twin(seed) -> None:
    rng = np.random.default_rng(seed)
    gts, dts = random_scene(rng, 25)
    metrics = evaluate_kitti(gts, dts)
    overlaps = {m: twin_overlaps(gts, dts, m) for m in ("bbox", "bev", "3d")}
    checked = 0
    for cls in ("Car", "Pedestrian", "Cyclist"):
        for difficulty in ("easy", "moderate", "hard"):
            for metric, iou in (("bbox", 0.7 if cls == "Car" else 0.5), ("bev", 0.5 if cls == "Car" else 0.25),
                                ("3d", 0.7 if cls == "Car" else 0.5)):  # fmt: skip
                precision, aos, n_gt = twin_eval_class(gts, dts, overlaps[metric], cls, difficulty, metric, iou)
                key = f"{cls}/{metric}/{difficulty}/R40@{iou:g}"
                if n_gt == 0:
                    assert key not in metrics
                    continue
                assert metrics[key] == pytest.approx(sum(precision[1:]) / 40 * 100, abs=1e-9), key
                key11 = key.replace("R40", "R11")
                assert metrics[key11] == pytest.approx(sum(precision[::4]) / 11 * 100, abs=1e-9), key11
                if metric == "bbox":
                    aos_key = key.replace("bbox", "aos")
                    assert metrics[aos_key] == pytest.approx(sum(aos[1:]) / 40 * 100, abs=1e-9), aos_key
                checked += metrics[key] > 0
    assert checked >= 8  # the random scene produces real, non-zero APs


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


def test_frame_overlap_kernel_matches_twins() -> None:
    from centerpoint_suite.tasks.mono3d.eval import _frame_overlaps

    gts, dts = random_scene(np.random.default_rng(5), 6)
    g_off = np.concatenate([[0], np.cumsum([len(g) for g in gts])])
    d_off = np.concatenate([[0], np.cumsum([len(d) for d in dts])])
    o_off = np.concatenate([[0], np.cumsum(np.diff(g_off) * np.diff(d_off))])
    stack = lambda annos, f: np.ascontiguousarray(np.concatenate([getattr(a, f) for a in annos]), float)  # noqa: E731
    for kind, metric, field in ((0, "bbox", "bbox"), (2, "bev", "boxes3d"), (3, "3d", "boxes3d")):
        flat = _frame_overlaps(stack(dts, field), stack(gts, field), d_off, g_off, o_off, kind)
        twin = np.concatenate([np.ravel(np.array(m, dtype=float)) for m in twin_overlaps(gts, dts, metric)])
        assert flat.shape == twin.shape and np.abs(flat - twin).max() < 1e-9, metric
        assert (flat > 0).sum() > 5


def test_frames_without_objects() -> None:
    empty_gt, empty_dt = KittiObjects.empty(), KittiObjects.empty(with_score=True)
    assert evaluate_kitti([empty_gt] * 3, [empty_dt] * 3) == {}
    gt = [make_objects([car_row(k) for k in range(45)]), empty_gt]
    dt = [empty_dt, as_detections(gt[0], np.ones(45))]  # detections in the wrong frame
    metrics = evaluate_kitti(gt, dt, classes=("Car",))
    assert metrics["Car/3d/easy/R40@0.7"] == 0.0 and len(metrics) == 48
