"""The numba column builder of the deformable convolution against its twin, the torch gather path."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite.models.dcn import ModulatedDeformConv, deform_conv2d_columns, deform_conv2d_gather


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 6),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    cout=st.integers(1, 4),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    spread=st.floats(0.0, 6.0),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_numba_columns_match_the_gather_path(n, c, h, w, cout, stride, dilation, spread, with_bias, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    ho, wo = (h + 2 - 2 * dilation - 1) // stride + 1, (w + 2 - 2 * dilation - 1) // stride + 1
    if ho < 1 or wo < 1:
        return
    # offsets out to +-spread pixels (many points off the image, some exactly on integers)
    om = torch.randn(n, 27, ho, wo, generator=g) * spread
    om[:, :18] = torch.where(torch.rand(n, 18, ho, wo, generator=g) < 0.2, om[:, :18].round(), om[:, :18])
    weight = torch.randn(cout, c, 3, 3, generator=g)
    bias = torch.randn(cout, generator=g) if with_bias else None
    with torch.inference_mode():
        got = deform_conv2d_columns(x, om, weight, bias, stride, 1, dilation)
        ref = deform_conv2d_gather(x, om[:, :18], torch.sigmoid(om[:, 18:]), weight, bias, stride, 1, dilation)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max().clamp_min(1)))


def test_module_takes_the_numba_path_only_without_autograd():
    torch.manual_seed(0)
    m = ModulatedDeformConv(8, 4)
    torch.nn.init.normal_(m.conv_offset_mask.weight, std=0.5)
    x = torch.randn(1, 8, 12, 10)
    with torch.no_grad():
        fast = m(x)  # numba columns
    slow = m(x)  # autograd on: the torch gather path, differentiable
    assert slow.requires_grad and not fast.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-5, atol=1e-5)


def test_traced_module_records_the_torch_path():
    # TorchScript tracing must not go through numba (it would freeze the first input's result)
    torch.manual_seed(0)
    m = ModulatedDeformConv(8, 4).eval()
    torch.nn.init.normal_(m.conv_offset_mask.weight, std=0.5)
    with torch.no_grad():
        traced = torch.jit.trace(m, torch.randn(1, 8, 12, 10))
        x = torch.randn(1, 8, 12, 10)
        torch.testing.assert_close(traced(x), m(x), rtol=1e-5, atol=1e-5)
