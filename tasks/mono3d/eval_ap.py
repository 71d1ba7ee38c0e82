"""KITTI precision and orientation-similarity curves and their AP (devkit ``eval_class``).

``_precision_curve`` runs the two matching passes of ``eval_matching`` over every frame and
returns precision and AOS at the 41 recall samples, each interpolated by its maximum to the
right; ``ap_r11`` / ``ap_r40`` average the 11-point and 40-point samplings, in percent.
"""

from __future__ import annotations

import numba
import numpy as np

from .eval_matching import N_SAMPLE_PTS, _frame_statistics, get_thresholds


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
