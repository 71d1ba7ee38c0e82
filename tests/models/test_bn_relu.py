"""Batch norm + ReLU in training through numba kernels (``models/bn_relu.py``): forward, both
gradients and the running statistics against a plain-numpy twin of the formulas and against
float64 autograd of torch's two modules, on NCHW and channels_last maps; the same bits on any
thread count; and the network switch (``enable`` / ``disable``: state_dict kept, every mode
still ReLU after batch norm, the inference copy unchanged)."""

from __future__ import annotations

import copy

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from centerpoint_suite.models import bn_relu, build_network
from centerpoint_suite.models.optimize import prepare_for_inference


# ---- plain-numpy twin (tests only) -----------------------------------------------------------
def bn_relu_twin(x, gamma, beta, dy, eps=1e-5):
    """float64 (N, C, H, W): y = max(x_hat gamma + beta, 0) with the batch statistics; returns
    y, dx, dgamma, dbeta by the textbook formulas (mask where the pre-activation is positive)."""
    mean = x.mean((0, 2, 3), keepdims=True)
    var = x.var((0, 2, 3), keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    g, b = gamma.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)
    z = xhat * g + b
    dz = np.where(z > 0, dy, 0.0)
    dbeta = dz.sum((0, 2, 3))
    dgamma = (dz * xhat).sum((0, 2, 3))
    m = x.shape[0] * x.shape[2] * x.shape[3]
    dx = g / np.sqrt(var + eps) * (dz - dbeta.reshape(1, -1, 1, 1) / m - xhat * dgamma.reshape(1, -1, 1, 1) / m)
    return np.maximum(z, 0), dx, dgamma, dbeta


def _layers(c: int, seed: int) -> nn.BatchNorm2d:
    torch.manual_seed(seed)
    bn = nn.BatchNorm2d(c)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_()
    return bn


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 9),
    h=st.integers(1, 9),
    w=st.integers(2, 9),
    channels_last=st.booleans(),
    seed=st.integers(0, 999),
)
def test_kernels_equal_twin_and_float64_autograd(n, c, h, w, channels_last, seed):
    bn_relu.MIN_VALUES, saved = 1, bn_relu.MIN_VALUES  # these small maps through the kernels
    try:
        _check_against_twin_and_autograd(n, c, h, w, channels_last, seed)
    finally:
        bn_relu.MIN_VALUES = saved


def _check_against_twin_and_autograd(n, c, h, w, channels_last, seed):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    bn = _layers(c, seed)
    fused, ref = bn_relu.BatchNormReLU2d(c), nn.Sequential(copy.deepcopy(bn), nn.ReLU()).double()
    fused.load_state_dict(bn.state_dict())
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, c, h, w, generator=gen) * 2 + 0.5).contiguous(memory_format=fmt).requires_grad_()
    dy = torch.randn(n, c, h, w, generator=gen)
    y = fused(x)
    y.backward(dy)
    assert y.is_contiguous(memory_format=fmt) and x.grad.is_contiguous(memory_format=fmt)
    y64, dx64, dg64, db64 = bn_relu_twin(
        x.detach().double().numpy(),
        bn.weight.detach().double().numpy(),
        bn.bias.detach().double().numpy(),
        dy.double().numpy(),
    )
    np.testing.assert_allclose(y.detach().numpy(), y64, atol=2e-5)
    np.testing.assert_allclose(x.grad.numpy(), dx64, atol=2e-5 * max(1.0, np.abs(dx64).max()))
    np.testing.assert_allclose(fused.weight.grad.numpy(), dg64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.bias.grad.numpy(), db64, rtol=1e-5, atol=1e-5)
    xr = x.detach().double().requires_grad_()
    ref(xr).backward(dy.double())
    assert torch.allclose(x.grad.double(), xr.grad, atol=2e-5 * max(1.0, float(xr.grad.abs().max())))
    # running statistics and the batch counter as torch's module updates them
    assert int(fused.num_batches_tracked) == int(ref[0].num_batches_tracked) == 1
    assert torch.allclose(fused.running_mean.double(), ref[0].running_mean, atol=1e-6)
    assert torch.allclose(fused.running_var.double(), ref[0].running_var, rtol=1e-5, atol=1e-6)


def test_momentum_none_is_the_cumulative_average(monkeypatch):
    monkeypatch.setattr(bn_relu, "MIN_VALUES", 1)
    bn = _layers(4, 0)
    bn.momentum = None
    fused = copy.deepcopy(bn)
    fused.__class__ = bn_relu.BatchNormReLU2d
    for seed in range(3):
        x = torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(seed))
        fused(x)
        bn(x)
    assert int(fused.num_batches_tracked) == 3
    assert torch.allclose(fused.running_mean, bn.running_mean, atol=1e-6)
    assert torch.allclose(fused.running_var, bn.running_var, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_same_bits_on_any_thread_count(monkeypatch, channels_last):
    monkeypatch.setattr(bn_relu, "MIN_VALUES", 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = (torch.randn(2, 24, 33, 31) * 3).contiguous(memory_format=fmt)
    dy = torch.randn(2, 24, 33, 31)
    threads = numba.get_num_threads()
    torch_threads = torch.get_num_threads()
    results = []
    try:
        for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            torch.set_num_threads(n)  # the kernels follow torch's count (winograd.use_torch_threads)
            layer = _layers(24, 1)
            layer.__class__ = bn_relu.BatchNormReLU2d
            xi = x.clone().requires_grad_()
            y = layer(xi)
            y.backward(dy)
            results.append((y, xi.grad, layer.weight.grad, layer.bias.grad, layer.running_var))
    finally:
        torch.set_num_threads(torch_threads)
        numba.set_num_threads(threads)
    for a, b in zip(results[0], results[-1]):
        assert torch.equal(a, b)


def test_eval_and_untaken_calls_still_apply_the_relu():
    layer = _layers(3, 2)
    ref = nn.Sequential(copy.deepcopy(layer), nn.ReLU())
    layer.__class__ = bn_relu.BatchNormReLU2d
    x = torch.randn(2, 3, 4, 4)
    layer(x), ref(x)  # one training step each: running statistics
    layer.eval(), ref.eval()
    assert torch.allclose(layer(x), ref(x), atol=1e-6)
    layer.train(), ref.train()
    assert not bn_relu.kernel_path_ok(layer, x)  # 32 values per channel: torch's two modules
    assert bn_relu.kernel_path_ok(layer, torch.randn(1, 3, 64, 64)) and not bn_relu.kernel_path_ok(layer, x.double())
    assert torch.allclose(layer(x), ref(x), atol=1e-5)
    assert torch.allclose(layer(x[:, :, :, ::2]), ref(x[:, :, :, ::2]), atol=1e-5)  # strided: torch's path


def _res18(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_network("res18", {"heatmap": 3, "size": 2, "offset": 2}, heatmap_heads=("heatmap",)).train()


def test_enable_and_disable_on_a_network():
    net = _res18()
    keys = list(net.state_dict())
    plain = copy.deepcopy(net)
    # the stem, bn1 of the 8 blocks, the neck's 3 deconvolution stages
    assert bn_relu.enable(net) == 12
    assert bn_relu.enable(net) == 0  # already fused
    assert list(net.state_dict()) == keys
    assert sum(type(m) is bn_relu.FusedReLU for m in net.modules()) == 4  # stem + neck; the blocks keep theirs
    x = torch.randn(2, 3, 96, 96)
    y, ref = net(x), plain(x)
    for k in ref:
        assert torch.allclose(y[k], ref[k], atol=1e-4), k  # training mode: batch statistics
    for a, b in zip(net.buffers(), plain.buffers()):
        assert torch.allclose(a.double(), b.double(), atol=1e-5)
    plain.load_state_dict(net.state_dict())  # the same weights and statistics from here
    net.eval(), plain.eval()
    with torch.no_grad():
        a = prepare_for_inference(net, channels_last=True)(x)
        b = prepare_for_inference(plain, channels_last=True)(x)
        for k in a:
            assert torch.equal(a[k], b[k]), k  # the same folded, fused inference copy
        assert any(type(m) is bn_relu.BatchNormReLU2d for m in net.modules())  # the copy's undo left net fused
        y, ref = net(x), plain(x)
    for k in ref:
        assert torch.allclose(y[k], ref[k], atol=1e-5), k
    assert bn_relu.disable(net) == 12
    assert not any(type(m) in (bn_relu.BatchNormReLU2d, bn_relu.FusedReLU) for m in net.modules())
    assert [type(m) for m in net.modules()] == [type(m) for m in plain.modules()]


def test_second_derivative_is_refused_clearly(monkeypatch):
    monkeypatch.setattr(bn_relu, "MIN_VALUES", 1)
    layer = _layers(3, 4)
    layer.__class__ = bn_relu.BatchNormReLU2d
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    (g,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
    assert not g.requires_grad  # no graph through the kernels: a second derivative is an error, not a wrong number
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), x)


@pytest.mark.parametrize("arch", ["small", "resdcn18", "dla34"])
def test_other_networks_train_and_deploy_the_same(arch):
    """The Sequential pattern in the other networks (DLA's levels and deformable layers, the
    deformable neck, the small network's conv-BN-ReLU units): same outputs in training, the same
    inference copy."""
    torch.manual_seed(0)
    net = build_network(arch, {"heatmap": 3, "size": 2, "offset": 2}, heatmap_heads=("heatmap",)).train()
    plain, keys = copy.deepcopy(net), list(net.state_dict())
    assert bn_relu.enable(net) > 0 and list(net.state_dict()) == keys
    x = torch.randn(2, 3, 128, 128)
    y, ref = net(x), plain(x)
    for k in ref:
        assert torch.allclose(y[k], ref[k], atol=1e-4, rtol=1e-4), k
    plain.load_state_dict(net.state_dict())
    net.eval(), plain.eval()
    with torch.no_grad():
        a, b = prepare_for_inference(net)(x), prepare_for_inference(plain)(x)
    assert all(torch.equal(a[k], b[k]) for k in a)
