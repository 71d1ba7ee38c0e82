"""Colour augmentation and input normalisation of a uint8 training batch in one pass.

Each of the colour jitter's ops (``transforms.colour_augment_batch``) blends a pixel with a base
that is linear in the image: black (brightness), the mean grey of the image (contrast) or the
pixel's own grey (saturation). So the three ops, in any order, are one affine map of each
pixel's (B, G, R): ``y = A x + t`` with a 3x3 ``A`` and an offset ``t`` per image, composed
here in float64 from the image's parameters and its mean colour (the contrast op's grey mean
is the grey of the mean colour after the ops before it). The PCA lighting shift joins ``t``.

The kernel then reads each byte once and writes each float once: ``A x + t``, the clamp to
0..1, and the normalisation ``v * scale + bias`` in the network's channel order, where the
torch formula makes about a dozen passes over the float batch. Rows run in parallel; the mean
colours are summed per row and the rows added in order, so the result does not depend on the
number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

#: BGR luma weights of the saturation and contrast ops' grey (sum 1)
GRAY_BGR = np.array([0.114, 0.587, 0.299])


@numba.njit(cache=True, nogil=True, parallel=True)
def _row_sums(src, sums):
    """src (B, H, W * 3) uint8 -> sums (B, H, 3) float64: each row's channel sums."""
    b, h = src.shape[0], src.shape[1]
    for r in numba.prange(b * h):
        i, y = r // h, r % h
        row = src[i, y]
        s0 = s1 = s2 = 0.0
        for j in range(0, row.shape[0], 3):
            s0 += row[j]
            s1 += row[j + 1]
            s2 += row[j + 2]
        sums[i, y, 0] = s0
        sums[i, y, 1] = s1
        sums[i, y, 2] = s2


@numba.njit(cache=True, nogil=True, parallel=True)
def _affine_rows(src, a, t, scale, bias, out):
    """src (B, H, W * 3) uint8; a (B, 3, 3), t (B, 3) float32 per image, rows in output channel
    order, on byte values; scale, bias (3,) float32 per output channel. out (B, H, W * 3)
    float32 = clamp(a x + t, 0, 1) * scale + bias per pixel x."""
    b, h = src.shape[0], src.shape[1]
    zero, one = np.float32(0), np.float32(1)
    s0, s1, s2 = scale[0], scale[1], scale[2]
    b0, b1, b2 = bias[0], bias[1], bias[2]
    for r in numba.prange(b * h):
        i, y = r // h, r % h
        row = src[i, y]
        o = out[i, y]
        m, c = a[i], t[i]
        a00, a01, a02, a10, a11, a12 = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
        a20, a21, a22, c0, c1, c2 = m[2, 0], m[2, 1], m[2, 2], c[0], c[1], c[2]
        for j in range(0, row.shape[0], 3):
            x0 = np.float32(row[j])
            x1 = np.float32(row[j + 1])
            x2 = np.float32(row[j + 2])
            o[j] = min(max(a00 * x0 + a01 * x1 + a02 * x2 + c0, zero), one) * s0 + b0
            o[j + 1] = min(max(a10 * x0 + a11 * x1 + a12 * x2 + c1, zero), one) * s1 + b1
            o[j + 2] = min(max(a20 * x0 + a21 * x1 + a22 * x2 + c2, zero), one) * s2 + b2


def mean_colours(images: np.ndarray) -> np.ndarray:
    """uint8 (B, H, W, 3) -> (B, 3) float64 mean of each channel, 0..255."""
    b, h, w, _ = images.shape
    sums = np.empty((b, h, 3), np.float64)
    _row_sums(np.ascontiguousarray(images).reshape(b, h, w * 3), sums)
    return sums.sum(1) / (h * w)


def affine(
    params: np.ndarray, means: np.ndarray, eigvec: np.ndarray, eigval: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per image the colour jitter + lighting as ``y = A x + t`` on 0..1 BGR values: params (B, 9)
    as ``transforms.sample_colour_params``, means (B, 3) mean BGR colour on 0..1; eigvec / eigval
    the PCA lighting basis (RGB). Returns A (B, 3, 3), t (B, 3) float64."""
    n = params.shape[0]
    a = np.repeat(np.eye(3)[None], n, 0)
    t = np.zeros((n, 3))
    for i in range(n):
        order, factors, alpha = params[i, :3].astype(np.int64), params[i, 3:6].astype(np.float64), params[i, 6:9]
        for op in order:
            f = factors[op]
            if op == 0:  # brightness: f x
                step_a, step_t = f * np.eye(3), np.zeros(3)
            elif op == 1:  # contrast: f x + (1 - f) mean grey of the current image
                grey = GRAY_BGR @ (a[i] @ means[i] + t[i])
                step_a, step_t = f * np.eye(3), np.full(3, (1 - f) * grey)
            else:  # saturation: f x + (1 - f) grey(x)
                step_a, step_t = f * np.eye(3) + (1 - f) * np.outer(np.ones(3), GRAY_BGR), np.zeros(3)
            a[i], t[i] = step_a @ a[i], step_a @ t[i] + step_t
        rgb_shift = eigvec @ (np.asarray(alpha, np.float64) * eigval)
        t[i] += rgb_shift[::-1]  # BGR
    return a, t


def colour_normalize(
    images: np.ndarray,
    params: np.ndarray,
    eigvec: np.ndarray,
    eigval: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    rgb: bool,
) -> np.ndarray:
    """uint8 (B, H, W, 3) BGR -> float32 (B, H, W, 3): the colour jitter and lighting of
    ``params`` (B, 9), clamped to 0..1, times 255, then ``v * scale[k] + bias[k]`` per network
    channel k (scale, bias (3,) as ``transforms._scale_bias``), channels in RGB order when ``rgb``."""
    b, h, w, _ = images.shape
    src = np.ascontiguousarray(images).reshape(b, h, w * 3)
    a, t = affine(np.asarray(params, np.float64), mean_colours(images) / 255.0, eigvec, eigval)
    a = a / 255.0  # on byte values
    if rgb:
        a, t = a[:, ::-1], t[:, ::-1]
    out = np.empty((b, h, w * 3), np.float32)
    _affine_rows(
        src, np.ascontiguousarray(a, np.float32), np.ascontiguousarray(t, np.float32),
        np.asarray(scale, np.float32) * np.float32(255), np.asarray(bias, np.float32), out,
    )  # fmt: skip
    return out.reshape(b, h, w, 3)
