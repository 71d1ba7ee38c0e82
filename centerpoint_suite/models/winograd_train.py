"""Training 3x3 stride-1 convolutions as Winograd F(4x4, 3x3): forward, input gradient and
weight gradient (CPU float32).

With ``U = G w G^T`` (6x6 per channel pair), ``V = B^T d B`` per input tile and
``Y = A^T (sum_ci U V) A`` per 4x4 output block (``winograd.py``), the two gradients are
(Lavin & Gray 2016, section 4):

- input: the convolution of the output gradient with the kernel flipped and its channel axes
  swapped, which is again a 3x3 stride-1 padding-1 convolution: the forward path itself;
- weight: ``dU = sum over tiles of V^T (A dY A^T)`` (36 matrix products over tiles, one per
  point), then ``dw = G^T dU G``.

The forward and the input gradient take F(6x6, 3x3) where the prediction path does
(``winograd.tile_side``: maps of 64x64 and more; res18 batch-4 training step 1.076x, interleaved
on the AMD EPYC Zen 3); the weight gradient stays F(4x4, 3x3). The per-step weight transforms
are float32 numba kernels (``winograd_kernels.weight_points`` and its adjoint ``point_taps``),
not the float64 transform of the prediction path, which runs once per model. Error: about 1e-5
of each result's largest value, like the forward (``tests/models/test_winograd_train.py`` checks
all three against float64 autograd).

``enable(net)`` switches a network's eligible ``nn.Conv2d`` layers to ``WinogradConv2d`` (same
parameters and state_dict); each call then takes this path when its input qualifies (CPU float32
maps of ``MIN_SIDE_TRAIN`` or more, not while tracing or exporting) and the plain convolution
otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import winograd
from . import winograd_kernels as kernels

#: per tile side (F(4x4, 3x3), F(6x6, 3x3)): G in float32 for the weight kernels, and with its
#: columns reversed (the kernel rotated by 180 degrees: the input gradient's)
_GS = {
    m: (np.array(g, np.float32), np.array(g, np.float32)[:, ::-1].copy())
    for m, g in ((4, winograd._G), (6, winograd._G6))
}
#: tiles per block of the weight gradient: long reductions for its matrix products (36 of
#: Cin x tiles x Cout), kept to a few tens of MB of transformed tiles
GRAD_BLOCK_TILES = 1024
#: the smallest map trained this way (forward + both gradients against oneDNN's, batch 4, per-step
#: weight transforms included; benchmarks/bench_winograd_train.py, two runs): 256 -> 64 channels on
#: 128x128 1.92-2.06x, 64 on 128x128 1.50-1.51x, 128 on 64x64 1.68-2.05x, 256 on 32x32 1.74-1.86x,
#: 512 on 16x16 1.13-1.35x (its batch's tiles in one product: 0.89-1.07x one image at a time)
MIN_SIDE_TRAIN = 16


def kernels_last(weight: Tensor) -> np.ndarray:
    """A (A, B, KH, KW) weight as the C-contiguous float32 array (A, KH, KW, B) the weight kernels
    read: a view of a channels_last weight (the trainer's on CPU), a copy otherwise."""
    return weight.detach().permute(0, 2, 3, 1).contiguous().numpy()


def transform_weight_f32(weight: Tensor, flip: bool = False, m: int = winograd.M_OUT) -> Tensor:
    """(Cout, Cin, 3, 3) -> ((m + 2)^2, Cin, Cout) as ``winograd.transform_weight(weight, m)``, in
    float32 (numba, ``winograd_kernels.weight_points``): a transposed view of ((m + 2)^2, Cout, Cin)
    memory, which the matrix products take as it is.

    ``flip``: the transform of the kernel rotated by 180 degrees with its channel axes swapped,
    ((m + 2)^2, Cout, Cin), which turns the forward path into the input gradient.
    """
    cout, cin = weight.shape[:2]
    w = kernels_last(weight)
    out = np.empty(((m + 2) ** 2, cout, cin), np.float32)
    winograd.use_torch_threads()
    kernels.weight_points(w, _GS[m][1 if flip else 0], out)
    u = torch.from_numpy(out)
    return u if flip else u.transpose(1, 2)


def weight_grad(x: Tensor, grad: Tensor, like: Tensor | None = None) -> Tensor:
    """d loss / d w of ``conv2d(x, w, padding=1)`` for a 3x3 ``w``, given the output gradient ``grad``.

    x: (N, Cin, H, W), grad: (N, Cout, H, W), any memory format; returns (Cout, Cin, 3, 3) in the
    memory format of ``like`` (the weight: its gradient is then stored as computed, where another
    layout costs autograd a copy of it per step), contiguous without.
    """
    n, cin, h, w = x.shape
    cout = grad.shape[1]
    th, tw = math.ceil(h / winograd.M_OUT), math.ceil(w / winograd.M_OUT)
    rows = max(1, GRAD_BLOCK_TILES // tw)
    xs = x.detach().permute(0, 2, 3, 1).contiguous().numpy()
    gs = grad.detach().permute(0, 2, 3, 1).contiguous().numpy()
    du = torch.empty(36, cout, cin)  # dU transposed: (Cout, Cin) per point, so that dw comes out Cin-minor
    first = True

    def accumulate(v: Tensor, m: Tensor) -> None:
        nonlocal first
        if first:  # the first block's product is written, not added to zeros
            torch.bmm(m.transpose(1, 2), v, out=du)
            first = False
        else:
            du.baddbmm_(m.transpose(1, 2), v)

    winograd.use_torch_threads()
    if n > 1 and 2 * th * tw <= winograd.BLOCK_TILES:  # small maps: several images per product
        grads = winograd.image_groups(gs, th, tw, kernels.grad_tiles)
        for (_, _, vg), (_, _, mg) in zip(winograd.image_groups(xs, th, tw, kernels.input_tiles), grads):
            accumulate(vg, mg)
        n = 0
    v = torch.empty(36, rows * tw, cin) if n else None
    m = torch.empty(36, rows * tw, cout) if n else None
    for i in range(n):
        for r0 in range(0, th, rows):
            r1 = min(th, r0 + rows)
            t = (r1 - r0) * tw
            kernels.input_tiles(xs[i], r0, r1, tw, v.numpy())
            kernels.grad_tiles(gs[i], r0, r1, tw, m.numpy())
            accumulate(v[:, :t], m[:, :t])
    taps = torch.empty(cout, cin, 3, 3, memory_format=torch.channels_last)  # (Cout, 3, 3, Cin) in memory
    kernels.point_taps(du.numpy(), _GS[4][0], taps.permute(0, 2, 3, 1).numpy())
    return _in_format_of(taps, like)


def _in_format_of(grad: Tensor, like: Tensor | None) -> Tensor:
    """A channels_last weight gradient as it is when ``like`` (the weight) is channels_last,
    else contiguous (autograd copies a gradient whose layout differs from its weight's)."""
    if like is not None and like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last):
        return grad
    return grad.contiguous()


def _conv_function(name: str, forward, input_grad, weight_grad_of) -> type[torch.autograd.Function]:
    """A differentiable convolution from its three passes: ``forward(x, weight, bias)``,
    ``input_grad(grad, weight)`` and ``weight_grad_of(x, grad, weight)`` (the weight for its
    gradient's memory format); the bias gradient sums ``grad``."""

    def fwd(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return forward(x, weight, bias)

    def bwd(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        gx = input_grad(grad, weight) if ctx.needs_input_grad[0] else None
        gw = weight_grad_of(x, grad, weight) if ctx.needs_input_grad[1] else None
        gb = grad.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(fwd), "backward": staticmethod(bwd)})


def _forward(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    m = winograd.tile_side(*x.shape[-2:])  # F(6x6, 3x3) on large maps, as prediction
    return winograd.conv3x3(x, transform_weight_f32(weight, m=m), bias, relu=False)


def _input_grad(grad: Tensor, weight: Tensor) -> Tensor:
    m = winograd.tile_side(*grad.shape[-2:])
    return winograd.conv3x3(grad, transform_weight_f32(weight, flip=True, m=m), None, relu=False)


_Conv3x3 = _conv_function("_Conv3x3", _forward, _input_grad, weight_grad)


def conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``conv2d(x, weight, bias, padding=1)`` through Winograd, differentiable; channels_last out."""
    return _Conv3x3.apply(x, weight, bias)


class WinogradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters) whose calls take ``conv3x3`` when ``winograd.eligible``."""

    def forward(self, x: Tensor) -> Tensor:
        if takes_winograd(self, x):
            return conv3x3(x, self.weight, self.bias)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def enable(net: nn.Module) -> int:
    """Switch ``net``'s plain 3x3 stride-1 padding-1 ``nn.Conv2d`` layers of 64+ input and output
    channels to ``WinogradConv2d``, and its 4x4 stride-2 padding-1 ``nn.ConvTranspose2d`` layers of
    64+ channels to ``WinogradConvTranspose2d``, in place (parameters, buffers and state_dict unchanged); returns
    how many. Whether a call takes the Winograd path is still decided per input."""
    count = 0
    for module in net.modules():
        if type(module) is nn.Conv2d and _shape_ok(module):
            module.__class__ = WinogradConv2d
            count += 1
        elif type(module) is nn.ConvTranspose2d and _transposed_shape_ok(module):
            module.__class__ = WinogradConvTranspose2d
            count += 1
    return count


def takes_winograd(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether a call of ``conv`` (a ``WinogradConv2d``) on ``x`` takes the Winograd path."""
    return (
        isinstance(conv, WinogradConv2d)
        and winograd.numba_path_ok(x)  # first: no shape tests while tracing
        and x.dim() == 4
        and min(x.shape[-2:]) >= MIN_SIDE_TRAIN
        and winograd.eligible(conv.weight, conv.stride, conv.padding, conv.dilation, conv.groups, x)
    )


def merged_first_convs(x: Tensor, heads: list[nn.Module]) -> list[Tensor] | None:
    """The first layers' outputs of several heads reading the same ``x`` as one Winograd call
    with their weights stacked, or None when they do not all take that path.

    Separately, each head would transform the same input tiles and, in the backward pass, run a
    narrow input-gradient product (K = its own channels) and transform its own full-width input
    gradient; stacked, each happens once. The outputs are channels_last copies of the stacked
    result's slices (a head's in-place ReLU may not write into a custom function's output view).
    """
    if len(heads) < 2 or not all(isinstance(h, nn.Sequential) and len(h) > 1 for h in heads):
        return None
    convs = [h[0] for h in heads]
    if not all(takes_winograd(c, x) for c in convs) or len({c.bias is None for c in convs}) > 1:
        return None
    weight = torch.cat([c.weight for c in convs])
    bias = None if convs[0].bias is None else torch.cat([c.bias for c in convs])
    y = conv3x3(x, weight, bias)
    sizes = [c.out_channels for c in convs]
    return [part.contiguous(memory_format=torch.channels_last) for part in y.split(sizes, dim=1)]


def _shape_ok(conv: nn.Conv2d) -> bool:
    return (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and min(conv.in_channels, conv.out_channels) >= winograd.MIN_CHANNELS
    )


# ---- transposed 4x4 stride-2 convolutions (the upsampling necks) ------------------------------
# Forward: ``winograd.conv_transpose4x4s2`` (each output phase a 2x2 correlation, F(4x4, 2x2)).
# Input gradient: a 4x4 stride-2 convolution of the output gradient, i.e. the sum over the four
# phases of a 2x2 correlation of that phase's grid with the phase's taps reversed; in F(4x4, 2x2)
# the four phases' transformed tiles sit side by side along the channels, so one product of
# K = 4 Cout sums them before a single output transform. Weight gradient: per phase, as for the
# 3x3 case, ``dU = sum over tiles of V^T (A dY A^T)``, then ``dk = G^T dU G`` for its 2x2 taps.

#: G of F(4x4, 2x2) for the weight kernels, and each output phase's taps of a 4x4 kernel
#: (``winograd._PHASE_TAPS``) as arrays, forward and reversed (the input gradient's)
_G2_32 = np.array(winograd._G2, np.float32)
_TAPS = {p: np.array(t, np.int64) for p, t in winograd._PHASE_TAPS.items()}
_TAPS_REVERSED = {p: np.ascontiguousarray(t[::-1]) for p, t in _TAPS.items()}


def transform_transposed_weight_f32(weight: Tensor) -> Tensor:
    """``winograd.transform_transposed_weight`` in float32 (numba): (100, Cin, Cout), the phases'
    25 points one after another (``winograd.PHASES`` order)."""
    cin, cout = weight.shape[:2]
    w = kernels_last(weight)  # (Cin, 4, 4, Cout)
    out = np.empty((len(winograd.PHASES) * 25, cin, cout), np.float32)
    winograd.use_torch_threads()
    for ph, (py, px) in enumerate(winograd.PHASES):
        kernels.phase_weight_points(w, _TAPS[py], _TAPS[px], _G2_32, out[25 * ph : 25 * ph + 25], 0)
    return torch.from_numpy(out)


def transform_transposed_weight_for_input_grad(weight: Tensor) -> Tensor:
    """(Cin, Cout, 4, 4) -> (25, 4 Cout, Cin): each phase's taps reversed, its channel axes
    swapped, transformed, and the phases stacked along the rows (``phase_grad_input_tiles``' order);
    a transposed view of (25, Cin, 4 Cout) memory."""
    cin, cout = weight.shape[:2]
    w = kernels_last(weight)
    out = np.empty((25, cin, len(winograd.PHASES) * cout), np.float32)
    winograd.use_torch_threads()
    for ph, (py, px) in enumerate(winograd.PHASES):
        kernels.phase_weight_points(w, _TAPS_REVERSED[py], _TAPS_REVERSED[px], _G2_32, out, ph * cout)
    return torch.from_numpy(out).transpose(1, 2)


def transposed_input_grad(grad: Tensor, weight: Tensor) -> Tensor:
    """d loss / d x of ``conv_transpose2d(x, weight, stride=2, padding=1)`` (4x4 ``weight``),
    given the output gradient (N, Cout, 2H, 2W); returns channels_last (N, Cin, H, W)."""
    n, cout, h2, w2 = grad.shape
    cin = weight.shape[0]
    h, w = h2 // 2, w2 // 2
    th, tw = math.ceil(h / winograd.M_OUT), math.ceil(w / winograd.M_OUT)
    rows = max(1, winograd.BLOCK_TILES // tw)
    gs = grad.detach().permute(0, 2, 3, 1).contiguous().numpy()
    u = transform_transposed_weight_for_input_grad(weight)
    out = torch.empty(n, cin, h, w, memory_format=torch.channels_last)
    outs = out.permute(0, 2, 3, 1).numpy()
    v = torch.empty(25, rows * tw, 4 * cout)
    winograd.use_torch_threads()
    for i in range(n):
        for r0 in range(0, th, rows):
            r1 = min(th, r0 + rows)
            t = (r1 - r0) * tw
            kernels.phase_grad_input_tiles(gs[i], r0, r1, tw, v.numpy())
            kernels.output_tiles_f42(torch.bmm(v[:, :t], u).numpy(), r0, tw, outs[i])
    return out


def transposed_weight_grad(x: Tensor, grad: Tensor, like: Tensor | None = None) -> Tensor:
    """d loss / d weight of ``conv_transpose2d(x, weight, stride=2, padding=1)`` (4x4), given the
    output gradient; returns (Cin, Cout, 4, 4) in the memory format of ``like`` (the weight), contiguous without."""
    n, cin, h, w = x.shape
    cout = grad.shape[1]
    th, tw = math.ceil(h / winograd.M_OUT), math.ceil(w / winograd.M_OUT)
    rows = max(1, GRAD_BLOCK_TILES // tw)
    xs = x.detach().permute(0, 2, 3, 1).contiguous().numpy()
    gs = grad.detach().permute(0, 2, 3, 1).contiguous().numpy()
    v = torch.empty(100, rows * tw, cin)
    m = torch.empty(100, rows * tw, cout)
    du = torch.empty(100, cin, cout)
    winograd.use_torch_threads()
    for i in range(n):
        for r0 in range(0, th, rows):
            r1 = min(th, r0 + rows)
            t = (r1 - r0) * tw
            kernels.phase_input_tiles(xs[i], r0, r1, tw, v.numpy())
            kernels.phase_grad_tiles(gs[i], r0, r1, tw, m.numpy())
            if i == 0 and r0 == 0:  # the first block's product is written, not added to zeros
                torch.bmm(v[:, :t].transpose(1, 2), m[:, :t], out=du)
            else:
                du.baddbmm_(v[:, :t].transpose(1, 2), m[:, :t])
    dw = torch.empty(cin, cout, 4, 4, memory_format=torch.channels_last)
    dws = dw.permute(0, 2, 3, 1).numpy()  # (Cin, 4, 4, Cout): each phase writes its four taps
    for ph, (py, px) in enumerate(winograd.PHASES):
        kernels.phase_point_taps(du[25 * ph : 25 * ph + 25].numpy(), _TAPS[py], _TAPS[px], _G2_32, dws)
    return _in_format_of(dw, like)


_ConvTranspose4x4s2 = _conv_function(
    "_ConvTranspose4x4s2",
    lambda x, weight, bias: winograd.conv_transpose4x4s2(x, transform_transposed_weight_f32(weight), bias, relu=False),
    transposed_input_grad,
    transposed_weight_grad,
)


def conv_transpose4x4s2(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` for a 4x4 ``weight`` through
    Winograd, differentiable; channels_last out."""
    return _ConvTranspose4x4s2.apply(x, weight, bias)


class WinogradConvTranspose2d(nn.ConvTranspose2d):
    """An ``nn.ConvTranspose2d`` (same parameters) whose calls take ``conv_transpose4x4s2`` when
    ``takes_winograd_transposed``."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is None and takes_winograd_transposed(self, x):
            return conv_transpose4x4s2(x, self.weight, self.bias)
        return super().forward(x, output_size)


def takes_winograd_transposed(conv: nn.ConvTranspose2d, x: Tensor) -> bool:
    """Whether a call of ``conv`` (a ``WinogradConvTranspose2d``) on ``x`` takes the Winograd path."""
    return (
        isinstance(conv, WinogradConvTranspose2d)
        and winograd.numba_path_ok(x)
        and x.dim() == 4
        and winograd.transposed_eligible(
            conv.weight,
            conv.stride,
            conv.padding,
            conv.output_padding,
            conv.dilation,
            conv.groups,
            x,
            min_side=MIN_SIDE_TRAIN_TRANSPOSED,
            min_channels=winograd.MIN_CHANNELS,
        )
    )


#: the smallest input map of a transposed convolution trained this way (all three passes against
#: oneDNN's, batch 4, bench_winograd_train.py): 256 -> 256 from 64x64 1.70x (AMD) / 2.08x (Intel),
#: from 32x32 1.06x / 0.97-1.44x (oneDNN's weight gradient there varies: 83 ms against Winograd's
#: 31 in the 1.44x run), 512 -> 256 from 16x16 0.50x / 0.56x. Taken from 32x32: the res18 512
#: batch 4 training step ran 1667 ms against 1733 ms from 64x64 (8 interleaved pairs, Intel)
MIN_SIDE_TRAIN_TRANSPOSED = 32


def _transposed_shape_ok(conv: nn.ConvTranspose2d) -> bool:
    return (
        conv.kernel_size == (4, 4)
        and conv.stride == (2, 2)
        and conv.padding == (1, 1)
        and conv.output_padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and min(conv.in_channels, conv.out_channels) >= winograd.MIN_CHANNELS
    )
