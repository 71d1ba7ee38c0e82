"""The keypoint-heatmap core shared by every task.

Encoding (numpy + numba, per sample, in output cells): gaussian radius, gaussian splat
with element-wise max merge, ignore regions. Decoding (torch, batched): 3x3 peak
extraction, top-K over classes x cells, gather of regression maps at the peaks.
"""

from __future__ import annotations

from typing import Literal

import numba
import numpy as np
import torch
from torch import Tensor

RadiusFormula = Literal["cornernet", "exact"]


def gaussian_radius(
    height: np.ndarray | float,
    width: np.ndarray | float,
    min_overlap: float = 0.7,
    formula: RadiusFormula = "cornernet",
) -> np.ndarray:
    """Radius (output cells, float) within which a shifted box keeps IoU >= ``min_overlap``.

    Three cases of the two box corners moving: one in / one out, both in, both out;
    each a quadratic ``a r^2 + b r + c = 0`` whose smallest positive root bounds r.

    ``formula="cornernet"`` reproduces the expression used by CornerNet and the original
    CenterNet (roots computed as ``(b + sqrt(disc)) / 2``, i.e. without dividing by ``2a``
    and with the wrong sign for the first two cases); checkpoints trained with it expect it.
    ``formula="exact"`` solves the three quadratics correctly (smaller radii for most boxes).
    """
    h = np.asarray(height, dtype=np.float64)
    w = np.asarray(width, dtype=np.float64)
    o = float(min_overlap)
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    sq1 = np.sqrt(np.maximum(b1**2 - 4 * c1, 0))
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    sq2 = np.sqrt(np.maximum(b2**2 - 16 * c2, 0))
    a3 = 4 * o
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    sq3 = np.sqrt(np.maximum(b3**2 - 4 * a3 * c3, 0))
    if formula == "cornernet":
        r1, r2, r3 = (b1 + sq1) / 2, (b2 + sq2) / 2, (b3 + sq3) / 2
    elif formula == "exact":
        r1, r2, r3 = (b1 - sq1) / 2, (b2 - sq2) / 8, (b3 + sq3) / (2 * a3)
    else:
        raise ValueError(f"unknown gaussian radius formula {formula!r}; use 'cornernet' or 'exact'")
    return np.minimum(np.minimum(r1, r2), r3)


def integer_radius(height: np.ndarray, width: np.ndarray, min_overlap: float, formula: RadiusFormula) -> np.ndarray:
    """``max(0, int(radius))`` per object, as used for splatting (int32, shape of inputs)."""
    r = gaussian_radius(height, width, min_overlap, formula)
    return np.maximum(0, np.floor(r)).astype(np.int32)


@numba.njit(cache=True, nogil=True)
def splat_gaussians(heatmap: np.ndarray, channels: np.ndarray, centers: np.ndarray, radii: np.ndarray) -> None:
    """Draw one unnormalised gaussian per object into ``heatmap`` in place, max-merged.

    heatmap:  (C, H, W) float32, output cells.
    channels: (N,) int channel per object.
    centers:  (N, 2) int cell x, y of each peak (may lie outside: clipped window).
    radii:    (N,) int; sigma = (2 r + 1) / 6; the peak value is exactly 1; values below
              float64 eps are dropped (as the original).
    """
    _, H, W = heatmap.shape
    eps = 2.220446049250313e-16
    for n in range(channels.shape[0]):
        c = channels[n]
        cx = centers[n, 0]
        cy = centers[n, 1]
        r = radii[n]
        sigma = (2 * r + 1) / 6.0
        inv = 1.0 / (2.0 * sigma * sigma)
        y0 = max(cy - r, 0)
        y1 = min(cy + r + 1, H)
        x0 = max(cx - r, 0)
        x1 = min(cx + r + 1, W)
        if y0 >= y1 or x0 >= x1:
            continue
        # the gaussian is symmetric: one exp per (|dx|, |dy|) of the window, the same expression
        # (so the same bits) as evaluating every cell
        ax = max(cx - x0, x1 - 1 - cx)
        ay = max(cy - y0, y1 - 1 - cy)
        table = np.empty((ay + 1, ax + 1))
        for dy in range(ay + 1):
            for dx in range(ax + 1):
                g = np.exp(-(dx * dx + dy * dy) * inv)
                table[dy, dx] = 0.0 if g < eps else g
        for y in range(y0, y1):
            row = table[abs(y - cy)]
            for x in range(x0, x1):
                g = row[abs(x - cx)]
                if g > heatmap[c, y, x]:
                    heatmap[c, y, x] = g


@numba.njit(cache=True, nogil=True)
def _fill_boxes_kernel(mask: np.ndarray, channels: np.ndarray, boxes: np.ndarray) -> None:
    C, H, W = mask.shape
    for n in range(channels.shape[0]):
        if boxes[n, 2] <= 0.0 or boxes[n, 3] <= 0.0:  # ends at or before the map's first cell
            continue
        x0 = max(int(np.floor(boxes[n, 0])), 0)
        y0 = max(int(np.floor(boxes[n, 1])), 0)
        x1 = min(int(np.floor(boxes[n, 2])), W - 1)
        y1 = min(int(np.floor(boxes[n, 3])), H - 1)
        c0 = 0 if channels[n] < 0 else channels[n]
        c1 = C if channels[n] < 0 else channels[n] + 1
        for c in range(c0, c1):
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    mask[c, y, x] = 1


def fill_boxes(mask: np.ndarray, channels: np.ndarray, boxes: np.ndarray) -> None:
    """Set ``mask[c, y0:y1+1, x0:x1+1] = 1`` per box (ignore regions), in place.

    mask:     (C, H, W) uint8, output cells.
    channels: (N,) int channel per box in -1..C-1, -1 for every channel.
    boxes:    (N, 4) float x1, y1, x2, y2 in output cells, finite (clipped to the map here;
              a box ending at or before cell 0, x2 <= 0 or y2 <= 0, or starting at or after
              the far edge marks nothing).

    The numba kernel does not bounds-check: shapes, channel range and finiteness are checked
    here, so a bad index is a ValueError rather than a silent write outside the mask.
    """
    channels = np.asarray(channels)
    boxes = np.asarray(boxes)
    if mask.ndim != 3 or channels.ndim != 1 or boxes.shape != (channels.shape[0], 4):
        raise ValueError(
            f"fill_boxes: need mask (C, H, W), channels (N,), boxes (N, 4); got {mask.shape}, "
            f"{channels.shape}, {boxes.shape}"
        )
    if channels.size:
        lo, hi = int(channels.min()), int(channels.max())
        if lo < -1 or hi >= mask.shape[0]:
            raise ValueError(f"fill_boxes: channel {lo if lo < -1 else hi} out of range -1..{mask.shape[0] - 1}")
        if not np.isfinite(boxes).all():
            raise ValueError("fill_boxes: non-finite box coordinates")
    _fill_boxes_kernel(mask, channels, boxes)


def peak_scores(logits: Tensor, kernel: int = 3) -> Tensor:
    """Keep only local maxima of a heatmap: (B, C, H, W) -> same shape, others set to -inf.

    Works on raw logits (sigmoid is monotonic, so the peaks are the same) and computes the
    ``kernel`` x ``kernel`` max as separable shifted maxima, which is several times faster on
    CPU than an NCHW ``max_pool2d``. Ties keep every tied cell, as ``max_pool2d == x`` does.
    """
    if kernel != 3:
        pooled = torch.nn.functional.max_pool2d(logits, kernel, 1, kernel // 2)
        return logits.masked_fill(pooled != logits, float("-inf"))
    row = logits.clone()
    torch.maximum(row[..., :, 1:], logits[..., :, :-1], out=row[..., :, 1:])
    torch.maximum(row[..., :, :-1], logits[..., :, 1:], out=row[..., :, :-1])
    pooled = row.clone()
    torch.maximum(pooled[..., 1:, :], row[..., :-1, :], out=pooled[..., 1:, :])
    torch.maximum(pooled[..., :-1, :], row[..., 1:, :], out=pooled[..., :-1, :])
    return logits.masked_fill(pooled != logits, float("-inf"))


@numba.njit(inline="always")
def _worse(v1: float, i1: int, v2: float, i2: int) -> bool:
    """Peak (v1, i1) ranks below (v2, i2): lower value, or equal value and lower NCHW index."""
    return v1 < v2 or (v1 == v2 and i1 < i2)


@numba.njit(inline="always")
def _sift_down(hv: np.ndarray, hi: np.ndarray, n: int, j: int) -> None:
    while True:
        lo, a, b = j, 2 * j + 1, 2 * j + 2
        if a < n and _worse(hv[a], hi[a], hv[lo], hi[lo]):
            lo = a
        if b < n and _worse(hv[b], hi[b], hv[lo], hi[lo]):
            lo = b
        if lo == j:
            return
        hv[j], hv[lo], hi[j], hi[lo] = hv[lo], hv[j], hi[lo], hi[j]
        j = lo


@numba.njit(fastmath=True, inline="always")
def _vector_max(v: np.ndarray) -> float:
    m = v[0]
    for i in range(1, v.shape[0]):
        m = max(m, v[i])
    return m


@numba.njit(cache=True, nogil=True)
def _topk_peaks_kernel(a: np.ndarray, values: np.ndarray, flat: np.ndarray) -> None:
    """Top-K 3x3 local maxima of finite maps ``a`` (B, H, W, C) in one pass over memory.

    A cell is a peak when no neighbour of its 3x3 window (same channel) is greater (ties keep
    every tied cell, as ``max_pool2d(x) == x``). A min-heap of the K best so far rejects most
    cells with one comparison. Writes values (B, K) descending, ties by descending NCHW flat
    index ``c * H * W + y * W + x`` (``flat``, (B, K)); when fewer than K cells are peaks the rest
    are -inf at the highest unused indices, descending.
    """
    B, H, W, C = a.shape
    k = values.shape[1]
    hw = H * W
    hv = np.empty(k, np.float32)
    hi = np.empty(k, np.int64)
    for b in range(B):
        n = 0
        thr = -np.inf  # the worst value kept once the heap is full; below it: rejected at once
        for y in range(H):
            for x in range(W):
                cell = a[b, y, x]
                if _vector_max(cell) < thr:  # (vectorised) no class of this cell can enter
                    continue
                for c in range(C):
                    v = cell[c]
                    if v < thr:
                        continue
                    idx = c * hw + y * W + x
                    if n == k and not _worse(hv[0], hi[0], v, idx):
                        continue
                    peak = True
                    for yy in range(max(y - 1, 0), min(y + 2, H)):
                        for xx in range(max(x - 1, 0), min(x + 2, W)):
                            if a[b, yy, xx, c] > v:
                                peak = False
                    if not peak:
                        continue
                    if n < k:  # push, sift up
                        j = n
                        hv[j], hi[j] = v, idx
                        n += 1
                        while j > 0 and _worse(hv[j], hi[j], hv[(j - 1) // 2], hi[(j - 1) // 2]):
                            p = (j - 1) // 2
                            hv[j], hv[p], hi[j], hi[p] = hv[p], hv[j], hi[p], hi[j]
                            j = p
                        if n == k:
                            thr = hv[0]
                    else:  # replace the worst
                        hv[0], hi[0] = v, idx
                        _sift_down(hv, hi, n, 0)
                        thr = hv[0]
        m = n
        for j in range(n - 1, -1, -1):  # pop the worst into the last free slot
            values[b, j], flat[b, j] = hv[0], hi[0]
            n -= 1
            hv[0], hi[0] = hv[n], hi[n]
            _sift_down(hv, hi, n, 0)
        if m < k:
            used = np.zeros(C * hw, np.bool_)
            for j in range(m):
                used[flat[b, j]] = True
            nxt = C * hw - 1
            for j in range(m, k):
                while used[nxt]:
                    nxt -= 1
                values[b, j], flat[b, j] = -np.inf, nxt
                nxt -= 1


def graph_capture(t: Tensor) -> bool:
    """True inside an ONNX export, a TorchScript trace, torch.compile or torch.export (fake or
    functional tensor subclasses): the graph needs torch ops, so numpy / numba fast paths step aside."""
    return (
        type(t) is not torch.Tensor
        or torch.onnx.is_in_onnx_export()
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
    )


def topk_peaks(logits: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Top-K local maxima over all classes and cells of a raw heatmap.

    logits: (B, C, H, W) pre-sigmoid, finite, either memory layout. Returns, each (B, K):
    scores (sigmoid probabilities, descending), classes (int64), inds (flat cell index
    y * W + x, int64), ys and xs (float32 cell coordinates of the peak cell).
    K is min(k, C*H*W).

    Float32 CPU maps (eager): one numba pass over the channels_last memory (``_topk_peaks_kernel``;
    an NCHW map is copied once); equal scores come out by descending class-major index (the
    order that keeps the oracle tests' COCO numbers, where every object scores exactly 1).
    Elsewhere and when exporting: ``topk_peaks_torch`` (the same peaks; ties in any order).
    """
    b, c, h, w = logits.shape
    if logits.device.type != "cpu" or logits.dtype != torch.float32 or graph_capture(logits):
        return topk_peaks_torch(logits, k)
    k = min(k, c * h * w)
    a = logits.detach().permute(0, 2, 3, 1).contiguous().numpy()  # no copy for channels_last
    values, flat = np.empty((b, k), np.float32), np.empty((b, k), np.int64)
    _topk_peaks_kernel(a, values, flat)
    flat_t = torch.from_numpy(flat)
    classes = torch.div(flat_t, h * w, rounding_mode="floor")
    inds = flat_t - classes * (h * w)
    xs, ys = cell_xy(inds, w)
    return torch.sigmoid(torch.from_numpy(values)), classes, inds, ys, xs


def topk_peaks_torch(logits: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``topk_peaks`` in pure torch (any device, exportable): a 3x3 max-pool in channels_last
    (an order of magnitude faster than NCHW on CPU) and a top-K over the (B, H*W*C) view."""
    b, c, h, w = logits.shape
    k = min(k, c * h * w)
    x = logits.contiguous(memory_format=torch.channels_last)
    pooled = torch.nn.functional.max_pool2d(x, 3, 1, 1)
    peaks = x.masked_fill(pooled != x, float("-inf"))
    top, flat = torch.topk(peaks.permute(0, 2, 3, 1).reshape(b, -1), k)
    inds = torch.div(flat, c, rounding_mode="floor")
    classes = flat - inds * c
    xs, ys = cell_xy(inds, w)
    return torch.sigmoid(top), classes, inds, ys, xs


def cell_xy(inds: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Flat cell indices y * W + x (int64, any shape) -> float32 x and y cell coordinates.

    Integer division and a multiply-subtract rather than ``%`` (identical for the
    non-negative indices here), which also exports to ONNX with a dynamic width.
    """
    y = torch.div(inds, width, rounding_mode="floor")
    return (inds - y * width).float(), y.float()


def gather_at(feature: Tensor, inds: Tensor) -> Tensor:
    """Values of a dense map at flat cell indices: (B, C, H, W), (B, K) -> (B, K, C).

    A channels_last map is read through its (B, H*W, C) view (no copy); others as (B, C, H*W).
    """
    b, c = feature.shape[:2]
    if c > 1 and feature.dim() == 4 and feature.is_contiguous(memory_format=torch.channels_last):
        nhwc = feature.permute(0, 2, 3, 1).reshape(b, -1, c)
        return nhwc.gather(1, inds.unsqueeze(2).expand(b, inds.shape[1], c))
    flat = feature.reshape(b, c, -1)
    return flat.gather(2, inds.unsqueeze(1).expand(b, c, inds.shape[1])).permute(0, 2, 1)


def scatter_at(values: Tensor, inds: Tensor, mask: Tensor, hw: tuple[int, int]) -> Tensor:
    """Inverse of ``gather_at`` for masked entries: (B, K, C), (B, K), (B, K) -> (B, C, H, W) zeros elsewhere."""
    b, k, c = values.shape
    out = values.new_zeros(b, c, hw[0] * hw[1])
    keep = mask.bool()
    for i in range(b):  # batch loop only; objects are scattered in one call
        sel = keep[i]
        out[i].index_copy_(1, inds[i][sel], values[i][sel].t().contiguous())
    return out.view(b, c, hw[0], hw[1])
