"""The one-pass focal-loss kernel against a plain-numpy twin and against autograd of the formula."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

from centerpoint_suite import focal_kernel, losses
from centerpoint_suite.losses import LOG_EPS, focal_loss


def numpy_twin(x, t, ignore, alpha=2.0, beta=4.0):
    """Per-cell focal term and its derivative by the logit, float64, written out by hand:
    f = log p (1 - p)^a at t == 1, log(1 - p) p^a (1 - t)^b elsewhere unless ignored, with
    p = clamp(sigmoid(x), 1e-4, 1 - 1e-4) and log-probabilities clamped at log(1e-4)."""
    x = x.astype(np.float64)
    s = 1 / (1 + np.exp(-x))
    p = np.clip(s, 1e-4, 1 - 1e-4)
    dp = np.where((s >= 1e-4) & (s <= 1 - 1e-4), s * (1 - s), 0.0)
    log_p_raw, log_q_raw = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    log_p, log_q = np.maximum(log_p_raw, LOG_EPS), np.maximum(log_q_raw, LOG_EPS)
    dlog_p = np.where(log_p_raw >= LOG_EPS, 1 - s, 0.0)
    dlog_q = np.where(log_q_raw >= LOG_EPS, -s, 0.0)
    pos = t == 1
    w = (1 - t.astype(np.float64)) ** beta * (~pos & (ignore == 0))
    f_pos = log_p * (1 - p) ** alpha
    d_pos = dlog_p * (1 - p) ** alpha - log_p * alpha * (1 - p) ** (alpha - 1) * dp
    f_neg = log_q * p**alpha * w
    d_neg = w * (dlog_q * p**alpha + log_q * alpha * p ** (alpha - 1) * dp)
    return np.where(pos, f_pos, f_neg), np.where(pos, d_pos, d_neg), pos.sum()


def run_kernel(x, t, ignore, alpha=2.0, beta=4.0):
    """focal_rows straight on numpy arrays: (total, positives, gradient)."""
    xf = x.astype(np.float32)
    e = np.exp(-np.abs(xf)).astype(np.float32)
    grad = np.empty_like(xf)
    sums = np.empty((x.shape[0] * x.shape[2], 2))
    args = (np.float32(LOG_EPS), np.float32(alpha), np.float32(beta), grad, True, sums)
    focal_kernel.focal_rows(xf, e, np.log1p(e), t, ignore, True, *args)
    return sums[:, 0].sum(), sums[:, 1].sum(), grad


def random_case(seed, shape=(3, 5, 7, 37), scale=4.0):
    """Logits across both clamps, targets with positives, an ignore mask (37 columns: two blocks
    of a row, the second partial)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    x.flat[:8] = [-40, -12, -9.3, -9.2, 9.2, 9.3, 12, 40]  # around the clamps of p and log p
    t = (rng.random(shape) ** 6).astype(np.float32)
    t[rng.random(shape) > 0.97] = 1
    t.flat[:8] = [1, 0, 1, 0, 1, 0, 1, 0]
    ignore = (rng.random(shape) > 0.9).astype(np.uint8)
    return x, t, ignore


@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 4.0), (1.5, 3.0)])
def test_kernel_equals_the_numpy_twin(alpha, beta):
    x, t, ignore = random_case(0)
    total, positives, grad = run_kernel(x, t, ignore, alpha, beta)
    f, d, n = numpy_twin(x, t, ignore, alpha, beta)
    assert positives == n > 0
    assert total == pytest.approx(f.sum(), rel=1e-6)
    assert np.allclose(grad, d, rtol=1e-5, atol=1e-7)
    assert (grad[ignore.astype(bool) & (t != 1)] == 0).all()  # ignored negatives: no gradient
    assert np.abs(grad).sum() > 0


@pytest.mark.parametrize("ignore_dtype", [None, torch.uint8, torch.bool])
@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 4.0), (1.5, 3.0)])
def test_kernel_path_equals_the_chunked_formula(monkeypatch, ignore_dtype, alpha, beta):
    # channels-last logits against contiguous targets, as in training
    x, t, ignore = random_case(1, shape=(4, 6, 9, 40))
    logits = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    target = torch.from_numpy(t)
    mask = None if ignore_dtype is None else torch.from_numpy(ignore).to(ignore_dtype)
    results = []
    for kernel in (True, False):
        monkeypatch.setattr(losses, "FOCAL_KERNEL", kernel)
        assert losses._kernel_path_ok(logits, target, mask) is kernel
        a = logits.clone().requires_grad_()
        loss = focal_loss(a, target, mask, alpha, beta)
        (3.0 * loss).backward()
        results.append((loss.detach(), a.grad))
    (lk, gk), (lt, gt) = results
    assert torch.allclose(lk, lt, rtol=1e-6)
    assert torch.allclose(gk, gt, rtol=1e-5, atol=1e-9)
    assert gk.is_contiguous(memory_format=torch.channels_last)


def test_kernel_value_does_not_depend_on_the_thread_count():
    x, t, ignore = random_case(2, shape=(2, 8, 16, 64))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_kernel(x, t, ignore)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = run_kernel(x, t, ignore)
    finally:
        numba.set_num_threads(before)
    assert one[0] == many[0] and one[1] == many[1]
    assert np.array_equal(one[2], many[2])


def test_other_dtypes_keep_the_formula():
    logits = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    target = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    assert not losses._kernel_path_ok(logits, target, None)
    assert not losses._kernel_path_ok(logits.float(), target, None)  # float64 targets: formula path
    assert losses._kernel_path_ok(logits.float(), target.float(), None)


def test_a_nan_logit_gives_a_nan_loss_and_infinities_match_the_formula(monkeypatch):
    x, t, _ = random_case(3, shape=(2, 3, 5, 6))
    for bad, finite in ((np.nan, False), (np.inf, True), (-np.inf, True)):
        x[1, 2, 3, 4] = bad
        results = []
        for kernel in (True, False):
            monkeypatch.setattr(losses, "FOCAL_KERNEL", kernel)
            a = torch.from_numpy(x.copy()).requires_grad_()
            loss = focal_loss(a, torch.from_numpy(t))
            loss.backward()
            results.append((loss.detach(), a.grad))
        (lk, gk), (lt, gt) = results
        assert bool(torch.isfinite(lk)) is finite
        assert torch.allclose(lk, lt, rtol=1e-6, equal_nan=True)
        assert torch.allclose(gk, gt, rtol=1e-5, atol=1e-9, equal_nan=True)
