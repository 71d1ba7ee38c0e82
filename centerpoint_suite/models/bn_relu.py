"""Batch norm followed by ReLU in training, one numba pass for the statistics and one for the
output, and the same two for the gradient (CPU float32, NCHW or channels_last maps).

With mean ``mu`` and ``istd = 1 / sqrt(var + eps)`` of the batch (per channel), ``a = gamma istd``
and ``b = beta - mu a``, the forward is ``y = max(a x + b, 0)``. With ``dz = dy`` where
``a x + b > 0`` and 0 elsewhere (the same float32 expression as the forward, so the same cells),
``M`` values per channel:

- ``d beta = sum dz``, ``d gamma = istd sum dz (x - mu)``;
- ``dx = a (dz - d beta / M - (x - mu) istd^2 sum dz (x - mu) / M)``.

torch's two modules (batch norm, then ReLU) read and write the map 9 and 4 times in a training
step (forward: statistics, normalise, ReLU; backward: ReLU's mask, the two batch-norm passes);
this reads it 6 times and writes it twice, and keeps no output of its own for the backward. The
sums are taken in float64 over a fixed split of the rows (``BLOCKS``), added in order: the same
bits on any thread count, and closer to float64 than torch's float32 sums (measured on a 4x64x256x256
map: d beta within 1e-15 of float64 against 2e-3, the output within 7e-7 against 8e-5).

``enable(net)`` turns the batch norms of a network that a ReLU directly follows into
``BatchNormReLU2d`` (same parameters, buffers and state_dict; it applies the ReLU itself in every
mode) and that ReLU into ``FusedReLU`` (nothing to do); ``disable(net)`` undoes it (the
inference optimiser, ``optimize.prepare_for_inference``, reads the plain structure). Patterns:
``[BatchNorm2d, ReLU]`` in a Sequential, the ResNet stem (``bn1``, ``relu``) and torchvision's
``BasicBlock`` / ``Bottleneck`` (their batch norms before the residual sum stay as they are).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torchvision.models import resnet as tv_resnet

from . import winograd

#: row blocks of the channels_last reductions (fixed, so the sums do not depend on the thread count)
BLOCKS = 64
#: the fewest values per channel (N x H x W) that take the kernels; on smaller maps torch's two
#: modules are as fast or faster (``benchmarks/bench_bn_relu.py``, batch 4, forward + backward:
#: 512 channels on 16x16 0.66x, 256 on 32x32 1.06x, 128 on 64x64 1.16x, 64 on 256x256 1.69x)
MIN_VALUES = 4096


# ---- kernels: channels_last maps as (rows, C), NCHW maps as (N, C, H*W) ----------------------
@numba.njit(cache=True, nogil=True, parallel=True)
def _stats_rows(x, nb):
    r, c = x.shape
    out = np.zeros((nb, 2, c))
    for blk in numba.prange(nb):
        s, q = np.zeros(c), np.zeros(c)
        for i in range(blk * r // nb, (blk + 1) * r // nb):
            row = x[i]
            for j in range(c):
                v = np.float64(row[j])
                s[j] += v
                q[j] += v * v
        out[blk, 0], out[blk, 1] = s, q
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _stats_planes(x):
    n, c, m = x.shape
    out = np.zeros((1, 2, c))
    for j in numba.prange(c):
        s = q = 0.0
        for i in range(n):
            plane = x[i, j]
            for k in range(m):
                v = np.float64(plane[k])
                s += v
                q += v * v
        out[0, 0, j], out[0, 1, j] = s, q
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _forward_rows(x, a, b, y, nb):
    r, c = x.shape
    for blk in numba.prange(nb):
        for i in range(blk * r // nb, (blk + 1) * r // nb):
            row, out = x[i], y[i]
            for j in range(c):
                v = row[j] * a[j] + b[j]
                out[j] = v if v > 0 else np.float32(0)


@numba.njit(cache=True, nogil=True, parallel=True)
def _forward_planes(x, a, b, y):
    n, c, m = x.shape
    for j in numba.prange(c):
        for i in range(n):
            plane, out = x[i, j], y[i, j]
            for k in range(m):
                v = plane[k] * a[j] + b[j]
                out[k] = v if v > 0 else np.float32(0)


@numba.njit(cache=True, nogil=True, parallel=True)
def _grad_sums_rows(dy, x, a, b, mean, nb):
    r, c = x.shape
    out = np.zeros((nb, 2, c))
    for blk in numba.prange(nb):
        s, q = np.zeros(c), np.zeros(c)
        for i in range(blk * r // nb, (blk + 1) * r // nb):
            row, g = x[i], dy[i]
            for j in range(c):
                if row[j] * a[j] + b[j] > 0:
                    d = np.float64(g[j])
                    s[j] += d
                    q[j] += d * (np.float64(row[j]) - mean[j])
        out[blk, 0], out[blk, 1] = s, q
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _grad_sums_planes(dy, x, a, b, mean):
    n, c, m = x.shape
    out = np.zeros((1, 2, c))
    for j in numba.prange(c):
        s = q = 0.0
        for i in range(n):
            plane, g = x[i, j], dy[i, j]
            for k in range(m):
                if plane[k] * a[j] + b[j] > 0:
                    d = np.float64(g[k])
                    s += d
                    q += d * (np.float64(plane[k]) - mean[j])
        out[0, 0, j], out[0, 1, j] = s, q
    return out


@numba.njit(cache=True, nogil=True, parallel=True)
def _grad_rows(dy, x, a, b, mean, c1, c2, dx, nb):
    r, c = x.shape
    for blk in numba.prange(nb):
        for i in range(blk * r // nb, (blk + 1) * r // nb):
            row, g, out = x[i], dy[i], dx[i]
            for j in range(c):
                dz = g[j] if row[j] * a[j] + b[j] > 0 else np.float32(0)
                out[j] = a[j] * (dz - c1[j] - (row[j] - mean[j]) * c2[j])


@numba.njit(cache=True, nogil=True, parallel=True)
def _grad_planes(dy, x, a, b, mean, c1, c2, dx):
    n, c, m = x.shape
    for j in numba.prange(c):
        for i in range(n):
            plane, g, out = x[i, j], dy[i, j], dx[i, j]
            for k in range(m):
                dz = g[k] if plane[k] * a[j] + b[j] > 0 else np.float32(0)
                out[k] = a[j] * (dz - c1[j] - (plane[k] - mean[j]) * c2[j])


# ---- the differentiable function ------------------------------------------------------------
def _is_rows(x: Tensor) -> bool:
    """channels_last storage (read as rows of C values); NCHW-contiguous otherwise."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _view(t: Tensor, rows: bool) -> np.ndarray:
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).numpy().reshape(-1, c) if rows else t.numpy().reshape(n, c, h * w)


def _sums(out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = out.sum(0)  # the blocks added in order (numpy, one thread): the same bits on any thread count
    return total[0], total[1]


class _BatchNormReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, factor: float, eps: float):
        rows = _is_rows(x)
        n, c, h, w = x.shape
        count = n * h * w
        xs = _view(x, rows)
        winograd.use_torch_threads()
        s, q = _sums(_stats_rows(xs, BLOCKS) if rows else _stats_planes(xs))
        mean = s / count
        var = np.maximum(q / count - mean * mean, 0.0)
        istd = 1.0 / np.sqrt(var + eps)
        gamma = weight.detach().double().numpy()
        a = (gamma * istd).astype(np.float32)
        b = (bias.detach().double().numpy() - mean * gamma * istd).astype(np.float32)
        if running_mean is not None:
            with torch.no_grad():
                unbiased = var * count / max(count - 1, 1)
                running_mean.mul_(1 - factor).add_(torch.from_numpy(mean).to(running_mean.dtype), alpha=factor)
                running_var.mul_(1 - factor).add_(torch.from_numpy(unbiased).to(running_var.dtype), alpha=factor)
        fmt = torch.channels_last if rows else torch.contiguous_format
        y = torch.empty(x.shape, dtype=x.dtype, memory_format=fmt)
        if rows:
            _forward_rows(xs, a, b, _view(y, rows), BLOCKS)
        else:
            _forward_planes(xs, a, b, _view(y, rows))
        ctx.save_for_backward(x)
        ctx.stats = (a, b, mean, istd, rows)
        return y

    @staticmethod
    @once_differentiable  # no graph through the kernels: a second derivative is an error, never a wrong value
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        a, b, mean, istd, rows = ctx.stats
        n, c, h, w = x.shape
        count = n * h * w
        fmt = torch.channels_last if rows else torch.contiguous_format
        dy = dy.contiguous(memory_format=fmt)
        xs, gs = _view(x, rows), _view(dy, rows)
        winograd.use_torch_threads()
        sums = _grad_sums_rows(gs, xs, a, b, mean, BLOCKS) if rows else _grad_sums_planes(gs, xs, a, b, mean)
        s, q = _sums(sums)
        c1 = (s / count).astype(np.float32)
        c2 = (istd * istd * q / count).astype(np.float32)
        dx = torch.empty(x.shape, dtype=x.dtype, memory_format=fmt)
        mean32 = mean.astype(np.float32)
        if rows:
            _grad_rows(gs, xs, a, b, mean32, c1, c2, _view(dx, rows), BLOCKS)
        else:
            _grad_planes(gs, xs, a, b, mean32, c1, c2, _view(dx, rows))
        dgamma = torch.from_numpy((q * istd).astype(np.float32))
        dbeta = torch.from_numpy(s.astype(np.float32))
        return dx, dgamma, dbeta, None, None, None, None


def kernel_path_ok(bn: nn.BatchNorm2d, x: Tensor) -> bool:
    """Whether a training call of ``bn`` on ``x`` takes the kernels: an affine batch norm in
    training mode on a CPU float32 4-D map of ``MIN_VALUES`` or more per channel, NCHW or
    channels_last, outside traces."""
    return (
        bn.training
        and bn.affine
        and winograd.numba_path_ok(x)
        and x.dim() == 4
        and x.numel() >= MIN_VALUES * x.shape[1] > 0
        and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last))
        and (bn.track_running_stats or bn.running_mean is None)
    )


class BatchNormReLU2d(nn.BatchNorm2d):
    """``relu(batch_norm(x))`` in every mode: an ``nn.BatchNorm2d`` (same parameters, buffers and
    state_dict) whose training calls take the kernels of this module."""

    def forward(self, x: Tensor) -> Tensor:
        if not kernel_path_ok(self, x):
            return F.relu(super().forward(x), inplace=True)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                factor = 1.0 / float(self.num_batches_tracked)
        return _BatchNormReLU.apply(x, self.weight, self.bias, self.running_mean, self.running_var, factor, self.eps)


class FusedReLU(nn.Identity):
    """The place of a ReLU that the batch norm before it applies (``BatchNormReLU2d``)."""


class FusedBasicBlock(tv_resnet.BasicBlock):
    """torchvision's ``BasicBlock`` whose ``bn1`` applies the ReLU (the block's ``relu`` still
    follows the residual sum)."""

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class FusedBottleneck(tv_resnet.Bottleneck):
    """torchvision's ``Bottleneck`` whose ``bn1`` and ``bn2`` apply the ReLU."""

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv3(self.bn2(self.conv2(self.bn1(self.conv1(x))))))
        out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


_BLOCKS = {tv_resnet.BasicBlock: (FusedBasicBlock, ("bn1",)), tv_resnet.Bottleneck: (FusedBottleneck, ("bn1", "bn2"))}


def _plain_bn(m: nn.Module) -> bool:
    return type(m) is nn.BatchNorm2d


def enable(net: nn.Module) -> int:
    """Fuse ``net``'s batch norms that a ReLU directly follows (see the module's doc), in place;
    returns how many. Parameters, buffers and state_dict keys stay as they are."""
    from .resnet import ResNetBody

    count = 0
    for module in list(net.modules()):
        if type(module) in _BLOCKS:
            cls, names = _BLOCKS[type(module)]
            if all(_plain_bn(getattr(module, n)) for n in names):
                module.__class__ = cls
                for n in names:
                    getattr(module, n).__class__ = BatchNormReLU2d
                count += len(names)
        elif isinstance(module, ResNetBody) and _plain_bn(module.bn1) and type(module.relu) is nn.ReLU:
            module.bn1.__class__ = BatchNormReLU2d
            module.relu = FusedReLU()
            count += 1
        elif isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if _plain_bn(module[i]) and type(module[i + 1]) is nn.ReLU:
                    module[i].__class__ = BatchNormReLU2d
                    module[i + 1] = FusedReLU()
                    count += 1
    return count


def disable(net: nn.Module) -> int:
    """Undo ``enable`` in place (plain batch norms and ReLUs again); returns how many it restored."""
    count = 0
    for module in list(net.modules()):
        for cls, (fused, _) in _BLOCKS.items():
            if type(module) is fused:
                module.__class__ = cls
        for name, child in list(module.named_children()):
            if type(child) is FusedReLU:
                setattr(module, name, nn.ReLU(inplace=True))
        if type(module) is BatchNormReLU2d:
            module.__class__ = nn.BatchNorm2d
            count += 1
    return count
