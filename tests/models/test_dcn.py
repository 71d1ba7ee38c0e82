"""Deformable convolution: the pure-torch kernel against torchvision's op (the reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from centerpoint_suite.models import dcn
from centerpoint_suite.models.dcn import (
    ModulatedDeformConv,
    deform_conv2d_gather,
    deform_conv2d_sample,
    set_deform_impl,
)


def _case(n, c, h, w, cout, stride, dilation, spread, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(cout, c, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(cout, generator=g, dtype=torch.float64)
    pad = dilation
    ho = (h + 2 * pad - 2 * dilation - 1) // stride + 1
    wo = (w + 2 * pad - 2 * dilation - 1) // stride + 1
    offset = spread * torch.randn(n, 18, ho, wo, generator=g, dtype=torch.float64)
    mask = torch.rand(n, 9, ho, wo, generator=g, dtype=torch.float64)
    return x, offset, mask, weight, bias, stride, pad, dilation


@pytest.mark.parametrize(
    "shape",
    [
        (2, 5, 7, 9, 4, 1, 1, 2.0),
        (1, 8, 10, 6, 3, 2, 1, 3.0),
        (1, 3, 6, 6, 2, 1, 2, 1.0),
        (1, 4, 5, 5, 3, 1, 1, 8.0),  # most samples fall (partly) outside the image
    ],
)
def test_grid_sample_matches_torchvision(shape):
    x, offset, mask, weight, bias, s, p, d = _case(*shape)
    ref = deform_conv2d(x, offset, weight, bias, stride=s, padding=p, dilation=d, mask=mask)
    ours = deform_conv2d_sample(x, offset, mask, weight, bias, s, p, d)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_integer_offsets_shift_the_image():
    # Offsets of exactly (+1, +2) on every tap: tap (ky, kx) of output (i, j) reads pixel
    # (i + ky, j + kx + 1), i.e. a valid conv over the image padded with zeros below / right.
    x, _, _, weight, bias, *_ = _case(1, 3, 8, 9, 2, 1, 1, 0.0)
    offset = torch.zeros(1, 18, 8, 9, dtype=torch.float64)
    offset[:, 0::2] = 1.0
    offset[:, 1::2] = 2.0
    mask = torch.ones(1, 9, 8, 9, dtype=torch.float64)
    expected = F.conv2d(F.pad(x, (0, 3, 0, 2))[:, :, :, 1:], weight, bias)
    torch.testing.assert_close(deform_conv2d_sample(x, offset, mask, weight, bias), expected)


def test_gradients_match_torchvision():
    x, offset, mask, weight, bias, s, p, d = _case(1, 4, 6, 7, 3, 1, 1, 1.5, seed=3)
    tensors = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    refs = [t.clone().requires_grad_(True) for t in (x, offset, mask, weight, bias)]
    deform_conv2d_sample(tensors[0], tensors[1], tensors[2], tensors[3], tensors[4], s, p, d).square().sum().backward()
    deform_conv2d(
        refs[0], refs[1], refs[3], refs[4], stride=s, padding=p, dilation=d, mask=refs[2]
    ).square().sum().backward()
    for name, a, b in zip(("x", "offset", "mask", "weight", "bias"), tensors, refs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-7, atol=1e-7, msg=f"grad of {name}")


def test_module_fresh_init_is_half_masked_conv():
    # conv_offset_mask starts at zero: offsets 0, mask sigmoid(0) = 0.5.
    m = ModulatedDeformConv(6, 5)
    x = torch.randn(2, 6, 9, 11)
    expected = F.conv2d(x, m.weight * 0.5, m.bias, padding=1)
    for impl in ("torchvision", "grid_sample"):
        set_deform_impl(m, impl)
        torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)


def test_module_impls_agree_float32():
    torch.manual_seed(0)
    m = ModulatedDeformConv(16, 8)
    torch.nn.init.normal_(m.conv_offset_mask.weight, std=0.3)
    x = torch.randn(1, 16, 20, 24)
    with torch.no_grad():
        ref = set_deform_impl(m, "torchvision")(x)
        ours = set_deform_impl(m, "grid_sample")(x)
    assert (ours - ref).norm() / ref.norm() < 1e-5
    with torch.no_grad():  # channels_last input gives the same result
        cl = m(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ours, rtol=1e-5, atol=1e-5)
    assert set(m.state_dict()) == {"weight", "bias", "conv_offset_mask.weight", "conv_offset_mask.bias"}


@pytest.mark.parametrize("chunk_floats", [0, 2 * 27, 5 * 27])  # one block; blocks of 2 and 5 pixels
def test_gather_dcn_points_on_and_beyond_the_border(monkeypatch, chunk_floats):
    # Points exactly on -1, 0, H-1, H (and W), just inside / outside, and far away: the
    # zero border and the clamp give torchvision's zeros and partial corners there.
    monkeypatch.setattr(dcn, "GATHER_CHUNK_FLOATS", chunk_floats)
    g = torch.Generator().manual_seed(0)
    n, c, h, w = 2, 3, 5, 6
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(2, c, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(2, generator=g, dtype=torch.float64)
    values = torch.tensor([-40.0, -7.0, -2.0, -1.0, -0.999, -0.5, 0.0, 0.25, 1.0, 3.5, 4.0, 4.5, 5.0, 6.0, 30.0])
    offset = values[torch.randint(len(values), (n, 18, h, w), generator=g)].double()
    mask = torch.rand(n, 9, h, w, generator=g, dtype=torch.float64)
    ref = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    ours = deform_conv2d_gather(x, offset, mask, weight, bias)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
