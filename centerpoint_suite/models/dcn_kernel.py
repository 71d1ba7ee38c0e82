"""Numba column builder of the deformable convolution for prediction (``dcn.deform_conv2d_columns``).

``deform_columns(x, om, a, b, ho, wo, kh, kw, stride, padding, dilation, cols)`` fills row
``q`` of ``cols`` (>= b - a, K * C) with the K bilinear samples of output pixel ``a + q``
(pixels numbered (n, i, j) row-major over (N, Ho, Wo)), each times its mask, from the
channels-last input ``x`` (N, H, W, C) and the offset-and-mask map ``om`` (N, Ho, Wo, 3K):
channels 2k, 2k + 1 are tap k's (dy, dx) in input pixels, channel 2K + k its mask logit
(sigmoid applied here). Corners outside the image count as zeros, as in DCNv2.

One pass replaces the torch path's index and weight arithmetic, its zero-bordered copy of the
input and its ``embedding_bag`` gather. Pixels are shared among threads; channels are the
innermost (vectorised) loop. Its twin is the torch ``gather`` path (``tests/models/test_dcn_kernel.py``).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def deform_columns(x, om, a, b, ho, wo, kh, kw, stride, padding, dilation, cols):  # pragma: no cover
    _, h, w, c = x.shape
    k_taps = kh * kw
    for q in numba.prange(b - a):
        p = a + q
        n = p // (ho * wo)
        i = (p // wo) % ho
        j = p % wo
        for t in range(k_taps):
            dst = cols[q, t * c : (t + 1) * c]
            py = i * stride - padding + (t // kw) * dilation + om[n, i, j, 2 * t]
            px = j * stride - padding + (t % kw) * dilation + om[n, i, j, 2 * t + 1]
            if not (py > -1.0 and py < h and px > -1.0 and px < w):  # every corner outside (or NaN)
                for k in range(c):
                    dst[k] = 0.0
                continue
            mask = 1.0 / (1.0 + math.exp(-om[n, i, j, 2 * k_taps + t]))
            y0f, x0f = math.floor(py), math.floor(px)
            fy, fx = py - y0f, px - x0f
            y0, x0 = int(y0f), int(x0f)
            w00 = np.float32((1.0 - fy) * (1.0 - fx) * mask)
            w01 = np.float32((1.0 - fy) * fx * mask)
            w10 = np.float32(fy * (1.0 - fx) * mask)
            w11 = np.float32(fy * fx * mask)
            if y0 >= 0 and x0 >= 0 and y0 + 1 < h and x0 + 1 < w:
                r0, r1 = x[n, y0], x[n, y0 + 1]
                for k in range(c):
                    dst[k] = w00 * r0[x0, k] + w01 * r0[x0 + 1, k] + w10 * r1[x0, k] + w11 * r1[x0 + 1, k]
                continue
            for k in range(c):
                dst[k] = 0.0
            for dy in range(2):
                yy = y0 + dy
                if yy < 0 or yy >= h:
                    continue
                for dx in range(2):
                    xx = x0 + dx
                    if xx < 0 or xx >= w:
                        continue
                    wt = (w10 if dx == 0 else w11) if dy else (w00 if dx == 0 else w01)
                    src = x[n, yy, xx]
                    for k in range(c):
                        dst[k] += wt * src[k]
