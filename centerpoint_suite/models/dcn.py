"""Modulated deformable 3x3 convolution (DCNv2) without a compiled extension.

``ModulatedDeformConv`` has the parameters and state-dict keys of the original CenterNet
``DCN`` module (``weight``, ``bias``, ``conv_offset_mask.weight/bias``), so original
checkpoints load unchanged. The offsets and mask are predicted from the input by
``conv_offset_mask`` (3 * K channels, K = kh * kw kernel taps):

- offsets = the first 2K channels, i.e. ``cat(o1, o2)`` of the 3-way chunk, laid out as
  (dy, dx) pairs per kernel tap, in input pixels (the order ``torchvision.ops.deform_conv2d``
  documents);
- mask = sigmoid of the last K channels.

Two interchangeable kernels compute the convolution itself:

- ``"torchvision"``: ``torchvision.ops.deform_conv2d`` (the reference);
- ``"grid_sample"``: pure torch: all taps sampled bilinearly by one ``F.grid_sample`` call,
  masked, then one matrix product; about 2x faster on CPU (benchmarks/bench_networks.py),
  equal to the reference within float32 rounding (tests check 1e-5, values and gradients).

The default (``"auto"``) is ``"grid_sample"`` on CPU and ``"torchvision"`` elsewhere;
override with ``set_deform_impl(model, name)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

IMPLS = ("auto", "torchvision", "grid_sample")


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

    def offsets_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 2K, Ho, Wo) offsets as (dy, dx) per tap and (N, K, Ho, Wo) sigmoid mask."""
        om = self.conv_offset_mask(x)
        k = self.kernel_size * self.kernel_size
        return om[:, : 2 * k], torch.sigmoid(om[:, 2 * k :])

    def forward(self, x: Tensor) -> Tensor:
        offset, mask = self.offsets_and_mask(x)
        impl = self.impl
        if impl == "auto":
            impl = "grid_sample" if x.device.type == "cpu" else "torchvision"
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
    """Switch every ``ModulatedDeformConv`` in ``model`` to ``impl`` ("auto", "torchvision", "grid_sample")."""
    if impl not in IMPLS:
        raise ValueError(f"deformable conv impl {impl!r}; choose from {IMPLS}")
    for m in model.modules():
        if isinstance(m, ModulatedDeformConv):
            m.impl = impl
    return model
