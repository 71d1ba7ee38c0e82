"""Winograd F(4x4, 3x3) and F(6x6, 3x3): the numba tile kernels against plain-numpy twins
(Kronecker products of the transform matrices), and the whole convolution against float64 conv2d."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from centerpoint_suite.models import winograd
from centerpoint_suite.models import winograd_kernels as kernels
from centerpoint_suite.models.optimize import FusedConv, FusedConvTranspose

#: per tile side m of the outputs: B^T, A^T and the numba kernels
TRANSFORMS = {
    4: (np.array(winograd._BT, np.float64), np.array(winograd._AT, np.float64)),
    6: (np.array(winograd._BT6, np.float64), np.array(winograd._AT6, np.float64)),
}
KERNELS = {4: (kernels.input_tiles, kernels.output_tiles), 6: (kernels.input_tiles6, kernels.output_tiles6)}
BT, AT = TRANSFORMS[4]


def _padded(x: np.ndarray, r1: int, tw: int, m: int = 4) -> np.ndarray:
    """``x`` (H, W, C) with the convolution's zero border: rows up to tile row r1, tw tile columns."""
    h, w, c = x.shape
    padded = np.zeros((m * r1 + 2, m * tw + 2, c))
    rows = min(h, m * r1 + 1)
    padded[1 : 1 + rows, 1 : 1 + w] = x[:rows]
    return padded


def input_tiles_twin(x: np.ndarray, r0: int, r1: int, tw: int, m: int = 4) -> np.ndarray:
    """(H, W, C) -> ((m + 2)^2, T, C): zero-padded (m + 2)-side tiles at stride m from (-1, -1), B^T d B each."""
    c, n = x.shape[2], m + 2
    padded = _padded(x, r1, tw, m)
    tiles = [
        padded[m * ty : m * ty + n, m * tx : m * tx + n].reshape(n * n, c) for ty in range(r0, r1) for tx in range(tw)
    ]
    bt = TRANSFORMS[m][0]
    return np.einsum("pq,tqc->ptc", np.kron(bt, bt), np.stack(tiles))


def output_tiles_twin(mm, r0, tw, bias, residual, relu, h, w, m: int = 4):
    """((m + 2)^2, T, C) -> the m x m blocks A^T mm A placed at tile rows r0.. of an (h, w, C) image (NaN elsewhere)."""
    c = mm.shape[-1]
    at = TRANSFORMS[m][1]
    blocks = np.einsum("pq,qtc->tpc", np.kron(at, at), mm.astype(np.float64)).reshape(-1, m, m, c)
    out = np.full((h, w, c), np.nan)
    for t, block in enumerate(blocks):
        y0, x0 = m * (r0 + t // tw), m * (t % tw)
        part = block[: h - y0, : w - x0]
        out[y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = part
    if bias is not None:
        out += bias
    if residual is not None:
        out += residual
    return np.maximum(out, 0) if relu else out


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 19),
    w=st.integers(1, 19),
    c=st.integers(1, 9),
    block=st.integers(1, 3),
    m=st.sampled_from([4, 6]),
    seed=st.integers(0, 999),
)
def test_input_tiles_match_twin(h, w, c, block, m, seed):
    x = np.random.default_rng(seed).normal(size=(h, w, c)).astype(np.float32)
    th, tw = math.ceil(h / m), math.ceil(w / m)
    for r0 in range(0, th, block):
        r1 = min(th, r0 + block)
        v = np.full(((m + 2) ** 2, (r1 - r0) * tw, c), np.nan, np.float32)
        KERNELS[m][0](x, r0, r1, tw, v)
        np.testing.assert_allclose(v, input_tiles_twin(x, r0, r1, tw, m), rtol=1e-5, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 19),
    w=st.integers(1, 19),
    c=st.integers(1, 9),
    with_bias=st.booleans(),
    with_residual=st.booleans(),
    relu=st.booleans(),
    side=st.sampled_from([4, 6]),
    seed=st.integers(0, 999),
)
def test_output_tiles_match_twin(h, w, c, with_bias, with_residual, relu, side, seed):
    rng = np.random.default_rng(seed)
    th, tw = math.ceil(h / side), math.ceil(w / side)
    m = rng.normal(size=((side + 2) ** 2, th * tw, c)).astype(np.float32)
    bias = rng.normal(size=c).astype(np.float32) if with_bias else None
    residual = rng.normal(size=(h, w, c)).astype(np.float32) if with_residual else None
    out = np.full((h, w, c), np.nan, np.float32)
    r1 = max(1, th // 2)  # two calls, as the convolution's blocks do
    for r0, r1_ in ((0, r1), (r1, th)):
        if r0 < r1_:
            KERNELS[side][1](
                np.ascontiguousarray(m[:, r0 * tw : r1_ * tw]),  # contiguous, as the convolution passes it
                r0,
                tw,
                np.zeros(0, np.float32) if bias is None else bias,
                np.zeros((0, 0, 0), np.float32) if residual is None else residual,
                relu,
                out,
            )
    want = output_tiles_twin(m, 0, tw, bias, residual, relu, h, w, side)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 12),
    cout=st.integers(1, 12),
    h=st.integers(1, 23),
    w=st.integers(1, 23),
    relu=st.booleans(),
    with_bias=st.booleans(),
    with_other=st.booleans(),
    channels_last=st.booleans(),
    side=st.sampled_from([4, 6]),
    seed=st.integers(0, 999),
)
def test_conv3x3_matches_float64_conv(n, c, cout, h, w, relu, with_bias, with_other, channels_last, side, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, c, 3, 3, generator=g) / math.sqrt(9 * c)
    bias = torch.randn(cout, generator=g) if with_bias else None
    other = torch.randn(n, cout, h, w, generator=g) if with_other else None
    with torch.inference_mode():
        got = winograd.conv3x3(x, winograd.transform_weight(weight, side), bias, relu, other)
        ref = F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), padding=1)
        if other is not None:
            ref = ref + other.double()
        if relu:
            ref = ref.relu()
    assert got.shape == ref.shape and got.is_contiguous(memory_format=torch.channels_last)
    scale = float(ref.abs().max().clamp_min(1e-6))
    assert float((got.double() - ref).abs().max()) <= 5e-5 * scale  # float32: ~1e-5 measured (F(6x6) ~2x F(4x4))


def test_eligibility_rules():
    w = torch.zeros(64, 64, 3, 3)
    x = torch.zeros(1, 64, 16, 16)
    assert winograd.eligible(w, (1, 1), (1, 1), (1, 1), 1, x)
    assert not winograd.eligible(w, (2, 2), (1, 1), (1, 1), 1, x)  # stride 2
    assert not winograd.eligible(w, (1, 1), (2, 2), (2, 2), 1, x)  # dilated
    assert not winograd.eligible(torch.zeros(32, 64, 3, 3), (1, 1), (1, 1), (1, 1), 1, x)  # narrow
    assert not winograd.eligible(w, (1, 1), (1, 1), (1, 1), 1, torch.zeros(1, 64, 8, 16))  # small map
    assert not winograd.eligible(w, (1, 1), (1, 1), (1, 1), 1, x.double())
    with pytest.raises(ValueError, match="3x3"):
        winograd.transform_weight(torch.zeros(4, 4, 5, 5))
    with pytest.raises(ValueError, match="4 or 6"):
        winograd.transform_weight(w, 5)


def test_large_maps_take_six_by_six_tiles():
    """F(6x6, 3x3) where its points cover the map with at most 0.9 of F(4x4, 3x3)'s: 64x64 and
    128x128 (0.84), not 32x32 (1.0: its 6x6 tiles overhang) nor 16x16."""
    assert [winograd.tile_side(s, s) for s in (16, 32, 64, 128)] == [4, 4, 6, 6]
    assert winograd.tile_side(128, 32) == 4 and winograd.tile_side(96, 72) == 6
    torch.manual_seed(0)
    fused = FusedConv(nn.Conv2d(64, 64, 3, padding=1), None, True)
    for side, tiles in ((64, 6), (32, 4)):
        x = torch.randn(1, 64, side, side).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            got = fused(x)
        assert fused._winograd[tiles].shape[0] == (tiles + 2) ** 2  # transformed once per tile side
        with torch.no_grad():
            ref = F.relu(F.conv2d(x.double(), fused.weight.double(), fused.bias.double(), padding=1))
        assert float((got.double() - ref).abs().max()) <= 5e-5 * float(ref.abs().max())
    assert sorted(fused._winograd) == [4, 6]


def test_narrow_convolutions_take_larger_blocks_and_the_same_results(monkeypatch):
    b = winograd.BLOCK_TILES
    assert [winograd.block_tiles(c, c) for c in (32, 64, 128, 256, 512)] == [4 * b, 4 * b, 2 * b, b, b]
    assert winograd.block_tiles(256, 64) == winograd.block_tiles(64, 256) == 4 * b  # the narrower side counts
    torch.manual_seed(0)
    x = torch.randn(2, 64, 37, 45).contiguous(memory_format=torch.channels_last)  # 10 x 12 tiles per image
    u = winograd.transform_weight(torch.randn(64, 64, 3, 3) / 24)
    outs = []
    for block in (8, 48, 120, 1024):  # several blocks per image, a partial last block, one image, two per block
        monkeypatch.setattr(winograd, "block_tiles", lambda cin, cout, block=block: block)
        outs.append(winograd.conv3x3(x, u, None, relu=False))
    for o in outs[1:]:  # the same sums of products; only the matrix library's blocking may differ
        torch.testing.assert_close(o, outs[0], rtol=0, atol=1e-6 * float(outs[0].abs().max()))


def test_fused_conv_winograd_and_direct_paths_agree_and_copy():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3, padding=1)
    bn = nn.BatchNorm2d(64).eval()
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 64, 20, 18).contiguous(memory_format=torch.channels_last)
    other = torch.randn(2, 64, 20, 18).contiguous(memory_format=torch.channels_last)
    fast, direct = FusedConv(conv, bn, True), FusedConv(conv, bn, True, winograd_ok=False)
    with torch.inference_mode():
        a, b = fast(x, other), direct(x, other)
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        twin = copy.deepcopy(direct)  # packed oneDNN weights are not copied: the twin packs its own
        torch.testing.assert_close(twin(x, other), b)
        for size in range(5, 12):  # one packed copy per input shape, the newest ones kept
            direct(torch.randn(1, 64, size, size))
        assert len(direct._packed.cache) == direct._packed.SHAPES
    ref = F.relu(bn(conv(x)) + other)
    torch.testing.assert_close(b, ref.detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("relu", [True, False])
def test_fused_transposed_conv_matches_torch(relu):
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, output_padding=0)
    bn = nn.BatchNorm2d(8).eval()
    bn.running_mean.uniform_(-1, 1)
    fused = FusedConvTranspose(deconv, bn, relu)
    x = torch.randn(2, 16, 7, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = bn(deconv(x))
        ref = F.relu(ref) if relu else ref
    with torch.inference_mode():
        got = fused(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    xg = x.clone().requires_grad_()  # with autograd: torch's call
    torch.testing.assert_close(fused(xg).detach(), ref, rtol=1e-5, atol=1e-5)


# ---- transposed 4x4 stride-2 convolutions: four phases of F(4x4, 2x2) -------------------------
BT2 = winograd._BT2.astype(np.float64)
AT2 = winograd._AT2.astype(np.float64)


def phase_input_twin(x: np.ndarray, r0: int, r1: int, tw: int) -> np.ndarray:
    """(H, W, C) -> (100, T, C): per phase (py, px), the 5x5 tile at (4 ty - 1 + py, 4 tx - 1 + px), B^T d B."""
    c = x.shape[2]
    padded = _padded(x, r1, tw)
    out = []
    for py, px in winograd.PHASES:
        tiles = [
            padded[4 * ty + py : 4 * ty + py + 5, 4 * tx + px : 4 * tx + px + 5].reshape(25, c)
            for ty in range(r0, r1)
            for tx in range(tw)
        ]
        out.append(np.einsum("pq,tqc->ptc", np.kron(BT2, BT2), np.stack(tiles)))
    return np.concatenate(out)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 7), block=st.integers(1, 3), seed=st.integers(0, 999)
)
def test_phase_input_tiles_match_twin(h, w, c, block, seed):
    x = np.random.default_rng(seed).normal(size=(h, w, c)).astype(np.float32)
    th, tw = math.ceil(h / 4), math.ceil(w / 4)
    for r0 in range(0, th, block):
        r1 = min(th, r0 + block)
        v = np.full((100, (r1 - r0) * tw, c), np.nan, np.float32)
        kernels.phase_input_tiles(x, r0, r1, tw, v)
        np.testing.assert_allclose(v, phase_input_twin(x, r0, r1, tw), rtol=1e-5, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 7), relu=st.booleans(), seed=st.integers(0, 999))
def test_phase_output_tiles_match_twin(h, w, c, relu, seed):
    rng = np.random.default_rng(seed)
    th, tw = math.ceil(h / 4), math.ceil(w / 4)
    m = rng.normal(size=(100, th * tw, c)).astype(np.float32)
    bias = rng.normal(size=c).astype(np.float32)
    out = np.full((2 * h, 2 * w, c), np.nan, np.float32)
    kernels.phase_output_tiles(m, 0, tw, bias, relu, out)
    want = np.full((2 * h, 2 * w, c), np.nan)
    blocks = np.einsum("pq,fqtc->ftpc", np.kron(AT2, AT2), m.reshape(4, 25, -1, c).astype(np.float64))
    for f, (py, px) in enumerate(winograd.PHASES):
        for t in range(th * tw):
            block = blocks[f, t].reshape(4, 4, c)
            for p in range(4):
                for q in range(4):
                    gy, gx = 4 * (t // tw) + p, 4 * (t % tw) + q
                    if gy < h and gx < w:
                        want[2 * gy + py, 2 * gx + px] = block[p, q] + bias
    want = np.maximum(want, 0) if relu else want
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 9),
    cout=st.integers(1, 9),
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    relu=st.booleans(),
    with_bias=st.booleans(),
    seed=st.integers(0, 999),
)
def test_conv_transpose4x4s2_matches_float64(n, c, cout, h, w, relu, with_bias, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c, cout, 4, 4, generator=g) / math.sqrt(4 * c)
    bias = torch.randn(cout, generator=g) if with_bias else None
    with torch.inference_mode():
        got = winograd.conv_transpose4x4s2(x, winograd.transform_transposed_weight(weight), bias, relu)
        ref = F.conv_transpose2d(
            x.double(), weight.double(), None if bias is None else bias.double(), stride=2, padding=1
        )
        ref = ref.relu() if relu else ref
    assert got.shape == ref.shape and got.is_contiguous(memory_format=torch.channels_last)
    scale = float(ref.abs().max().clamp_min(1e-6))
    assert float((got.double() - ref).abs().max()) <= 5e-5 * scale


def test_fused_transposed_conv_takes_the_winograd_path_on_wide_maps():
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(256, 256, 4, stride=2, padding=1)
    fused = FusedConvTranspose(deconv, None, True)
    x = torch.randn(1, 256, 32, 33).contiguous(memory_format=torch.channels_last)
    assert winograd.transposed_eligible(fused.weight, fused.stride, fused.padding, [0, 0], [1, 1], 1, x)
    with torch.inference_mode():
        got = fused(x)
    assert fused._winograd is not None  # it did take the Winograd path
    with torch.no_grad():
        ref = F.relu(deconv(x))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize(("cin", "cout", "side"), [(512, 256, 16), (128, 128, 64), (64, 64, 128)])
def test_small_transposed_convs_stay_with_onednn(cin, cout, side):
    """Below 256 channels or 32x32 inputs the phase-wise Winograd path measured slower."""
    deconv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
    fused = FusedConvTranspose(deconv, None, True)
    x = torch.randn(1, cin, side, side).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = fused(x)
    assert fused._winograd is None
    with torch.no_grad():
        torch.testing.assert_close(got, F.relu(deconv(x)), rtol=1e-4, atol=1e-4)


def test_numba_kernels_leave_the_processs_torch_threads_alone():
    # numba starts its thread pool once per process, so a fresh interpreter: torch planned with
    # 1 intra-op thread keeps 1 through a Winograd convolution and the focal-loss kernel, and
    # numba follows it (its pool's start had set the OpenMP count torch reads to the cores)
    import subprocess
    import sys

    code = """
import numba, torch
torch.set_num_threads(1)
from centerpoint_suite.losses import focal_loss
from centerpoint_suite.models import winograd
x = torch.randn(1, 64, 16, 16, requires_grad=True)
y = winograd.conv3x3(x.detach(), winograd.transform_weight(torch.randn(64, 64, 3, 3)), None, False)
focal_loss(x, torch.rand(1, 64, 16, 16)).backward()
print(torch.get_num_threads(), numba.get_num_threads(), y.shape[1])
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["1", "1", "64"]
