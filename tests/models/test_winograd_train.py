"""Winograd F(4x4, 3x3) in training: the gradient tile kernel against a plain-numpy twin, the
three passes (forward, input and weight gradients) against float64 autograd, and the network
switch (``enable``, the stacked heads, the inference copy, traces)."""

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

from centerpoint_suite.models import build_network, winograd, winograd_train
from centerpoint_suite.models import winograd_kernels as kernels
from centerpoint_suite.models.optimize import prepare_for_inference

AT = np.array(winograd._AT, np.float64)
AT2 = np.array(winograd._AT2, np.float64)
BT2 = np.array(winograd._BT2, np.float64)


def grad_tiles_twin(g: np.ndarray, r0: int, r1: int, tw: int) -> np.ndarray:
    """(H, W, C) -> (36, T, C): zero-padded 4x4 blocks at stride 4, A g A^T each."""
    h, w, c = g.shape
    padded = np.zeros((4 * r1, 4 * tw, c))
    padded[:h, :w] = g[: 4 * r1]
    blocks = [
        padded[4 * ty : 4 * ty + 4, 4 * tx : 4 * tx + 4].reshape(16, c) for ty in range(r0, r1) for tx in range(tw)
    ]
    return np.einsum("pq,tqc->ptc", np.kron(AT.T, AT.T), np.stack(blocks))


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 19), w=st.integers(1, 19), c=st.integers(1, 9), block=st.integers(1, 3), seed=st.integers(0, 999)
)
def test_grad_tiles_match_twin(h, w, c, block, seed):
    g = np.random.default_rng(seed).normal(size=(h, w, c)).astype(np.float32)
    th, tw = math.ceil(h / 4), math.ceil(w / 4)
    for r0 in range(0, th, block):
        r1 = min(th, r0 + block)
        dm = np.full((36, (r1 - r0) * tw, c), np.nan, np.float32)
        kernels.grad_tiles(g, r0, r1, tw, dm)
        np.testing.assert_allclose(dm, grad_tiles_twin(g, r0, r1, tw), rtol=1e-5, atol=1e-4)


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).abs().max() / ref.abs().max())


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 2),
    cin=st.integers(1, 12),
    cout=st.integers(1, 12),
    h=st.integers(1, 21),
    w=st.integers(1, 21),
    with_bias=st.booleans(),
    seed=st.integers(0, 999),
)
def test_three_passes_match_float64_autograd(n, cin, cout, h, w, with_bias, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, 3, 3, generator=gen) * 0.3
    bias = torch.randn(cout, generator=gen) if with_bias else None
    grad = torch.randn(n, cout, h, w, generator=gen)
    leaves = [t.requires_grad_() for t in (x, weight, bias) if t is not None]
    got = torch.autograd.grad(winograd_train.conv3x3(x, weight, bias), leaves, grad)
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    ref_bias = ref_leaves[2] if with_bias else None
    ref_out = F.conv2d(ref_leaves[0], ref_leaves[1], ref_bias, padding=1)
    want = torch.autograd.grad(ref_out, ref_leaves, grad.double())
    assert _rel(winograd_train.conv3x3(x, weight, bias).detach(), ref_out.detach()) < 2e-5
    for name, a, b in zip(("input", "weight", "bias"), got, want):
        assert _rel(a, b) < 3e-5, name


@pytest.mark.parametrize("m", [4, 6])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_weight_transforms_match_the_float64_transform(fmt, m):
    weight = torch.randn(24, 16, 3, 3).contiguous(memory_format=fmt)
    u = winograd.transform_weight(weight, m)
    assert torch.allclose(winograd_train.transform_weight_f32(weight, m=m), u, atol=1e-5)
    flipped = weight.flip(-1, -2).transpose(0, 1).contiguous()
    assert torch.allclose(
        winograd_train.transform_weight_f32(weight, flip=True, m=m), winograd.transform_weight(flipped, m), atol=1e-5
    )


@pytest.mark.parametrize("blocks", [False, True])
def test_weight_gradient_comes_out_in_the_weights_memory_format(monkeypatch, blocks):
    """The weight gradient is returned in the weight's memory format (autograd would copy it
    otherwise), equal in both, and right in one product or accumulated over several blocks."""
    if blocks:  # several images and several row blocks per image: the first product written, the rest added
        monkeypatch.setattr(winograd, "BLOCK_TILES", 8)
        monkeypatch.setattr(winograd_train, "GRAD_BLOCK_TILES", 8)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 18, 13, generator=gen)
    grad = torch.randn(2, 7, 18, 13, generator=gen)
    weight = torch.randn(7, 5, 3, 3, generator=gen)
    want = torch.nn.grad.conv2d_weight(x.double(), weight.shape, grad.double(), padding=1)
    plain = winograd_train.weight_grad(x, grad)
    cl = winograd_train.weight_grad(x, grad, like=weight.contiguous(memory_format=torch.channels_last))
    assert plain.is_contiguous() and cl.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, cl)
    assert _rel(plain, want) < 3e-5


def _res18(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    heads = {"heatmap": 3, "size": 2, "offset": 2}
    return build_network("res18", heads, heatmap_heads=("heatmap",)).train()


def test_enable_keeps_parameters_and_counts_the_layers():
    net = _res18()
    keys = list(net.state_dict())
    eligible = [
        m
        for m in net.modules()
        if type(m) is nn.Conv2d
        and m.kernel_size == (3, 3)
        and m.stride == (1, 1)
        and min(m.in_channels, m.out_channels) >= 64
    ]
    transposed = [m for m in net.modules() if type(m) is nn.ConvTranspose2d]
    assert winograd_train.enable(net) == len(eligible) + len(transposed) and len(transposed) == 3
    assert all(type(m) is winograd_train.WinogradConv2d for m in eligible)
    assert all(type(m) is winograd_train.WinogradConvTranspose2d for m in transposed)
    assert list(net.state_dict()) == keys
    assert winograd_train.enable(net) == 0  # already switched
    small = next(m for m in eligible if m.in_channels == 512)
    side = winograd_train.MIN_SIDE_TRAIN
    assert winograd_train.takes_winograd(small, torch.randn(1, 512, side, side))
    assert not winograd_train.takes_winograd(small, torch.randn(1, 512, side - 1, side))
    assert winograd_train.takes_winograd(eligible[0], torch.randn(1, eligible[0].in_channels, 32, 32))
    assert not winograd_train.takes_winograd(eligible[0], torch.randn(1, eligible[0].in_channels, 32, 32).double())
    first = transposed[0]
    side = winograd_train.MIN_SIDE_TRAIN_TRANSPOSED
    assert winograd_train.takes_winograd_transposed(first, torch.randn(1, first.in_channels, side, side))
    assert not winograd_train.takes_winograd_transposed(first, torch.randn(1, first.in_channels, side - 1, side))
    # training keeps its own channel rule: 64 channels train this way (prediction needs 256)
    narrow = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1)
    assert winograd_train.enable(nn.Sequential(narrow)) == 1
    assert winograd_train.takes_winograd_transposed(narrow, torch.randn(1, 64, side, side))
    net(torch.randn(1, 3, 64, 64))  # runs


def _gradients(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out = net(x)
    sum((v**2).mean() for v in out.values()).backward()
    return {name: p.grad.double() for name, p in net.named_parameters()}


def test_training_step_gradients_are_as_close_to_float64_as_the_plain_networks(monkeypatch):
    """A res18 step at 256x256 input (heads stacked, layer1, layer2 and two of the three
    transposed convolutions on the Winograd path):
    every parameter's gradient, against the float64 network's, errs no more than the plain
    float32 network's does (a fresh network in training-mode batch norm at batch 2 amplifies
    rounding: the plain float32 gradients themselves differ by up to ~1e-1 in some layers).
    The neck's transposed convolutions take their path here from 16x16 inputs on."""
    monkeypatch.setattr(winograd_train, "MIN_SIDE_TRAIN_TRANSPOSED", 16)
    plain = _res18()
    exact, fast = copy.deepcopy(plain).double(), copy.deepcopy(plain)
    assert winograd_train.enable(fast) > 0
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(100))
    want = _gradients(exact, x.double())
    cl = x.contiguous(memory_format=torch.channels_last)
    base = _gradients(plain.to(memory_format=torch.channels_last), cl)
    got = _gradients(fast.to(memory_format=torch.channels_last), cl)

    def err(g: dict[str, torch.Tensor], name: str) -> float:
        return float((g[name] - want[name]).norm() / want[name].norm())

    # Winograd's own rounding (its transforms add and scale by up to 8) puts up to ~6e-5 on the
    # heads' gradients, where the plain network's is ~6e-7: hence the floor. A wrong gradient errs ~1.
    for name in want:
        assert err(got, name) <= 4 * err(base, name) + 5e-4, name
    total = sum(err(got, n) for n in want) / sum(err(base, n) for n in want)
    assert total < 3.0  # 0.8-1.4 over four inputs


def test_stacked_heads_equal_separate_heads():
    torch.manual_seed(1)
    heads = [
        nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(64, k, 1)) for k in (3, 2, 2)
    ]
    for h in heads:
        winograd_train.enable(h)
    x = torch.randn(1, 64, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    firsts = winograd_train.merged_first_convs(x, heads)
    assert firsts is not None and [f.shape[1] for f in firsts] == [64, 64, 64]
    for h, y in zip(heads, firsts):
        assert torch.allclose(y, winograd_train.conv3x3(x, h[0].weight, h[0].bias), atol=1e-5)
    merged = sum(h[2](torch.relu(y)).sum() for h, y in zip(heads, firsts))
    (gx,) = torch.autograd.grad(merged, x)
    separate = sum(h(x).sum() for h in heads)
    (gx_ref,) = torch.autograd.grad(separate, x)
    assert torch.allclose(gx, gx_ref, atol=1e-4)
    assert winograd_train.merged_first_convs(torch.randn(1, 64, 8, 8), heads) is None  # too small a map


def test_inference_copy_and_traces_of_an_enabled_network():
    plain = _res18().eval()
    fast = copy.deepcopy(plain)
    winograd_train.enable(fast)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        a = prepare_for_inference(plain, channels_last=True)(x)
        b = prepare_for_inference(fast, channels_last=True)(x)
        for k in a:
            assert torch.equal(a[k], b[k]), k  # the same folded, fused copy
        traced = torch.jit.trace(fast, torch.randn(1, 3, 128, 128), strict=False)
        y, ref = traced(x), plain(x)
    for k in ref:
        assert torch.allclose(y[k], ref[k], atol=1e-4), k  # the trace recorded the plain path


# ---- transposed 4x4 stride-2 convolutions -------------------------------------------------------
def _grid(g: np.ndarray, py: int, px: int) -> np.ndarray:
    return g[py::2, px::2]


def phase_grad_tiles_twin(g: np.ndarray, r0: int, r1: int, tw: int) -> np.ndarray:
    """(2H, 2W, C) -> (100, T, C): per phase, zero-padded 4x4 blocks of its grid, A g A^T each."""
    c = g.shape[2]
    out = []
    for py, px in winograd.PHASES:
        grid = _grid(g, py, px)
        padded = np.zeros((4 * r1, 4 * tw, c))
        padded[: grid.shape[0], : grid.shape[1]] = grid[: 4 * r1]
        blocks = [
            padded[4 * ty : 4 * ty + 4, 4 * tx : 4 * tx + 4].reshape(16, c) for ty in range(r0, r1) for tx in range(tw)
        ]
        out.append(np.einsum("pq,tqc->ptc", np.kron(AT2.T, AT2.T), np.stack(blocks)))
    return np.concatenate(out)


def phase_grad_input_twin(g: np.ndarray, r0: int, r1: int, tw: int) -> np.ndarray:
    """(2H, 2W, C) -> (25, T, 4C): per phase, the 5x5 windows of its grid at (4 ty - py, 4 tx - px)
    (zeros outside), B^T d B each, phases side by side along the channels."""
    c = g.shape[2]
    out = []
    for py, px in winograd.PHASES:
        grid = _grid(g, py, px)
        padded = np.zeros((4 * r1 + 6, 4 * tw + 6, c))
        rows = min(grid.shape[0], 4 * r1 + 4)
        padded[1 : 1 + rows, 1 : 1 + grid.shape[1]] = grid[:rows]
        tiles = [
            padded[4 * ty - py + 1 : 4 * ty - py + 6, 4 * tx - px + 1 : 4 * tx - px + 6].reshape(25, c)
            for ty in range(r0, r1)
            for tx in range(tw)
        ]
        out.append(np.einsum("pq,tqc->ptc", np.kron(BT2, BT2), np.stack(tiles)))
    return np.concatenate(out, axis=2)


def output_f42_twin(m: np.ndarray, r0: int, tw: int, h: int, w: int) -> np.ndarray:
    c = m.shape[-1]
    blocks = np.einsum("pq,qtc->tpc", np.kron(AT2, AT2), m.astype(np.float64)).reshape(-1, 4, 4, c)
    out = np.full((h, w, c), np.nan)
    for t, block in enumerate(blocks):
        y0, x0 = 4 * (r0 + t // tw), 4 * (t % tw)
        part = block[: h - y0, : w - x0]
        out[y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = part
    return out


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 11), w=st.integers(1, 11), c=st.integers(1, 6), block=st.integers(1, 2), seed=st.integers(0, 999)
)
def test_phase_gradient_kernels_match_twins(h, w, c, block, seed):
    g = np.random.default_rng(seed).normal(size=(2 * h, 2 * w, c)).astype(np.float32)
    th, tw = math.ceil(h / 4), math.ceil(w / 4)
    for r0 in range(0, th, block):
        r1 = min(th, r0 + block)
        t = (r1 - r0) * tw
        dm = np.full((100, t, c), np.nan, np.float32)
        kernels.phase_grad_tiles(g, r0, r1, tw, dm)
        np.testing.assert_allclose(dm, phase_grad_tiles_twin(g, r0, r1, tw), rtol=1e-5, atol=1e-4)
        v = np.full((25, t, 4 * c), np.nan, np.float32)
        kernels.phase_grad_input_tiles(g, r0, r1, tw, v)
        np.testing.assert_allclose(v, phase_grad_input_twin(g, r0, r1, tw), rtol=1e-5, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 13), w=st.integers(1, 13), c=st.integers(1, 6), seed=st.integers(0, 999))
def test_output_tiles_f42_match_twin(h, w, c, seed):
    th, tw = math.ceil(h / 4), math.ceil(w / 4)
    m = np.random.default_rng(seed).normal(size=(25, th * tw, c)).astype(np.float32)
    out = np.full((h, w, c), np.nan, np.float32)
    kernels.output_tiles_f42(m, 0, tw, out)
    np.testing.assert_allclose(out, output_f42_twin(m, 0, tw, h, w), rtol=1e-5, atol=1e-4)


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(1, 2),
    cin=st.integers(1, 10),
    cout=st.integers(1, 10),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    with_bias=st.booleans(),
    seed=st.integers(0, 999),
)
def test_transposed_three_passes_match_float64_autograd(n, cin, cout, h, w, with_bias, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cin, cout, 4, 4, generator=gen) * 0.3
    bias = torch.randn(cout, generator=gen) if with_bias else None
    grad = torch.randn(n, cout, 2 * h, 2 * w, generator=gen)
    leaves = [t.requires_grad_() for t in (x, weight, bias) if t is not None]
    out = winograd_train.conv_transpose4x4s2(x, weight, bias)
    got = torch.autograd.grad(out, leaves, grad)
    ref_leaves = [t.detach().double().requires_grad_() for t in leaves]
    ref_bias = ref_leaves[2] if with_bias else None
    ref_out = F.conv_transpose2d(ref_leaves[0], ref_leaves[1], ref_bias, stride=2, padding=1)
    want = torch.autograd.grad(ref_out, ref_leaves, grad.double())
    assert _rel(out.detach(), ref_out.detach()) < 2e-5
    for name, a, b in zip(("input", "weight", "bias"), got, want):
        assert _rel(a, b) < 3e-5, name


def test_transposed_weight_transform_matches_the_float64_transform():
    weight = torch.randn(12, 20, 4, 4)
    got = winograd_train.transform_transposed_weight_f32(weight)
    assert torch.allclose(got, winograd.transform_transposed_weight(weight), atol=1e-5)


def test_transposed_input_gradient_transform_matches_a_numpy_twin():
    """(25, 4 Cout, Cin): row (pq, ph Cout + co) holds G2 k G2^T of phase ph's taps reversed."""
    weight = torch.randn(6, 10, 4, 4, dtype=torch.float64)
    g2 = np.array(winograd._G2)
    want = np.zeros((25, 4 * 10, 6))
    for ph, (py, px) in enumerate(winograd.PHASES):
        ty, tx = winograd._PHASE_TAPS[py][::-1], winograd._PHASE_TAPS[px][::-1]
        k = weight.numpy()[:, :, list(ty)][:, :, :, list(tx)]  # (Cin, Cout, 2, 2)
        pts = np.einsum("pa,ioab,qb->pqoi", g2, k, g2).reshape(25, 10, 6)
        want[:, ph * 10 : ph * 10 + 10] = pts
    for fmt in (torch.contiguous_format, torch.channels_last):
        got = winograd_train.transform_transposed_weight_for_input_grad(weight.float().contiguous(memory_format=fmt))
        assert got.shape == (25, 40, 6)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_point_taps_kernels_match_numpy_twins():
    """The weight gradients' last step, points -> kernel taps: ``G^T dU G`` (3x3) and per phase
    ``G2^T dU G2`` into that phase's four taps of a 4x4 kernel."""
    rng = np.random.default_rng(0)
    g = np.array(winograd._G)
    du = rng.standard_normal((36, 5, 7)).astype(np.float32)
    out = np.empty((5, 3, 3, 7), np.float32)
    kernels.point_taps(du, g.astype(np.float32), out)
    want = np.einsum("pu,pqrc,qv->ruvc", g, du.reshape(6, 6, 5, 7).astype(np.float64), g)
    np.testing.assert_allclose(out, want, atol=1e-5)

    g2 = np.array(winograd._G2)
    out = np.full((5, 4, 4, 7), np.nan, np.float32)
    want = np.empty((5, 4, 4, 7))
    for py, px in winograd.PHASES:
        ty, tx = np.array(winograd._PHASE_TAPS[py]), np.array(winograd._PHASE_TAPS[px])
        d = rng.standard_normal((25, 5, 7)).astype(np.float32)
        kernels.phase_point_taps(d, ty, tx, g2.astype(np.float32), out)
        taps = np.einsum("pa,pqrc,qb->rabc", g2, d.reshape(5, 5, 5, 7).astype(np.float64), g2)
        want[:, ty[:, None], tx[None, :]] = taps
    np.testing.assert_allclose(out, want, atol=1e-5)  # every tap written once (no NaN left)
