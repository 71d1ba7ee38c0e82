"""Numba tile transforms of the Winograd F(4x4, 3x3) convolution (``winograd.py``).

Both kernels work on channels-last memory and loop over channels innermost, so each
arithmetic line is one vector operation over contiguous channels, and tiles are shared
among threads (``prange``). Their plain-numpy twins (Kronecker products of the transform
matrices) are in ``tests/models/test_winograd.py``.

- ``input_tiles(x, r0, r1, tw, v)``: the 6x6 input tiles of tile rows r0..r1 of one image
  ``x`` (H, W, C), each read at (4 ty - 1, 4 tx - 1) with zeros outside the image (the
  convolution's padding), as ``B^T d B`` into the first T = (r1 - r0) tw columns of ``v`` (36, >= T, C).
- ``phase_input_tiles`` / ``phase_output_tiles``: the same for the four output phases of a 4x4
  stride-2 transposed convolution, F(4x4, 2x2) (``winograd.conv_transpose4x4s2``).
- ``output_tiles(m, r0, tw, bias, residual, relu, out)``: the products ``m`` (36, T, Cout)
  as ``A^T m A`` 4x4 output blocks, plus bias and residual, through an optional ReLU, written
  into the image ``out`` (H, W, Cout) (parts of edge blocks outside it dropped).
- ``grad_tiles(g, r0, r1, tw, dm)``: the adjoint of ``output_tiles`` for training: 4x4 blocks
  of an output gradient as ``A g A^T`` (``winograd_train.py``'s weight gradient).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _window(x, y0, x0, n):  # pragma: no cover - compiled
    """The n x n window of ``x`` (H, W, C) at (y0, x0): a view inside the image, else a copy of
    what lies inside it in zeros (the convolution's padding)."""
    h, w, c = x.shape
    if y0 >= 0 and x0 >= 0 and y0 + n <= h and x0 + n <= w:
        return x[y0 : y0 + n, x0 : x0 + n]
    src = np.zeros((n, n, c), np.float32)
    ya, yb, xa, xb = max(0, y0), min(h, y0 + n), max(0, x0), min(w, x0 + n)
    if ya < yb and xa < xb:
        src[ya - y0 : yb - y0, xa - x0 : xb - x0] = x[ya:yb, xa:xb]
    return src


@numba.njit(inline="always")
def _store_column(col, y0, xx, bias, residual, relu, out):  # pragma: no cover - compiled
    """Column ``xx`` of an output block, ``col`` (rows, C) from row y0 down, plus ``bias`` (length 0:
    none) and ``residual`` (shape (0, 0, 0): none), through an optional ReLU, into ``out`` (H, W, C);
    rows below the image dropped."""
    h, c = out.shape[0], out.shape[2]
    has_bias, has_res = bias.shape[0] > 0, residual.shape[0] > 0
    for r in range(col.shape[0]):
        yy = y0 + r
        if yy >= h:
            break
        for k in range(c):
            val = col[r, k]
            if has_bias:
                val += bias[k]
            if has_res:
                val += residual[yy, xx, k]
            out[yy, xx, k] = max(val, np.float32(0.0)) if relu else val


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def input_tiles(x, r0, r1, tw, v):  # pragma: no cover - compiled
    h, w, c = x.shape
    for t in numba.prange((r1 - r0) * tw):
        y0 = (r0 + t // tw) * 4 - 1
        x0 = (t % tw) * 4 - 1
        src = _window(x, y0, x0, 6)
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
    w, c = out.shape[1], out.shape[2]
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
            _store_column(row, y0, xx, bias, residual, relu, out)


# float32 constants of the F(6x6, 3x3) transforms (a Python float would make the sums float64)
_F0125, _F025, _F05, _F125 = np.float32(0.125), np.float32(0.25), np.float32(0.5), np.float32(1.25)
_F2, _F25, _F4, _F425 = np.float32(2.0), np.float32(2.5), np.float32(4.0), np.float32(4.25)
_F5, _F525, _F8, _F16 = np.float32(5.0), np.float32(5.25), np.float32(8.0), np.float32(16.0)
_F32, _F00625, _F003125 = np.float32(32.0), np.float32(0.0625), np.float32(0.03125)


@numba.njit(inline="always")
def _bt8(d0, d1, d2, d3, d4, d5, d6, d7):  # pragma: no cover - compiled
    """B^T of F(6x6, 3x3) (``winograd._BT6``) applied to 8 values."""
    a, b = d2 - _F425 * d4 + d6, d1 - _F425 * d3 + d5
    c, e = _F025 * d2 - _F125 * d4 + d6, _F05 * d1 - _F25 * d3 + _F2 * d5
    f, g = _F4 * d2 - _F5 * d4 + d6, _F2 * d1 - _F25 * d3 + _F05 * d5
    return d0 - d6 + _F525 * (d4 - d2), a + b, a - b, c + e, c - e, f + g, f - g, d7 - d1 + _F525 * (d3 - d5)


@numba.njit(inline="always")
def _at8(m0, m1, m2, m3, m4, m5, m6, m7):  # pragma: no cover - compiled
    """A^T of F(6x6, 3x3) (``winograd._AT6``) applied to 8 values."""
    sp, sm = m1 + m2, m1 - m2
    tp, tm = m3 + m4, m3 - m4
    up, um = m5 + m6, m5 - m6
    return (
        m0 + sp + tp + up,
        sm + _F2 * tm + _F05 * um,
        sp + _F4 * tp + _F025 * up,
        sm + _F8 * tm + _F0125 * um,
        sp + _F16 * tp + _F00625 * up,
        sm + _F32 * tm + _F003125 * um + m7,
    )


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def input_tiles6(x, r0, r1, tw, v):  # pragma: no cover - compiled
    """``input_tiles`` for F(6x6, 3x3): 8x8 tiles read at (6 ty - 1, 6 tx - 1), ``B^T d B`` into v (64, >= T, C)."""
    c = x.shape[2]
    for t in numba.prange((r1 - r0) * tw):
        src = _window(x, (r0 + t // tw) * 6 - 1, (t % tw) * 6 - 1, 8)
        tmp = np.empty((8, 8, c), np.float32)
        for i in range(8):  # B^T along each row
            for k in range(c):
                b0, b1, b2, b3, b4, b5, b6, b7 = _bt8(
                    src[i, 0, k], src[i, 1, k], src[i, 2, k], src[i, 3, k],
                    src[i, 4, k], src[i, 5, k], src[i, 6, k], src[i, 7, k],
                )  # fmt: skip
                tmp[i, 0, k], tmp[i, 1, k], tmp[i, 2, k], tmp[i, 3, k] = b0, b1, b2, b3
                tmp[i, 4, k], tmp[i, 5, k], tmp[i, 6, k], tmp[i, 7, k] = b4, b5, b6, b7
        for j in range(8):  # then along each column
            for k in range(c):
                b0, b1, b2, b3, b4, b5, b6, b7 = _bt8(
                    tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k],
                    tmp[4, j, k], tmp[5, j, k], tmp[6, j, k], tmp[7, j, k],
                )  # fmt: skip
                v[j, t, k], v[8 + j, t, k], v[16 + j, t, k], v[24 + j, t, k] = b0, b1, b2, b3
                v[32 + j, t, k], v[40 + j, t, k], v[48 + j, t, k], v[56 + j, t, k] = b4, b5, b6, b7


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def output_tiles6(m, r0, tw, bias, residual, relu, out):  # pragma: no cover - compiled
    """``output_tiles`` for F(6x6, 3x3): the products ``m`` (64, T, Cout) as ``A^T m A`` 6x6 blocks."""
    w, c = out.shape[1], out.shape[2]
    for t in numba.prange(m.shape[1]):
        y0 = (r0 + t // tw) * 6
        x0 = (t % tw) * 6
        tmp = np.empty((8, 6, c), np.float32)
        for i in range(8):  # A^T along each row of points
            o = i * 8
            for k in range(c):
                a0, a1, a2, a3, a4, a5 = _at8(
                    m[o, t, k], m[o + 1, t, k], m[o + 2, t, k], m[o + 3, t, k],
                    m[o + 4, t, k], m[o + 5, t, k], m[o + 6, t, k], m[o + 7, t, k],
                )  # fmt: skip
                tmp[i, 0, k], tmp[i, 1, k], tmp[i, 2, k] = a0, a1, a2
                tmp[i, 3, k], tmp[i, 4, k], tmp[i, 5, k] = a3, a4, a5
        col = np.empty((6, c), np.float32)
        for j in range(6):  # then along each column, into the image
            xx = x0 + j
            if xx >= w:
                break
            for k in range(c):
                a0, a1, a2, a3, a4, a5 = _at8(
                    tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k],
                    tmp[4, j, k], tmp[5, j, k], tmp[6, j, k], tmp[7, j, k],
                )  # fmt: skip
                col[0, k], col[1, k], col[2, k], col[3, k], col[4, k], col[5, k] = a0, a1, a2, a3, a4, a5
            _store_column(col, y0, xx, bias, residual, relu, out)


@numba.njit(inline="always")
def _bt2(d0, d1, d2, d3, d4):  # pragma: no cover - compiled
    """B^T of F(4x4, 2x2) (rows scaled to integers, ``winograd._BT2``) applied to 5 values."""
    return 2 * d0 - d1 - 2 * d2 + d3, 2 * d1 + d2 - d3, -2 * d1 + 3 * d2 - d3, d3 - d1, 2 * d1 - d2 - 2 * d3 + d4


@numba.njit(inline="always")
def _at2(m0, m1, m2, m3, m4):  # pragma: no cover - compiled
    """A^T of F(4x4, 2x2) applied to 5 values."""
    return m0 + m1 + m2 + m3, m1 - m2 + 2 * m3, m1 + m2 + 4 * m3, m1 - m2 + 8 * m3 + m4


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def phase_input_tiles(x, r0, r1, tw, v):  # pragma: no cover - compiled
    """The four phases' 5x5 tiles of a transposed 4x4 stride-2 convolution, from one 6x6 window at
    (4 ty - 1, 4 tx - 1) of ``x`` (H, W, C) (zeros outside): phase (py, px) takes the 5x5 part
    starting at (py, px), as ``B^T d B`` into ``v[25 (2 py + px) + 5 p + q]`` (100, T, C)."""
    h, w, c = x.shape
    for t in numba.prange((r1 - r0) * tw):
        y0 = (r0 + t // tw) * 4 - 1
        x0 = (t % tw) * 4 - 1
        src = _window(x, y0, x0, 6)
        tmp = np.empty((6, 2, 5, c), np.float32)  # (window row, column start, B^T output, channel)
        for i in range(6):
            for sx in range(2):
                for k in range(c):
                    a = _bt2(src[i, sx, k], src[i, sx + 1, k], src[i, sx + 2, k], src[i, sx + 3, k], src[i, sx + 4, k])
                    tmp[i, sx, 0, k] = a[0]
                    tmp[i, sx, 1, k] = a[1]
                    tmp[i, sx, 2, k] = a[2]
                    tmp[i, sx, 3, k] = a[3]
                    tmp[i, sx, 4, k] = a[4]
        for sy in range(2):
            for sx in range(2):
                base = 25 * (2 * sy + sx)
                for q in range(5):
                    for k in range(c):
                        b = _bt2(tmp[sy, sx, q, k], tmp[sy + 1, sx, q, k], tmp[sy + 2, sx, q, k],
                                 tmp[sy + 3, sx, q, k], tmp[sy + 4, sx, q, k])  # fmt: skip
                        v[base + q, t, k] = b[0]
                        v[base + 5 + q, t, k] = b[1]
                        v[base + 10 + q, t, k] = b[2]
                        v[base + 15 + q, t, k] = b[3]
                        v[base + 20 + q, t, k] = b[4]


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def phase_output_tiles(m, r0, tw, bias, relu, out):  # pragma: no cover - compiled
    """The products ``m`` (100, T, Cout) of ``phase_input_tiles``' layout as ``A^T m A`` 4x4 blocks
    of each phase, plus bias, optional ReLU, written to ``out[2 gy + py, 2 gx + px]`` of the
    (2H, 2W, Cout) image (grid positions beyond (H, W) dropped)."""
    c = out.shape[2]
    gh, gw = out.shape[0] // 2, out.shape[1] // 2
    has_bias = bias.shape[0] > 0
    for t in numba.prange(m.shape[1]):
        gy0 = (r0 + t // tw) * 4
        gx0 = (t % tw) * 4
        tmp = np.empty((5, 4, c), np.float32)
        for ph in range(4):
            py, px = ph // 2, ph % 2
            base = 25 * ph
            for i in range(5):
                for k in range(c):
                    a = _at2(m[base + 5 * i, t, k], m[base + 5 * i + 1, t, k], m[base + 5 * i + 2, t, k],
                             m[base + 5 * i + 3, t, k], m[base + 5 * i + 4, t, k])  # fmt: skip
                    tmp[i, 0, k] = a[0]
                    tmp[i, 1, k] = a[1]
                    tmp[i, 2, k] = a[2]
                    tmp[i, 3, k] = a[3]
            for q in range(4):
                gx = gx0 + q
                if gx >= gw:
                    break
                col = np.empty((4, c), np.float32)
                for k in range(c):
                    a = _at2(tmp[0, q, k], tmp[1, q, k], tmp[2, q, k], tmp[3, q, k], tmp[4, q, k])
                    col[0, k] = a[0]
                    col[1, k] = a[1]
                    col[2, k] = a[2]
                    col[3, k] = a[3]
                for p in range(4):
                    gy = gy0 + p
                    if gy >= gh:
                        break
                    dst = out[2 * gy + py, 2 * gx + px]
                    for k in range(c):
                        val = col[p, k] + bias[k] if has_bias else col[p, k]
                        dst[k] = max(val, np.float32(0.0)) if relu else val


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def grad_tiles(g, r0, r1, tw, dm):  # pragma: no cover - compiled
    """The output gradient of tile rows r0..r1 of one image ``g`` (H, W, C) as ``A g A^T`` per
    4x4 block (zeros past the image's edges) into the first (r1 - r0) tw columns of ``dm``
    (36, >= T, C): the adjoint of ``output_tiles``, for the weight gradient."""
    h, w, c = g.shape
    for t in numba.prange((r1 - r0) * tw):
        y0 = (r0 + t // tw) * 4
        x0 = (t % tw) * 4
        src = np.zeros((4, 4, c), np.float32)
        ya, yb, xb = y0, min(h, y0 + 4), min(w, x0 + 4)
        src[0 : yb - ya, 0 : xb - x0] = g[ya:yb, x0:xb]
        tmp = np.empty((4, 6, c), np.float32)
        for i in range(4):  # A along each row
            for k in range(c):
                g0, g1, g2, g3 = src[i, 0, k], src[i, 1, k], src[i, 2, k], src[i, 3, k]
                tmp[i, 0, k] = g0
                tmp[i, 1, k] = g0 + g1 + g2 + g3
                tmp[i, 2, k] = g0 - g1 + g2 - g3
                tmp[i, 3, k] = g0 + 2 * g1 + 4 * g2 + 8 * g3
                tmp[i, 4, k] = g0 - 2 * g1 + 4 * g2 - 8 * g3
                tmp[i, 5, k] = g3
        for j in range(6):  # then along each column
            for k in range(c):
                g0, g1, g2, g3 = tmp[0, j, k], tmp[1, j, k], tmp[2, j, k], tmp[3, j, k]
                dm[j, t, k] = g0
                dm[6 + j, t, k] = g0 + g1 + g2 + g3
                dm[12 + j, t, k] = g0 - g1 + g2 - g3
                dm[18 + j, t, k] = g0 + 2 * g1 + 4 * g2 + 8 * g3
                dm[24 + j, t, k] = g0 - 2 * g1 + 4 * g2 - 8 * g3
                dm[30 + j, t, k] = g3


@numba.njit(inline="always")
def _a2(g0, g1, g2, g3):  # pragma: no cover - compiled
    """A of F(4x4, 2x2) (the transpose of ``_at2``) applied to 4 values."""
    return g0, g0 + g1 + g2 + g3, g0 - g1 + g2 - g3, g0 + 2 * g1 + 4 * g2 + 8 * g3, g3


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def phase_grad_tiles(g, r0, r1, tw, dm):  # pragma: no cover - compiled
    """The adjoint of ``phase_output_tiles`` for the weight gradient: for each phase (py, px) the
    4x4 block at grid (4 ty, 4 tx) of ``g[2 gy + py, 2 gx + px]`` ((2H, 2W, C) output gradient,
    zeros past the grid) as ``A g A^T`` into ``dm[25 (2 py + px) + 5 p + q]`` (100, >= T, C)."""
    gh, gw, c = g.shape[0] // 2, g.shape[1] // 2, g.shape[2]
    for t in numba.prange((r1 - r0) * tw):
        gy0 = (r0 + t // tw) * 4
        gx0 = (t % tw) * 4
        src = np.empty((4, 4, c), np.float32)
        tmp = np.empty((4, 5, c), np.float32)
        for ph in range(4):
            py, px = ph // 2, ph % 2
            base = 25 * ph
            for i in range(4):
                for j in range(4):
                    if gy0 + i < gh and gx0 + j < gw:
                        src[i, j] = g[2 * (gy0 + i) + py, 2 * (gx0 + j) + px]
                    else:
                        src[i, j] = 0
            for i in range(4):  # A along each row
                for k in range(c):
                    a = _a2(src[i, 0, k], src[i, 1, k], src[i, 2, k], src[i, 3, k])
                    tmp[i, 0, k] = a[0]
                    tmp[i, 1, k] = a[1]
                    tmp[i, 2, k] = a[2]
                    tmp[i, 3, k] = a[3]
                    tmp[i, 4, k] = a[4]
            for q in range(5):  # then along each column
                for k in range(c):
                    a = _a2(tmp[0, q, k], tmp[1, q, k], tmp[2, q, k], tmp[3, q, k])
                    dm[base + q, t, k] = a[0]
                    dm[base + 5 + q, t, k] = a[1]
                    dm[base + 10 + q, t, k] = a[2]
                    dm[base + 15 + q, t, k] = a[3]
                    dm[base + 20 + q, t, k] = a[4]


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def phase_grad_input_tiles(g, r0, r1, tw, v):  # pragma: no cover - compiled
    """For the input gradient of a transposed 4x4 stride-2 convolution: per phase (py, px) the
    5x5 window at grid (4 ty - py, 4 tx - px) of ``g[2 gy + py, 2 gx + px]`` ((2H, 2W, C), zeros
    outside the grid) as ``B^T d B`` into ``v[5 p + q, t, C ph + k]`` (25, >= T, 4 C): the four
    phases side by side along the channels, so one product sums them."""
    gh, gw, c = g.shape[0] // 2, g.shape[1] // 2, g.shape[2]
    for t in numba.prange((r1 - r0) * tw):
        ty0 = (r0 + t // tw) * 4
        tx0 = (t % tw) * 4
        src = np.empty((5, 5, c), np.float32)
        tmp = np.empty((5, 5, c), np.float32)
        for ph in range(4):
            py, px = ph // 2, ph % 2
            for i in range(5):
                gy = ty0 - py + i
                for j in range(5):
                    gx = tx0 - px + j
                    if 0 <= gy < gh and 0 <= gx < gw:
                        src[i, j] = g[2 * gy + py, 2 * gx + px]
                    else:
                        src[i, j] = 0
            for i in range(5):
                for k in range(c):
                    a = _bt2(src[i, 0, k], src[i, 1, k], src[i, 2, k], src[i, 3, k], src[i, 4, k])
                    tmp[i, 0, k] = a[0]
                    tmp[i, 1, k] = a[1]
                    tmp[i, 2, k] = a[2]
                    tmp[i, 3, k] = a[3]
                    tmp[i, 4, k] = a[4]
            off = c * ph
            for q in range(5):
                for k in range(c):
                    b = _bt2(tmp[0, q, k], tmp[1, q, k], tmp[2, q, k], tmp[3, q, k], tmp[4, q, k])
                    v[q, t, off + k] = b[0]
                    v[5 + q, t, off + k] = b[1]
                    v[10 + q, t, off + k] = b[2]
                    v[15 + q, t, off + k] = b[3]
                    v[20 + q, t, off + k] = b[4]


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def output_tiles_f42(m, r0, tw, out):  # pragma: no cover - compiled
    """The products ``m`` (25, T, C) as ``A^T m A`` 4x4 blocks of F(4x4, 2x2) at tile rows r0..
    of ``out`` (H, W, C) (parts outside the image dropped)."""
    h, w, c = out.shape
    for t in numba.prange(m.shape[1]):
        y0 = (r0 + t // tw) * 4
        x0 = (t % tw) * 4
        tmp = np.empty((5, 4, c), np.float32)
        for i in range(5):
            for k in range(c):
                a = _at2(m[5 * i, t, k], m[5 * i + 1, t, k], m[5 * i + 2, t, k], m[5 * i + 3, t, k], m[5 * i + 4, t, k])
                tmp[i, 0, k] = a[0]
                tmp[i, 1, k] = a[1]
                tmp[i, 2, k] = a[2]
                tmp[i, 3, k] = a[3]
        for q in range(4):
            xx = x0 + q
            if xx >= w:
                break
            rows = min(4, h - y0)
            for k in range(c):
                a0, a1, a2, a3 = _at2(tmp[0, q, k], tmp[1, q, k], tmp[2, q, k], tmp[3, q, k], tmp[4, q, k])
                out[y0, xx, k] = a0
                if rows > 1:
                    out[y0 + 1, xx, k] = a1
                if rows > 2:
                    out[y0 + 2, xx, k] = a2
                if rows > 3:
                    out[y0 + 3, xx, k] = a3


# ---- weight transforms of the training path (``winograd_train.py``), once per step ------------
# As matrix products (the 36x9 Kronecker matrix against all Cin Cout kernels, K = 9) they ran at
# 10-19 GFLOP/s: 15 ms for a 512x512 layer's 38 MB of points, against 3-4 ms here. Each kernel
# reads channels-last weights (R, KH, KW, C), one row r per thread, and applies the transform
# separably (along the kernel rows, then its columns) with the channels innermost.


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def weight_points(w, g, out):  # pragma: no cover - compiled
    """3x3 kernels ``w`` (R, 3, 3, C) as their P^2 points ``g k g^T`` (``g`` (P, 3): P = 6 for
    F(4x4, 3x3), 8 for F(6x6, 3x3)): out (P^2, R, C), out[p * P + q, r, c] = sum_uv g[p, u] g[q, v] w[r, u, v, c]."""
    rn, c = w.shape[0], w.shape[3]
    pn = g.shape[0]
    for r in numba.prange(rn):
        tmp = np.empty((pn, 3, c), np.float32)
        for p in range(pn):
            a0, a1, a2 = g[p, 0], g[p, 1], g[p, 2]
            for v in range(3):
                for k in range(c):
                    tmp[p, v, k] = a0 * w[r, 0, v, k] + a1 * w[r, 1, v, k] + a2 * w[r, 2, v, k]
        for p in range(pn):
            for q in range(pn):
                b0, b1, b2 = g[q, 0], g[q, 1], g[q, 2]
                for k in range(c):
                    out[p * pn + q, r, k] = b0 * tmp[p, 0, k] + b1 * tmp[p, 1, k] + b2 * tmp[p, 2, k]


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def point_taps(du, g, out):  # pragma: no cover - compiled
    """The adjoint of ``weight_points``: points ``du`` (36, R, C) as 3x3 taps ``g^T du g``,
    out (R, 3, 3, C), out[r, u, v, c] = sum_pq g[p, u] g[q, v] du[p * 6 + q, r, c]."""
    rn, c = du.shape[1], du.shape[2]
    for r in numba.prange(rn):
        tmp = np.empty((6, 3, c), np.float32)  # along q first: tmp[p, v] = sum_q g[q, v] du[p, q]
        for p in range(6):
            for v in range(3):
                b0, b1, b2, b3, b4, b5 = g[0, v], g[1, v], g[2, v], g[3, v], g[4, v], g[5, v]
                for k in range(c):
                    tmp[p, v, k] = (
                        b0 * du[p * 6, r, k]
                        + b1 * du[p * 6 + 1, r, k]
                        + b2 * du[p * 6 + 2, r, k]
                        + b3 * du[p * 6 + 3, r, k]
                        + b4 * du[p * 6 + 4, r, k]
                        + b5 * du[p * 6 + 5, r, k]
                    )
        for u in range(3):
            a0, a1, a2, a3, a4, a5 = g[0, u], g[1, u], g[2, u], g[3, u], g[4, u], g[5, u]
            for v in range(3):
                for k in range(c):
                    out[r, u, v, k] = (
                        a0 * tmp[0, v, k]
                        + a1 * tmp[1, v, k]
                        + a2 * tmp[2, v, k]
                        + a3 * tmp[3, v, k]
                        + a4 * tmp[4, v, k]
                        + a5 * tmp[5, v, k]
                    )


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def phase_weight_points(w, ty, tx, g, out, col0):  # pragma: no cover - compiled
    """The 2x2 taps (ty[a], tx[b]) of 4x4 kernels ``w`` (R, 4, 4, C) as their 25 F(4x4, 2x2) points
    (``g`` (5, 2)): out[p * 5 + q, r, col0 + c] = sum_ab g[p, a] g[q, b] w[r, ty[a], tx[b], c]."""
    rn, c = w.shape[0], w.shape[3]
    y0, y1, x0, x1 = ty[0], ty[1], tx[0], tx[1]
    for r in numba.prange(rn):
        tmp = np.empty((5, 2, c), np.float32)
        for p in range(5):
            a0, a1 = g[p, 0], g[p, 1]
            for k in range(c):
                tmp[p, 0, k] = a0 * w[r, y0, x0, k] + a1 * w[r, y1, x0, k]
                tmp[p, 1, k] = a0 * w[r, y0, x1, k] + a1 * w[r, y1, x1, k]
        for p in range(5):
            for q in range(5):
                b0, b1 = g[q, 0], g[q, 1]
                for k in range(c):
                    out[p * 5 + q, r, col0 + k] = b0 * tmp[p, 0, k] + b1 * tmp[p, 1, k]


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def phase_point_taps(du, ty, tx, g, out):  # pragma: no cover - compiled
    """The adjoint of ``phase_weight_points`` (col0 = 0): points ``du`` (25, R, C) as the 2x2 taps
    (ty[a], tx[b]) of ``out`` (R, 4, 4, C), out[r, ty[a], tx[b], c] = sum_pq g[p, a] g[q, b] du[p * 5 + q, r, c]
    (its other taps left as they are)."""
    rn, c = du.shape[1], du.shape[2]
    for r in numba.prange(rn):
        tmp = np.empty((5, 2, c), np.float32)
        for p in range(5):
            for b in range(2):
                b0, b1, b2, b3, b4 = g[0, b], g[1, b], g[2, b], g[3, b], g[4, b]
                for k in range(c):
                    tmp[p, b, k] = (
                        b0 * du[p * 5, r, k]
                        + b1 * du[p * 5 + 1, r, k]
                        + b2 * du[p * 5 + 2, r, k]
                        + b3 * du[p * 5 + 3, r, k]
                        + b4 * du[p * 5 + 4, r, k]
                    )
        for a in range(2):
            a0, a1, a2, a3, a4 = g[0, a], g[1, a], g[2, a], g[3, a], g[4, a]
            for b in range(2):
                yy, xx = ty[a], tx[b]
                for k in range(c):
                    out[r, yy, xx, k] = (
                        a0 * tmp[0, b, k]
                        + a1 * tmp[1, b, k]
                        + a2 * tmp[2, b, k]
                        + a3 * tmp[3, b, k]
                        + a4 * tmp[4, b, k]
                    )
