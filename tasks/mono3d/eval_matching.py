"""The KITTI devkit's matching, as numba kernels: overlaps of every detection with every
ground-truth object (2D IoU, 2D intersection / detection area, BEV IoU, 3D IoU; the rotated
geometry is in ``rotated_iou``), the score thresholds of the first matching pass
(``getThresholds``) and the per-frame statistics of one matching pass (``computeStatistics``).

The rules they follow are listed in ``eval``'s module docstring; ``eval_ap`` turns the
statistics into precision / AOS curves and AP.
"""

from __future__ import annotations

import numba
import numpy as np

from .rotated_iou import bev_pair, box2d_pair, box3d_pair

N_SAMPLE_PTS = 41
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
