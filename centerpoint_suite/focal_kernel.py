"""The penalty-reduced focal loss of a CPU float32 heatmap in one numba pass: its value, its
number of positives and its gradient, element for element the formula of ``losses.focal_terms``.

Autograd of that formula reads and writes the (B, C, H, W) map about twenty times (sigmoid,
two log-sigmoids, clamps, powers, masks, and their backward); here each element is read once
(logit, target, ignore) and its gradient written once. One exponential and one ``log1p`` per
element give the sigmoid and both log-sigmoids; torch computes those two (vectorised: numba's
scalar calls took four times as long as all the rest), the kernel all the rest. Rows of the
map run in parallel (``prange``); each row's sums are kept apart and added in row order, so the
value does not depend on the number of threads. The logits may be channels-last and the
targets not (as in training): a row is walked in blocks of cells, all classes of a block at a
time, so both stay in cache.
"""

from __future__ import annotations

import numba
import numpy as np

#: cells of one block of a row (classes x block of logits and targets stay in the L1 / L2 cache)
BLOCK = 32
P_MIN = np.float32(1e-4)
P_MAX = np.float32(1 - 1e-4)


@numba.njit(cache=True, nogil=True, inline="never")
def _pow(a, b):
    """``a ** b`` out of line: inlined, LLVM computed it for every element, needed or not."""
    return a**b


@numba.njit(cache=True, nogil=True, inline="always")
def _element(x, e, l1pe, t, ignored, log_eps, alpha, beta):
    """(focal term, its derivative by the logit x) of one cell, given e = exp(-|x|) and
    l1pe = log1p(e); float32 as ``focal_terms``. alpha = 2, beta = 4 (CenterNet's) as products,
    other exponents by ``pow``."""
    if x != x:  # NaN: a NaN term and gradient, so the loss shows it (the clamps below would hide it)
        return x, x
    one = np.float32(1)
    r = one / (one + e)
    s = r if x >= 0 else e * r  # sigmoid(x)
    sn = e * r if x >= 0 else r  # sigmoid(-x) = 1 - sigmoid(x)
    log_p = min(x, np.float32(0)) - l1pe  # logsigmoid(x)
    log_q = min(-x, np.float32(0)) - l1pe  # logsigmoid(-x) = log(1 - sigmoid(x))
    # the clamps of the formula: a clamped value passes no gradient
    p = min(max(s, P_MIN), P_MAX)
    dp = s * sn if (s >= P_MIN and s <= P_MAX) else np.float32(0)
    dlog_p = sn if log_p >= log_eps else np.float32(0)
    dlog_q = -s if log_q >= log_eps else np.float32(0)
    log_p = max(log_p, log_eps)
    log_q = max(log_q, log_eps)
    if t == one:
        q = one - p
        qa1 = q if alpha == 2 else _pow(q, alpha - one)
        qa = qa1 * q
        return log_p * qa, dlog_p * qa - log_p * alpha * qa1 * dp
    if ignored:
        return np.float32(0), np.float32(0)
    u = one - t
    if beta == 4:
        u2 = u * u
        w = u2 * u2
    else:
        w = _pow(u, beta)
    pa1 = p if alpha == 2 else _pow(p, alpha - one)
    pa = pa1 * p
    return log_q * pa * w, w * (dlog_q * pa + log_q * alpha * pa1 * dp)


@numba.njit(cache=True, nogil=True, parallel=True)
def focal_rows(logits, exps, log1ps, target, ignore, has_ignore, log_eps, alpha, beta, grad, need_grad, sums):
    """logits, exps = exp(-|logits|), log1ps = log1p(exps), target, grad: (B, C, H, W) float32 in
    any strides; ignore: same-shape uint8 (read only when ``has_ignore``). Writes ``grad`` (when
    ``need_grad``) and, per row b * H + y, ``sums[row] = (summed focal terms, positives)`` in
    float64."""
    n, c, h, w = logits.shape
    for row in numba.prange(n * h):
        b, y = row // h, row % h
        total = 0.0
        positives = 0.0
        for x0 in range(0, w, BLOCK):
            x1 = min(w, x0 + BLOCK)
            for k in range(c):
                for x in range(x0, x1):
                    t = target[b, k, y, x]
                    ignored = has_ignore and ignore[b, k, y, x] != 0
                    f, d = _element(
                        logits[b, k, y, x], exps[b, k, y, x], log1ps[b, k, y, x], t, ignored, log_eps, alpha, beta
                    )
                    total += f
                    if t == np.float32(1):
                        positives += 1.0
                    if need_grad:
                        grad[b, k, y, x] = d
        sums[row, 0] = total
        sums[row, 1] = positives
