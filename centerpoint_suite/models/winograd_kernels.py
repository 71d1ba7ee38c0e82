"""Numba tile transforms of the Winograd F(4x4, 3x3) convolution (``winograd.py``).

Both kernels work on channels-last memory and loop over channels innermost, so each
arithmetic line is one vector operation over contiguous channels, and tiles are shared
among threads (``prange``). Their plain-numpy twins (Kronecker products of the transform
matrices) are in ``tests/models/test_winograd.py``.

- ``input_tiles(x, r0, r1, tw, v)``: the 6x6 input tiles of tile rows r0..r1 of one image
  ``x`` (H, W, C), each read at (4 ty - 1, 4 tx - 1) with zeros outside the image (the
  convolution's padding), as ``B^T d B`` into ``v`` (36, T, C).
- ``output_tiles(m, r0, tw, bias, residual, relu, out)``: the products ``m`` (36, T, Cout)
  as ``A^T m A`` 4x4 output blocks, plus bias and residual, through an optional ReLU, written
  into the image ``out`` (H, W, Cout) (parts of edge blocks outside it dropped).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def input_tiles(x, r0, r1, tw, v):  # pragma: no cover - compiled
    h, w, c = x.shape
    for t in numba.prange((r1 - r0) * tw):
        y0 = (r0 + t // tw) * 4 - 1
        x0 = (t % tw) * 4 - 1
        if y0 >= 0 and x0 >= 0 and y0 + 6 <= h and x0 + 6 <= w:
            src = x[y0 : y0 + 6, x0 : x0 + 6]
        else:  # an edge tile: copy what lies inside the image into zeros
            src = np.zeros((6, 6, c), np.float32)
            ya, yb, xa, xb = max(0, y0), min(h, y0 + 6), max(0, x0), min(w, x0 + 6)
            if ya < yb and xa < xb:
                src[ya - y0 : yb - y0, xa - x0 : xb - x0] = x[ya:yb, xa:xb]
        tmp = np.empty((6, 6, c), np.float32)
        for i in range(6):  # B^T along each row
            for k in range(c):
                d0, d1, d2, d3, d4, d5 = (
                    src[i, 0, k],
                    src[i, 1, k],
                    src[i, 2, k],
                    src[i, 3, k],
                    src[i, 4, k],
                    src[i, 5, k],
                )
                tmp[i, 0, k] = 4 * d0 - 5 * d2 + d4
                tmp[i, 1, k] = -4 * d1 - 4 * d2 + d3 + d4
                tmp[i, 2, k] = 4 * d1 - 4 * d2 - d3 + d4
                tmp[i, 3, k] = -2 * d1 - d2 + 2 * d3 + d4
                tmp[i, 4, k] = 2 * d1 - d2 - 2 * d3 + d4
                tmp[i, 5, k] = 4 * d1 - 5 * d3 + d5
        for j in range(6):  # then along each column
            for k in range(c):
                d0, d1, d2, d3, d4, d5 = (
                    tmp[0, j, k],
                    tmp[1, j, k],
                    tmp[2, j, k],
                    tmp[3, j, k],
                    tmp[4, j, k],
                    tmp[5, j, k],
                )
                v[j, t, k] = 4 * d0 - 5 * d2 + d4
                v[6 + j, t, k] = -4 * d1 - 4 * d2 + d3 + d4
                v[12 + j, t, k] = 4 * d1 - 4 * d2 - d3 + d4
                v[18 + j, t, k] = -2 * d1 - d2 + 2 * d3 + d4
                v[24 + j, t, k] = 2 * d1 - d2 - 2 * d3 + d4
                v[30 + j, t, k] = 4 * d1 - 5 * d3 + d5


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def output_tiles(m, r0, tw, bias, residual, relu, out):  # pragma: no cover - compiled
    """``residual`` of shape (0, 0, 0) means none; ``bias`` of length 0 means none."""
    h, w, c = out.shape
    has_bias, has_res = bias.shape[0] > 0, residual.shape[0] > 0
    for t in numba.prange(m.shape[1]):
        y0 = (r0 + t // tw) * 4
        x0 = (t % tw) * 4
        tmp = np.empty((6, 4, c), np.float32)
        for i in range(6):  # A^T along each row
            for k in range(c):
                m0, m1, m2 = m[i * 6, t, k], m[i * 6 + 1, t, k], m[i * 6 + 2, t, k]
                m3, m4, m5 = m[i * 6 + 3, t, k], m[i * 6 + 4, t, k], m[i * 6 + 5, t, k]
                tmp[i, 0, k] = m0 + m1 + m2 + m3 + m4
                tmp[i, 1, k] = m1 - m2 + 2 * m3 - 2 * m4
                tmp[i, 2, k] = m1 + m2 + 4 * m3 + 4 * m4
                tmp[i, 3, k] = m1 - m2 + 8 * m3 - 8 * m4 + m5
        row = np.empty((4, c), np.float32)
        for j in range(4):  # then along each column, into the image
            xx = x0 + j
            if xx >= w:
                break
            for k in range(c):
                m0, m1, m2, m3, m4, m5 = (
                    tmp[0, j, k],
                    tmp[1, j, k],
                    tmp[2, j, k],
                    tmp[3, j, k],
                    tmp[4, j, k],
                    tmp[5, j, k],
                )
                row[0, k] = m0 + m1 + m2 + m3 + m4
                row[1, k] = m1 - m2 + 2 * m3 - 2 * m4
                row[2, k] = m1 + m2 + 4 * m3 + 4 * m4
                row[3, k] = m1 - m2 + 8 * m3 - 8 * m4 + m5
            for r in range(4):
                yy = y0 + r
                if yy >= h:
                    break
                for k in range(c):
                    val = row[r, k]
                    if has_bias:
                        val += bias[k]
                    if has_res:
                        val += residual[yy, xx, k]
                    out[yy, xx, k] = max(val, np.float32(0.0)) if relu else val
