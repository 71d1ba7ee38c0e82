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

This module holds the entry points (ground truth and detections in, metrics out; result
folders; the table); the matching kernels are in ``eval_matching``, the precision curves and
AP in ``eval_ap``, the rotated-box overlaps in ``rotated_iou``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from centerpoint_suite.datasets.kitti import KittiObjects, read_label_file
from centerpoint_suite.errors import UserError

from .eval_ap import _precision_curve, ap_r11, ap_r40
from .eval_matching import (
    _KIND_3D,
    _KIND_BBOX,
    _KIND_BBOX_DET_AREA,
    _KIND_BEV,
    _frame_overlaps,
    get_thresholds,
)

__all__ = [
    "evaluate_kitti",
    "kitti_eval_dirs",
    "format_kitti_metrics",
    "CLASS_IOU",
    "DIFFICULTIES",
    "get_thresholds",
]

log = logging.getLogger(__name__)

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
