"""Modulated deformable 3x3 convolution (DCNv2) without a compiled extension.

``ModulatedDeformConv`` has the parameters and state-dict keys of the original CenterNet
``DCN`` module (``weight``, ``bias``, ``conv_offset_mask.weight/bias``), so original
checkpoints load unchanged. The offsets and mask are predicted from the input by
``conv_offset_mask`` (3 * K channels, K = kh * kw kernel taps):

- offsets = the first 2K channels, i.e. ``cat(o1, o2)`` of the 3-way chunk, laid out as
  (dy, dx) pairs per kernel tap, in input pixels (the order ``torchvision.ops.deform_conv2d``
  documents);
- mask = sigmoid of the last K channels.

Three interchangeable kernels compute the convolution itself:

- ``"torchvision"``: ``torchvision.ops.deform_conv2d`` (the reference);
- ``"grid_sample"``: pure torch: all taps sampled bilinearly by one ``F.grid_sample`` call,
  masked, then one matrix product (NCHW columns);
- ``"gather"``: pure torch, channels-last: the four bilinear corners of every tap are
  gathered as rows of the (N*(H+3)*(W+3), C) zero-bordered input and summed with their
  weights (bilinear weight x mask) by one ``F.embedding_bag`` call into a (N*Ho*Wo, K*C)
  column matrix, finished by one matrix product whose result is already the channels-last
  output (at inference in cache-sized blocks of rows). No NCHW<->NHWC copies around it;
  equal to the reference within float32 rounding. For prediction (CPU float32, no autograd)
  the column blocks come from one numba pass instead (``deform_conv2d_columns``).

The default (``"auto"``) is ``"gather"`` on CPU and ``"torchvision"`` elsewhere; override
with ``set_deform_impl(model, name)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from .dcn_kernel import deform_columns
from .winograd import numba_path_ok, use_torch_threads

IMPLS = ("auto", "torchvision", "grid_sample", "gather")
#: inference with the ``gather`` kernel builds its column matrix in blocks of about this many
#: floats (2 MiB), each multiplied out before the next: the block stays in cache between the
#: gather and the GEMM and no large temporary is allocated (0: one block)
GATHER_CHUNK_FLOATS = 1 << 19


def _checked_shapes(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor) -> tuple[int, ...]:
    """(n, c, h, w, cout, kh, kw, ho, wo) of a deformable convolution's arguments, after checking
    that the weight, offset and mask agree with the input (one offset group, no groups)."""
    n, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    if cin != c:
        raise ValueError(f"deform_conv2d: input has {c} channels, weight expects {cin} (groups unsupported)")
    k = kh * kw
    ho, wo = offset.shape[-2:]
    if offset.shape[1] != 2 * k or mask.shape[1] != k:
        raise ValueError(
            f"deform_conv2d: offset {tuple(offset.shape)} / mask {tuple(mask.shape)} need {2 * k} / {k} "
            "channels (one offset group)"
        )
    return n, c, h, w, cout, kh, kw, ho, wo


def deform_conv2d_sample(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """Modulated deformable convolution, same semantics as ``torchvision.ops.deform_conv2d``.

    x:      (N, C, H, W) input.
    offset: (N, 2K, Ho, Wo) sampling offsets in input pixels, (dy, dx) per tap k (row-major
            over the kh x kw kernel); one offset group.
    mask:   (N, K, Ho, Wo) modulation (already through a sigmoid).
    weight: (Cout, C, kh, kw); bias (Cout,) or None.
    Returns (N, Cout, Ho, Wo). Samples outside the image read zeros (per bilinear corner).

    Tap k of output (i, j) reads the input at pixel (i*s - p + ky*d + dy, j*s - p + kx*d + dx).
    All K*Ho*Wo points are sampled in one ``grid_sample`` call (bilinear, zero padding,
    align_corners=False, so pixel p maps to the normalised (2p + 1)/size - 1), giving the
    (C*K, Ho*Wo) column matrix directly; one matrix product with the weight finishes.
    """
    n, c, h, w, cout, kh, kw, ho, wo = _checked_shapes(x, offset, mask, weight)
    k = kh * kw
    dev, dt = x.device, x.dtype
    ky = (torch.arange(kh, device=dev, dtype=dt) * dilation).repeat_interleave(kw)  # (K,)
    kx = (torch.arange(kw, device=dev, dtype=dt) * dilation).repeat(kh)
    oy = torch.arange(ho, device=dev, dtype=dt) * stride - padding
    ox = torch.arange(wo, device=dev, dtype=dt) * stride - padding
    off = offset.reshape(n, k, 2, ho, wo)
    gy = (off[:, :, 0] + (ky[:, None, None] + oy[:, None])) * (2.0 / h) + (1.0 / h - 1.0)  # (N, K, Ho, Wo)
    gx = (off[:, :, 1] + (kx[:, None, None] + ox)) * (2.0 / w) + (1.0 / w - 1.0)
    grid = torch.stack((gx, gy), dim=-1).view(n, k * ho, wo, 2)
    cols = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # (N, C, K*Ho, Wo)
    cols = cols.reshape(n, c, k, ho * wo)
    m = mask.reshape(n, 1, k, ho * wo)
    if torch.is_grad_enabled() and (cols.requires_grad or m.requires_grad):
        cols = cols * m
    else:
        cols.mul_(m)  # inference: no second column buffer
    cols = cols.reshape(n, c * k, ho * wo)
    out = torch.matmul(weight.reshape(cout, c * k), cols)  # (N, Cout, Ho*Wo)
    if bias is not None:
        out = out + bias.view(1, cout, 1)
    return out.view(n, cout, ho, wo)


@functools.lru_cache(maxsize=64)
def _sampling_grid(
    kh: int, kw: int, ho: int, wo: int, stride: int, padding: int, dilation: int, device: torch.device, dtype
) -> Tensor:
    """The undeformed sampling points (Ho, Wo, K, 2) as (y, x) input pixels, cached per shape
    (ordinary tensors, never inference tensors, so a cache filled under ``inference_mode``
    serves training too)."""
    with torch.inference_mode(False), torch.no_grad():
        ky = (torch.arange(kh, device=device, dtype=dtype) * dilation).repeat_interleave(kw)  # (K,)
        kx = (torch.arange(kw, device=device, dtype=dtype) * dilation).repeat(kh)
        oy = torch.arange(ho, device=device, dtype=dtype) * stride - padding
        ox = torch.arange(wo, device=device, dtype=dtype) * stride - padding
        return torch.stack(torch.broadcast_tensors(oy[:, None, None] + ky, ox[None, :, None] + kx), -1)


def deform_conv2d_gather(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """Modulated deformable convolution as one channels-last gather + GEMM.

    Same arguments, semantics and result as ``deform_conv2d_sample`` (x (N, C, H, W),
    offset (N, 2K, Ho, Wo) as (dy, dx) per tap in input pixels, mask (N, K, Ho, Wo), weight
    (Cout, C, kh, kw)); returns (N, Cout, Ho, Wo) in channels_last memory. Any memory format
    in; channels_last inputs avoid every layout copy but one (the zero border below).

    Tap k of output (i, j) samples (py, px) = (i*s - p + ky*d + dy, j*s - p + kx*d + dx);
    its corners (y0 + a, x0 + b), a, b in {0, 1}, y0 = floor(py), carry the weights
    |1 - a - (py - y0)| * |1 - b - (px - x0)| * mask, zero for corners outside the image.
    The input gets a zero border (1 row / column before, 2 after) and the points are clamped
    into [-1, H] x [-1, W]: corners then always fall inside the bordered image, corners
    outside the image read the border's zeros, and a point clamped to -1 or H (one that lay
    at or beyond a full pixel outside, where every corner reads zero) still reads only zeros.
    So no validity mask is computed: per point, one flat index and one 2 x 2 weight product.
    """
    n, c, h, w, cout, kh, kw, ho, wo = _checked_shapes(x, offset, mask, weight)
    k = kh * kw
    dev, dt = x.device, x.dtype
    hp, wp = h + 3, w + 3  # bordered image
    regular = _sampling_grid(kh, kw, ho, wo, stride, padding, dilation, dev, dt)
    pts = offset.permute(0, 2, 3, 1).unflatten(-1, (k, 2)) + regular  # (N, Ho, Wo, K, 2) as (y, x)
    lo = torch.tensor([-1.0, -1.0], device=dev, dtype=dt)
    hi = torch.tensor([float(h), float(w)], device=dev, dtype=dt)
    pts = torch.clamp(pts, lo, hi)
    low = pts.floor()
    frac = pts - low
    low = low.long()
    # flat row of corner (0, 0) in the (N*Hp*Wp, C) bordered input; the others are +1, +Wp, +Wp+1
    first = (torch.arange(n, device=dev) * (hp * wp) + (wp + 1)).view(n, 1, 1, 1)
    idx = low[..., 0] * wp + low[..., 1] + first  # (N, Ho, Wo, K)
    steps = torch.tensor([0, 1, wp, wp + 1], device=dev)
    idx = idx.unsqueeze(-1) + steps  # (N, Ho, Wo, K, 4)
    fy, fx = frac.unbind(-1)  # (N, Ho, Wo, K) each
    wy1 = fy * mask.permute(0, 2, 3, 1)  # the y weights with the mask folded in: corner row +1 ...
    wy0 = mask.permute(0, 2, 3, 1) - wy1  # ... and row +0
    wx0 = 1 - fx
    wgt = torch.stack((wy0 * wx0, wy0 * fx, wy1 * wx0, wy1 * fx), -1)  # (N, Ho, Wo, K, 4), as ``steps``
    rows = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 2, 1, 2)).reshape(n * hp * wp, c)
    idx, wgt = idx.reshape(-1, 4), wgt.reshape(-1, 4)
    wmat = weight.permute(0, 2, 3, 1).reshape(cout, k * c).t()  # (K*C, Cout), tap-major as the columns
    pixels = n * ho * wo
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (x, offset, mask, weight, bias) if t is not None)
    if grad or _chunk_pixels(k * c, pixels) >= pixels:
        # one fused kernel: row gather of the 4 corners and their weighted sum -> (N*Ho*Wo*K, C)
        cols = F.embedding_bag(idx, rows, per_sample_weights=wgt, mode="sum").view(pixels, k * c)
        out = torch.addmm(bias, cols, wmat) if bias is not None else cols @ wmat
    else:  # inference: column blocks small enough to stay in cache between the gather and the GEMM

        def gathered(a: int, b: int) -> Tensor:
            cols = F.embedding_bag(idx[a * k : b * k], rows, per_sample_weights=wgt[a * k : b * k], mode="sum")
            return cols.view(b - a, k * c)

        out = _blocked_product(gathered, pixels, k * c, wmat, bias, x)
    return out.view(n, ho, wo, cout).permute(0, 3, 1, 2)


def _chunk_pixels(columns: int, pixels: int) -> int:
    """Output pixels per column block at inference (about ``GATHER_CHUNK_FLOATS`` floats)."""
    return min(pixels, max(1, GATHER_CHUNK_FLOATS // columns)) if GATHER_CHUNK_FLOATS > 0 else pixels


def _blocked_product(
    columns_of: Callable[[int, int], Tensor], pixels: int, columns: int, wmat: Tensor, bias: Tensor | None, x: Tensor
) -> Tensor:
    """(pixels, Cout) = columns @ wmat (+ bias), one block of ``_chunk_pixels`` rows at a time:
    ``columns_of(a, b)`` gives rows a..b of the column matrix, used before the next block is made."""
    chunk = _chunk_pixels(columns, pixels)
    out = x.new_empty(pixels, wmat.shape[1])
    for a in range(0, pixels, chunk):
        b = min(pixels, a + chunk)
        cols = columns_of(a, b)
        if bias is not None:
            torch.addmm(bias, cols, wmat, out=out[a:b])
        else:
            torch.mm(cols, wmat, out=out[a:b])
    return out


def deform_conv2d_columns(
    x: Tensor,
    offset_mask: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> Tensor:
    """The ``gather`` path for prediction (CPU float32, no autograd): the column blocks built by
    one numba pass (``dcn_kernel.deform_columns``) straight from ``offset_mask``, the raw
    (N, 3K, Ho, Wo) output of ``conv_offset_mask`` (offsets, then mask logits), each block then
    multiplied out. Returns (N, Cout, Ho, Wo) in channels_last memory."""
    n, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    k = kh * kw
    ho, wo = offset_mask.shape[-2:]
    if cin != c or offset_mask.shape[:2] != (n, 3 * k):
        raise ValueError(
            f"deform_conv2d: input {tuple(x.shape)}, weight {tuple(weight.shape)} and offsets+mask "
            f"{tuple(offset_mask.shape)} disagree ({3 * k} offset and mask channels expected)"
        )
    xs = x.permute(0, 2, 3, 1).contiguous().numpy()
    oms = offset_mask.permute(0, 2, 3, 1).contiguous().numpy()
    pixels = n * ho * wo
    cols = x.new_empty(_chunk_pixels(k * c, pixels), k * c)  # one buffer, refilled for every block
    wmat = weight.permute(0, 2, 3, 1).reshape(cout, k * c).t()  # (K*C, Cout), tap-major as the columns
    use_torch_threads()

    def built(a: int, b: int) -> Tensor:
        deform_columns(xs, oms, a, b, ho, wo, kh, kw, stride, padding, dilation, cols.numpy())
        return cols[: b - a]

    out = _blocked_product(built, pixels, k * c, wmat, bias, x)
    return out.view(n, ho, wo, cout).permute(0, 3, 1, 2)


class ModulatedDeformConv(nn.Module):
    """DCNv2 layer (state-dict compatible with the original ``DCN``); see module docstring.

    (N, in_channels, H, W) -> (N, out_channels, Ho, Wo), Ho = (H + 2p - d(k-1) - 1) // s + 1.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"deformable conv impl {impl!r}; choose from {IMPLS}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.impl = impl
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        k = kernel_size * kernel_size
        self.conv_offset_mask = nn.Conv2d(in_channels, 3 * k, kernel_size, stride, padding, dilation, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As DCNv2: uniform(+-1/sqrt(fan_in)) weights, zero bias; zero offsets/mask logits at start."""
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size * self.kernel_size)
        nn.init.uniform_(self.weight, -stdv, stdv)
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def _wants_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))

    def offsets_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 2K, Ho, Wo) offsets as (dy, dx) per tap and (N, K, Ho, Wo) sigmoid mask."""
        om = self.conv_offset_mask(x)
        k = self.kernel_size * self.kernel_size
        return om[:, : 2 * k], torch.sigmoid(om[:, 2 * k :])

    def forward(self, x: Tensor) -> Tensor:
        impl = self.impl
        if impl == "auto":
            impl = "gather" if x.device.type == "cpu" else "torchvision"
        if impl == "gather" and not self._wants_grad(x) and numba_path_ok(x):
            om = self.conv_offset_mask(x)
            return deform_conv2d_columns(x, om, self.weight, self.bias, self.stride, self.padding, self.dilation)
        offset, mask = self.offsets_and_mask(x)
        if impl == "gather":
            return deform_conv2d_gather(
                x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation
            )
        if impl == "grid_sample":
            return deform_conv2d_sample(
                x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation
            )
        return deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, impl={self.impl!r}"
        )


def set_deform_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch every ``ModulatedDeformConv`` in ``model`` to ``impl`` (one of ``IMPLS``)."""
    if impl not in IMPLS:
        raise ValueError(f"deformable conv impl {impl!r}; choose from {IMPLS}")
    for m in model.modules():
        if isinstance(m, ModulatedDeformConv):
            m.impl = impl
    return model
