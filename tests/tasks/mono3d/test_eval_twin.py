"""KITTI evaluator against a plain-python transcription of the devkit on random scenes, and its
overlap kernel against the numpy twins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from centerpoint_suite.datasets.kitti import KittiObjects
from centerpoint_suite.tasks.mono3d.eval import evaluate_kitti
from tests.tasks.mono3d.kitti_twins import twin_2d_iou, twin_3d_iou, twin_bev_iou, twin_get_thresholds

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
