"""The KITTI object benchmark, computed as the official devkit (``evaluate_object.cpp``) does.

Metrics: 2D box AP (``bbox``), average orientation similarity (``aos``), bird's-eye-view AP
(``bev``) and 3D AP (``3d``) for Car, Pedestrian and Cyclist at the three difficulties, each
with the 11-point (``R11``) and the 40-point (``R40``) recall sampling, and at two sets of
minimum IoU: the strict one (Car 0.7, Pedestrian/Cyclist 0.5) and the loose one
(Car 0.5, Pedestrian/Cyclist 0.25).  Keys ``<Class>/<metric>/<difficulty>/<R11|R40>@<iou>``,
e.g. ``Car/3d/moderate/R40@0.7``; values in percent.  (The python ports' "loose" table keeps
the 2D box at the strict IoU: that number is our strict ``bbox`` key; we also report the 2D
box at the loose IoU.)

Devkit rules reproduced:

- difficulty: a ground-truth (GT) object counts for easy / moderate / hard when its box height
  is > 40 / 25 / 25 px, occlusion <= 0 / 1 / 2 and truncation <= 0.15 / 0.3 / 0.5; other
  objects of the class are "ignored" GT (a detection matched to them is neither TP nor FP);
- neighbouring classes: Van GT is ignored GT for Car, Person_sitting for Pedestrian;
- detections lower than the minimum height (integer height, as the devkit casts it) are
  ignored detections -- whatever their class, a quirk the devkit has;
- DontCare: an unmatched detection whose 2D box lies inside a DontCare region by more than
  the class's minimum overlap (intersection / detection area) is not a false positive.  This
  applies to the 2D metrics; for BEV / 3D the devkit's DontCare boxes sit at -1000 m and never
  overlap (the python ports skip the step there, which gives the same numbers);
- score thresholds: from the TP scores of a first matching pass (highest score wins), at most
  one per TP, spaced to approximate 41 recall steps (``getThresholds``); then for each
  threshold a second matching (largest overlap wins) counts TP / FP / FN and the orientation
  similarity ``(1 + cos(alpha_gt - alpha_det)) / 2`` of the TPs;
- precision[i] = TP / (TP + FP), aos[i] = similarity / (TP + FP), each replaced by its maximum
  over i..40; AP R11 = mean of samples 0, 4, ..., 40; AP R40 = mean of samples 1..40.
  Because a TP adds at most one sample, a class/difficulty with n < 40 GT objects scores at
  most R40 = (n - 1) / 40 even with perfect detections;
- AOS is computed only when no detection has alpha = -10 ("orientation not given").

Beyond the devkit: a class/difficulty without any counted GT object has no key (the devkit
would report 0); frames are matched by position in the lists given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np

from centerpoint_suite.datasets.kitti import KittiObjects, read_label_file
from centerpoint_suite.errors import UserError

from .rotated_iou import bev_pair, box2d_pair, box3d_pair

__all__ = [
    "evaluate_kitti",
    "kitti_eval_dirs",
    "format_kitti_metrics",
    "CLASS_IOU",
    "DIFFICULTIES",
    "get_thresholds",
]

log = logging.getLogger(__name__)

N_SAMPLE_PTS = 41
DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
#: class -> (strict, loose) minimum overlap
CLASS_IOU: dict[str, tuple[float, float]] = {
    "Car": (0.7, 0.5),
    "Pedestrian": (0.5, 0.25),
    "Cyclist": (0.5, 0.25),
}
_NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
_KIND_BBOX, _KIND_BBOX_DET_AREA, _KIND_BEV, _KIND_3D = 0, 1, 2, 3
_NO_DETECTION = -10000000.0


@numba.njit(cache=True)
def _frame_overlaps(
    dt: np.ndarray, gt: np.ndarray, dt_off: np.ndarray, gt_off: np.ndarray, ov_off: np.ndarray, kind: int
) -> np.ndarray:
    """Per-frame overlap of every detection with every GT object, flattened.

    dt (D, 4) or (D, 7), gt (G, 4) or (G, 7): 2D boxes or 3D boxes ``x, y, z, h, w, l, ry``
    of all frames concatenated; ``*_off`` (F + 1,) frame offsets.  Entry
    ``ov[ov_off[f] + jd * ng_f + ig]`` is the overlap of the frame's jd-th detection with its
    ig-th GT object.  kind: 0 2D IoU, 1 2D intersection / detection area, 2 BEV IoU, 3 3D IoU.
    """
    out = np.zeros(ov_off[-1], np.float64)
    work = np.empty((72, 2), np.float64)
    for f in range(dt_off.shape[0] - 1):
        g0 = gt_off[f]
        ng = gt_off[f + 1] - g0
        base = ov_off[f]
        for j in range(dt_off[f], dt_off[f + 1]):
            row = base + (j - dt_off[f]) * ng
            for i in range(g0, g0 + ng):
                if kind == 0:
                    o = box2d_pair(dt, j, gt, i, -1)
                elif kind == 1:
                    o = box2d_pair(dt, j, gt, i, 0)
                elif kind == 2:
                    o = bev_pair(dt, j, gt, i, -1, work)
                else:
                    o = box3d_pair(dt, j, gt, i, -1, work)
                out[row + i - g0] = o
    return out


@numba.njit(cache=True)
def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_pts: int = N_SAMPLE_PTS) -> np.ndarray:
    """Score thresholds approximating ``num_sample_pts`` evenly spaced recall values (devkit).

    scores: TP scores of the first matching pass; num_gt: counted GT objects (> 0).  Walks the
    scores in descending order and keeps a score when its recall is at least as close to the
    next recall step as the following score's is -- so at most one threshold per TP.
    """
    s = np.sort(scores)[::-1]
    out = np.empty(s.shape[0], np.float64)
    n = 0
    current = 0.0
    for i in range(s.shape[0]):
        l_recall = (i + 1) / num_gt
        last = i == s.shape[0] - 1
        r_recall = l_recall if last else (i + 2) / num_gt
        if (r_recall - current) < (current - l_recall) and not last:
            continue
        out[n] = s[i]
        n += 1
        current += 1.0 / (num_sample_pts - 1.0)
    return out[:n]


@numba.njit(cache=True)
def _frame_statistics(
    ov: np.ndarray,
    dc_ov: np.ndarray,
    base: int,
    ng: int,
    g0: int,
    d0: int,
    rg: np.ndarray,
    rd: np.ndarray,
    dcg: np.ndarray,
    ignored_gt: np.ndarray,
    ignored_dt: np.ndarray,
    score: np.ndarray,
    gt_alpha: np.ndarray,
    dt_alpha: np.ndarray,
    min_overlap: float,
    compute_fp: bool,
    thresh: float,
    use_dc: bool,
    assigned: np.ndarray,
    tp_scores: np.ndarray,
    n_scores: int,
) -> tuple[int, int, int, float, int]:
    """Devkit ``computeStatistics`` for one frame -> (tp, fp, fn, similarity, n_scores).

    rg / rd: global indices of the frame's GT objects / detections that are not of an
    unrelated class (ignored_gt / ignored_dt != -1), in file order; dcg: its DontCare rows.
    Without compute_fp, TP scores are appended to ``tp_scores`` from ``n_scores`` on.
    """
    nd = rd.shape[0]
    for k in range(nd):
        assigned[k] = False
    tp = 0
    fp = 0
    fn = 0
    similarity = 0.0
    for a in range(rg.shape[0]):
        i = rg[a]
        det_k = -1
        valid = _NO_DETECTION
        max_overlap = 0.0
        assigned_ignored = False
        for k in range(nd):
            if assigned[k]:
                continue
            j = rd[k]
            if compute_fp and score[j] < thresh:
                continue
            o = ov[base + (j - d0) * ng + (i - g0)]
            if o <= min_overlap:
                continue
            if not compute_fp:
                if score[j] > valid:
                    det_k = k
                    valid = score[j]
            elif (o > max_overlap or assigned_ignored) and ignored_dt[j] == 0:
                max_overlap = o
                det_k = k
                valid = 1.0
                assigned_ignored = False
            elif valid == _NO_DETECTION and ignored_dt[j] == 1:
                det_k = k
                valid = 1.0
                assigned_ignored = True
        if valid == _NO_DETECTION:
            if ignored_gt[i] == 0:
                fn += 1
        elif ignored_gt[i] == 1 or ignored_dt[rd[det_k]] == 1:
            assigned[det_k] = True
        else:
            j = rd[det_k]
            tp += 1
            if not compute_fp:
                tp_scores[n_scores] = score[j]
                n_scores += 1
            similarity += (1.0 + np.cos(gt_alpha[i] - dt_alpha[j])) / 2.0
            assigned[det_k] = True
    if compute_fp:
        for k in range(nd):
            j = rd[k]
            if not (assigned[k] or ignored_dt[j] == 1 or score[j] < thresh):
                fp += 1
        if use_dc:
            nstuff = 0
            for c in range(dcg.shape[0]):
                i = dcg[c]
                for k in range(nd):
                    j = rd[k]
                    if assigned[k] or ignored_dt[j] == 1 or score[j] < thresh:
                        continue
                    if dc_ov[base + (j - d0) * ng + (i - g0)] > min_overlap:
                        assigned[k] = True
                        nstuff += 1
            fp -= nstuff
    return tp, fp, fn, similarity, n_scores


@numba.njit(cache=True)
def _precision_curve(
    ov: np.ndarray,
    dc_ov: np.ndarray,
    ov_off: np.ndarray,
    gt_off: np.ndarray,
    dt_off: np.ndarray,
    rg: np.ndarray,
    rg_off: np.ndarray,
    rd: np.ndarray,
    rd_off: np.ndarray,
    dcg: np.ndarray,
    dcg_off: np.ndarray,
    ignored_gt: np.ndarray,
    ignored_dt: np.ndarray,
    score: np.ndarray,
    gt_alpha: np.ndarray,
    dt_alpha: np.ndarray,
    min_overlap: float,
    use_dc: bool,
    num_gt: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Devkit ``eval_class``: interpolated precision and AOS at the 41 recall samples."""
    n_frames = gt_off.shape[0] - 1
    max_nd = 1
    for f in range(n_frames):
        max_nd = max(max_nd, rd_off[f + 1] - rd_off[f])
    assigned = np.zeros(max_nd, np.bool_)
    tp_scores = np.empty(max(rg.shape[0], 1), np.float64)
    n_scores = 0
    for f in range(n_frames):
        ng = gt_off[f + 1] - gt_off[f]
        _, _, _, _, n_scores = _frame_statistics(
            ov,
            dc_ov,
            ov_off[f],
            ng,
            gt_off[f],
            dt_off[f],
            rg[rg_off[f] : rg_off[f + 1]],
            rd[rd_off[f] : rd_off[f + 1]],
            dcg[dcg_off[f] : dcg_off[f + 1]],
            ignored_gt,
            ignored_dt,
            score,
            gt_alpha,
            dt_alpha,
            min_overlap,
            False,
            0.0,
            use_dc,
            assigned,
            tp_scores,
            n_scores,
        )
    thresholds = get_thresholds(tp_scores[:n_scores], num_gt, N_SAMPLE_PTS)
    nt = min(thresholds.shape[0], N_SAMPLE_PTS)
    pr = np.zeros((nt, 4), np.float64)  # tp, fp, fn, similarity
    for f in range(n_frames):
        ng = gt_off[f + 1] - gt_off[f]
        for t in range(nt):
            tp, fp, fn, sim, _ = _frame_statistics(
                ov,
                dc_ov,
                ov_off[f],
                ng,
                gt_off[f],
                dt_off[f],
                rg[rg_off[f] : rg_off[f + 1]],
                rd[rd_off[f] : rd_off[f + 1]],
                dcg[dcg_off[f] : dcg_off[f + 1]],
                ignored_gt,
                ignored_dt,
                score,
                gt_alpha,
                dt_alpha,
                min_overlap,
                True,
                thresholds[t],
                use_dc,
                assigned,
                tp_scores,
                0,
            )
            pr[t, 0] += tp
            pr[t, 1] += fp
            pr[t, 2] += fn
            pr[t, 3] += sim  # the devkit skips frames with neither TP nor FP: their sum is 0
    precision = np.zeros(N_SAMPLE_PTS, np.float64)
    aos = np.zeros(N_SAMPLE_PTS, np.float64)
    for t in range(nt):
        den = pr[t, 0] + pr[t, 1]
        if den > 0:
            precision[t] = pr[t, 0] / den
            aos[t] = pr[t, 3] / den
    for t in range(nt):
        precision[t] = np.max(precision[t:])
        aos[t] = np.max(aos[t:])
    return precision, aos


def ap_r11(precision: np.ndarray) -> float:
    """11-point AP (percent) from the 41 interpolated precision samples: samples 0, 4, ..., 40."""
    return float(np.sum(precision[0:N_SAMPLE_PTS:4]) / 11.0 * 100.0)


def ap_r40(precision: np.ndarray) -> float:
    """40-point AP (percent): samples 1..40 (recall 1/40 .. 1; recall 0 excluded)."""
    return float(np.sum(precision[1:N_SAMPLE_PTS]) / 40.0 * 100.0)


class _Stacked:
    """All frames' objects concatenated, with (F + 1,) frame offsets."""

    def __init__(self, annos: Sequence[KittiObjects], need_score: bool) -> None:
        counts = np.array([len(a) for a in annos], dtype=np.int64)
        self.off = np.zeros(len(annos) + 1, np.int64)
        np.cumsum(counts, out=self.off[1:])
        parts = [a for a in annos if len(a)] or [KittiObjects.empty(with_score=need_score)]
        self.name = np.concatenate([np.char.lower(np.asarray(a.type, dtype=str)) for a in parts])
        self.truncated = np.concatenate([a.truncated for a in parts]).astype(np.float64)
        self.occluded = np.concatenate([a.occluded for a in parts]).astype(np.int64)
        self.alpha = np.ascontiguousarray(np.concatenate([a.alpha for a in parts]), dtype=np.float64)
        self.bbox = np.ascontiguousarray(np.concatenate([a.bbox for a in parts]), dtype=np.float64)
        self.box3d = np.ascontiguousarray(np.concatenate([a.boxes3d for a in parts]), dtype=np.float64)
        if need_score:
            for k, a in enumerate(annos):
                if len(a) and a.score is None:
                    raise UserError(f"detections of frame #{k} have no score (16th field of a KITTI result line)")
            self.score = np.ascontiguousarray(
                np.concatenate([a.score if a.score is not None else np.zeros(0) for a in parts]), dtype=np.float64
            )
        self.height = self.bbox[:, 3] - self.bbox[:, 1]


def _rows_by_frame(mask: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(mask).astype(np.int64)
    return rows, np.searchsorted(rows, off, side="left").astype(np.int64)


def evaluate_kitti(
    gt_annos: Sequence[KittiObjects],
    dt_annos: Sequence[KittiObjects],
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
) -> dict[str, float]:
    """KITTI AP of detections against ground truth, frame by frame (lists aligned by position).

    gt_annos: raw label rows per frame (all types: DontCare, Van, ... are used by the rules).
    dt_annos: detections per frame with ``score`` set (type names as in KITTI, any case).
    Returns ``{"<Class>/<bbox|aos|bev|3d>/<easy|moderate|hard>/<R11|R40>@<iou>": percent}``
    for both IoU sets (see the module docstring); ``aos`` is left out when a detection has
    alpha = -10, a class/difficulty without counted GT objects is left out.
    """
    if len(gt_annos) != len(dt_annos):
        raise UserError(f"{len(gt_annos)} ground-truth frames but {len(dt_annos)} detection frames")
    unknown = [c for c in classes if c not in CLASS_IOU]
    if unknown:
        raise UserError(f"KITTI evaluation supports {', '.join(CLASS_IOU)}; got {', '.join(unknown)}")
    gt = _Stacked(gt_annos, need_score=False)
    dt = _Stacked(dt_annos, need_score=True)
    ov_off = np.zeros(len(gt_annos) + 1, np.int64)
    np.cumsum(np.diff(gt.off) * np.diff(dt.off), out=ov_off[1:])
    overlaps = {
        "bbox": _frame_overlaps(dt.bbox, gt.bbox, dt.off, gt.off, ov_off, _KIND_BBOX),
        "bev": _frame_overlaps(dt.box3d, gt.box3d, dt.off, gt.off, ov_off, _KIND_BEV),
        "3d": _frame_overlaps(dt.box3d, gt.box3d, dt.off, gt.off, ov_off, _KIND_3D),
    }
    is_dc = gt.name == "dontcare"
    dc_ov = (
        _frame_overlaps(dt.bbox, gt.bbox, dt.off, gt.off, ov_off, _KIND_BBOX_DET_AREA) if is_dc.any() else np.zeros(0)
    )
    dcg, dcg_off = _rows_by_frame(is_dc, gt.off)
    compute_aos = not bool(np.any(dt.alpha == -10.0))
    dt_height = np.floor(np.abs(dt.height))  # the devkit stores it in an int32
    metrics: dict[str, float] = {}
    for cls in classes:
        name = cls.lower()
        gt_valid = np.where(gt.name == name, 1, np.where(gt.name == _NEIGHBOUR.get(name, "\0"), 0, -1))
        dt_valid = dt.name == name
        for d, difficulty in enumerate(DIFFICULTIES):
            hard_to_count = (
                (gt.occluded > MAX_OCCLUSION[d]) | (gt.truncated > MAX_TRUNCATION[d]) | (gt.height <= MIN_HEIGHT[d])
            )
            ignored_gt = np.where(
                (gt_valid == 1) & ~hard_to_count, 0, np.where((gt_valid == 0) | (gt_valid == 1), 1, -1)
            ).astype(np.int8)
            ignored_dt = np.where(dt_height < MIN_HEIGHT[d], 1, np.where(dt_valid, 0, -1)).astype(np.int8)
            num_gt = int(np.sum(ignored_gt == 0))
            if num_gt == 0:
                log.info("KITTI eval: no %s objects count for %s; no metric reported", cls, difficulty)
                continue
            rg, rg_off = _rows_by_frame(ignored_gt != -1, gt.off)
            rd, rd_off = _rows_by_frame(ignored_dt != -1, dt.off)
            for iou in CLASS_IOU[cls]:
                for metric, ov in overlaps.items():
                    precision, aos = _precision_curve(
                        ov,
                        dc_ov,
                        ov_off,
                        gt.off,
                        dt.off,
                        rg,
                        rg_off,
                        rd,
                        rd_off,
                        dcg,
                        dcg_off,
                        ignored_gt,
                        ignored_dt,
                        dt.score,
                        gt.alpha,
                        dt.alpha,
                        float(iou),
                        metric == "bbox" and dc_ov.size > 0,
                        num_gt,
                    )
                    curves = [(metric, precision)]
                    if metric == "bbox" and compute_aos:
                        curves.append(("aos", aos))
                    for key, curve in curves:
                        prefix = f"{cls}/{key}/{difficulty}"
                        metrics[f"{prefix}/R11@{iou:g}"] = ap_r11(curve)
                        metrics[f"{prefix}/R40@{iou:g}"] = ap_r40(curve)
    return metrics


def _result_files(result_dir: Path) -> dict[str, Path]:
    files = {p.stem: p for p in result_dir.glob("*.txt")}
    if not files and (result_dir / "data").is_dir():  # the KITTI submission layout
        files = {p.stem: p for p in (result_dir / "data").glob("*.txt")}
    return files


def kitti_eval_dirs(
    gt_dir: str | Path,
    result_dir: str | Path,
    ids: Sequence[str] | None = None,
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    skip_missing: bool = False,
) -> dict[str, float]:
    """Score a folder of KITTI result files (``<id>.txt``, label format + score) against labels.

    gt_dir: a ``label_2`` folder; result_dir: the result files (or ``result_dir/data``).
    ids: frames to score (default: every label file); each must have a label file.
    A frame without a result file counts as a frame with no detections (its objects are
    misses), so a partial results folder cannot score higher than a complete one; with
    ``skip_missing`` such frames are left out of the ground truth instead (the offline
    devkit's behaviour), and the count is logged. An empty result folder or no frame in
    common raises ``UserError``.  Returns the metrics of :func:`evaluate_kitti`.
    """
    gt_dir, result_dir = Path(gt_dir), Path(result_dir)
    if not gt_dir.is_dir():
        raise UserError(f"ground-truth label folder not found: {gt_dir}")
    if not result_dir.is_dir():
        raise UserError(f"result folder not found: {result_dir}")
    results = _result_files(result_dir)
    if not results:
        raise UserError(f"no KITTI result files (*.txt) in {result_dir}")
    if ids is None:
        ids = sorted(p.stem for p in gt_dir.glob("*.txt"))
        if not ids:
            raise UserError(f"no KITTI label files (*.txt) in {gt_dir}")
    else:
        missing_gt = [i for i in ids if not (gt_dir / f"{i}.txt").is_file()]
        if missing_gt:
            raise UserError(f"label file not found: {gt_dir / (missing_gt[0] + '.txt')}")
    with_result = [i for i in ids if i in results]
    if not with_result:
        raise UserError(f"no result file in {result_dir} matches a label file in {gt_dir}")
    missing = len(ids) - len(with_result)
    if missing and skip_missing:
        log.warning(
            "KITTI eval: skipped %d of %d frames that have no result file in %s (--skip-missing)",
            missing,
            len(ids),
            result_dir,
        )
    elif missing:
        log.warning(
            "KITTI eval: %d of %d frames have no result file in %s: scored as frames without detections "
            "(their objects are misses); --skip-missing leaves them out",
            missing,
            len(ids),
            result_dir,
        )
    frames = with_result if skip_missing else list(ids)
    extra = len(set(results) - set(ids))
    if extra:
        log.warning("KITTI eval: %d result files have no matching frame and are ignored", extra)
    gt_annos = [read_label_file(gt_dir / f"{i}.txt") for i in frames]
    dt_annos = []
    for i in frames:
        if i not in results:
            dt_annos.append(KittiObjects.empty(with_score=True))
            continue
        det = read_label_file(results[i])
        if len(det) and det.score is None:
            raise UserError(f"{results[i]}: result lines need a 16th field, the score")
        dt_annos.append(det)
    log.info("KITTI eval: %d frames", len(frames))
    return evaluate_kitti(gt_annos, dt_annos, classes)


def format_kitti_metrics(metrics: dict[str, float]) -> str:
    """The metrics as a devkit-like table: one row per class / metric / recall sampling / IoU."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        cls, metric, difficulty, tail = key.split("/")
        rows.setdefault(f"{cls:<10} {metric:<4} {tail:<9}", {})[difficulty] = value
    lines = [f"{'class':<10} {'AP':<4} {'sampling':<9} " + " ".join(f"{d:>9}" for d in DIFFICULTIES)]
    for label, values in rows.items():
        cells = " ".join(f"{values[d]:9.2f}" if d in values else f"{'-':>9}" for d in DIFFICULTIES)
        lines.append(f"{label} {cells}")
    return "\n".join(lines)
