"""Losses shared by the tasks: penalty-reduced focal loss on heatmaps, masked L1 on regressions."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import focal_kernel
from .distributed import global_mean_count, world_size
from .heatmap import gather_at, graph_capture
from .models.winograd import numba_path_ok, use_torch_threads


def normalised(total: Tensor, count: Tensor, eps: float = 0.0) -> Tensor:
    """``total / (count + eps)`` with ``count`` taken over the global batch of a distributed run
    (see ``distributed.global_mean_count``), so N processes optimise the 1-process objective."""
    return total / (global_mean_count(count) + eps)


LOG_EPS = torch.log(torch.tensor(1e-4)).item()  # the clamp of log-probabilities (float32 log, as before)

#: elements of one chunk of the focal loss: its temporaries (about 4 MB each) stay below the C
#: allocator's mmap threshold, so they are reused from the heap instead of being mapped, faulted
#: in and zeroed by the kernel at every step (47 MB each for 80 classes x 96 x 96 x batch 16)
FOCAL_CHUNK = 1 << 20

#: CPU float32 maps take the one-pass numba kernel (``focal_kernel``); off: the chunked formula
FOCAL_KERNEL = True


def focal_terms(
    logits: Tensor, target: Tensor, ignore: Tensor | None = None, alpha: float = 2.0, beta: float = 4.0
) -> tuple[Tensor, Tensor]:
    """The summed positive + negative focal terms (not negated, not normalised) and the number of
    positives of one chunk; any matching shapes. The formula of ``focal_loss``, element by element."""
    logits = logits.float()
    target = target.float()
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    log_p = F.logsigmoid(logits).clamp(min=LOG_EPS)
    log_1mp = F.logsigmoid(-logits).clamp(min=LOG_EPS)
    pos = target.eq(1).float()
    neg = 1.0 - pos
    if ignore is not None:
        neg = neg * (1.0 - ignore.float())
    pos_loss = (log_p * (1 - p).pow(alpha) * pos).sum()
    neg_loss = (log_1mp * p.pow(alpha) * (1 - target).pow(beta) * neg).sum()
    return pos_loss + neg_loss, pos.sum()


def _chunks(shape: torch.Size) -> list[tuple[int, int]]:
    """(start, stop) slices of the batch axis, each about ``FOCAL_CHUNK`` elements (one sample at least)."""
    per_sample = max(1, math.prod(shape[1:]))
    step = max(1, FOCAL_CHUNK // per_sample)
    return [(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _kernel_path_ok(logits: Tensor, target: Tensor, ignore: Tensor | None) -> bool:
    """Whether ``focal_kernel.focal_rows`` takes the map: CPU float32 logits and targets, a
    byte / bool ignore mask, real tensors (no trace or graph capture), ``FOCAL_KERNEL`` on."""
    return (
        FOCAL_KERNEL
        and logits.dim() == 4
        and target.shape == logits.shape
        and target.dtype == torch.float32
        and target.device.type == "cpu"
        and (ignore is None or (ignore.shape == logits.shape and ignore.dtype in (torch.uint8, torch.bool)))
        and numba_path_ok(logits)
        and not graph_capture(logits)
    )


def _focal_kernel(
    logits: Tensor, target: Tensor, ignore: Tensor | None, alpha: float, beta: float, need_grad: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(summed terms, positives, gradient map or None) of the whole map, one numba pass per chunk of the batch."""
    use_torch_threads()
    x = logits.detach()
    grad = torch.empty_like(x) if need_grad else None
    totals = []
    for a, b in _chunks(x.shape):  # chunks keep exp / log1p temporaries in the cache
        xc = x[a:b]
        exps = torch.abs(xc).neg_().exp_()
        log1ps = torch.log1p(exps)
        sums = np.empty(((b - a) * x.shape[2], 2), np.float64)
        mask = np.zeros((1, 1, 1, 1), np.uint8) if ignore is None else ignore[a:b].detach().view(torch.uint8).numpy()
        out = grad[a:b].numpy() if need_grad else np.empty((1, 1, 1, 1), np.float32)
        focal_kernel.focal_rows(
            xc.numpy(), exps.numpy(), log1ps.numpy(), target[a:b].detach().numpy(), mask, ignore is not None,
            np.float32(LOG_EPS), np.float32(alpha), np.float32(beta), out, need_grad, sums,
        )  # fmt: skip
        totals.append(sums)
    total = np.concatenate(totals).sum(0)  # rows in order: the same value on any thread count
    return torch.tensor(total[0], dtype=torch.float32), torch.tensor(total[1], dtype=torch.float32), grad


def _focal_formula(
    logits: Tensor, target: Tensor, ignore: Tensor | None, alpha: float, beta: float, need_grad: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``_focal_kernel``'s result by autograd of ``focal_terms``, chunk by chunk of the batch."""
    grad = torch.empty_like(logits) if need_grad else None
    total = logits.new_zeros((), dtype=torch.float32)
    count = logits.new_zeros((), dtype=torch.float32)
    for a, b in _chunks(logits.shape):
        x = logits[a:b].detach().requires_grad_(need_grad)
        with torch.enable_grad():
            s, n = focal_terms(x, target[a:b], None if ignore is None else ignore[a:b], alpha, beta)
        if need_grad:
            (grad[a:b],) = torch.autograd.grad(s, x)
        total += s.detach()
        count += n
    return total, count, grad


class _FocalSum(torch.autograd.Function):
    """``focal_terms`` over the batch with its gradient computed in the forward pass into one
    map, so backward is a single multiply: on CPU float32 by ``focal_kernel`` (one pass; 4x the
    chunked autograd's speed on an 80-class 128x128 batch of 4), otherwise in chunks by autograd
    of the same formula. Same value and per-element gradient as the whole-tensor formula up to
    float rounding and the order of the sums."""

    @staticmethod
    def forward(ctx, logits, target, ignore, alpha, beta):  # type: ignore[override]
        path = _focal_kernel if _kernel_path_ok(logits, target, ignore) else _focal_formula
        total, count, grad = path(logits, target, ignore, alpha, beta, ctx.needs_input_grad[0])
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(count)
        return total, count

    @staticmethod
    def backward(ctx, grad_total, grad_count):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * grad_total, None, None, None, None


def focal_loss(
    logits: Tensor, target: Tensor, ignore: Tensor | None = None, alpha: float = 2.0, beta: float = 4.0
) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet / CenterNet), normalised by the positives
    of the global batch.

    logits: (B, C, H, W) raw heatmap; target: same shape, gaussian-splatted, exactly 1 at centres;
    ignore: optional same-shape mask (non-zero = no loss at that cell).
    Probabilities are clamped to [1e-4, 1 - 1e-4] as the original. Computed from logsigmoid
    for numerical stability; one numba pass on CPU float32 maps (``focal_kernel``), else in chunks
    of the batch (see ``FOCAL_CHUNK``, ``focal_terms``).
    """
    total, positives = _FocalSum.apply(logits, target, ignore, alpha, beta)
    num_pos = global_mean_count(positives)
    if num_pos == 0:  # no object in the whole global batch: the summed negative loss
        return -total * world_size()
    return -total / num_pos


def masked_l1(pred_map: Tensor, inds: Tensor, mask: Tensor, target: Tensor) -> Tensor:
    """L1 between a dense map read at object cells and per-object targets.

    pred_map: (B, C, H, W); inds: (B, M) flat cell index; mask: (B, M) or (B, M, C) 0/1;
    target: (B, M, C). Normalised by the number of masked elements (as the original).
    """
    pred = gather_at(pred_map, inds).float()
    m = mask.float()
    if m.dim() == 2:
        m = m.unsqueeze(2).expand_as(pred)
    loss = (torch.abs(pred - target.float()) * m).sum()
    return normalised(loss, m.sum(), 1e-4)
