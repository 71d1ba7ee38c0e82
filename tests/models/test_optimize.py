"""Prediction / training preparation: same outputs as the plain network, checkpoints untouched."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.ops import deform_conv2d

from centerpoint_suite.models import build_network
from centerpoint_suite.models.dcn import deform_conv2d_gather, set_deform_impl
from centerpoint_suite.models.optimize import FusedConv, make_optimizer, prepare_for_inference

HEADS = {"heatmap": 3, "size": 2, "offset": 2}


def _randomise_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial batch-norm statistics, so that folding them is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
            m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.data.copy_(0.6 * torch.rand(c, generator=g) - 0.3)
    return net


@pytest.mark.parametrize(("arch", "size"), [("res18", 96), ("resdcn18", 96), ("dla34", 96), ("hourglass104", 128)])
def test_prepared_network_has_the_same_outputs(arch, size):
    torch.manual_seed(0)
    net = _randomise_bn(build_network(arch, HEADS)).eval()
    keys = list(net.state_dict())
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ref = net(x)
    fast = prepare_for_inference(net)
    assert list(net.state_dict()) == keys  # the caller's network (and its checkpoints) unchanged
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())  # every BN folded
    assert any(isinstance(m, FusedConv) for m in fast.modules())
    with torch.inference_mode():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert set(out) == set(ref)
    for k in ref:
        scale = ref[k].abs().max()
        torch.testing.assert_close(out[k], ref[k], rtol=1e-4, atol=1e-4 * float(scale), msg=f"{arch} {k}")


@pytest.mark.parametrize(("arch", "stacked"), [("res18", True), ("resdcn18", True), ("dla34", False)])
def test_heads_run_their_first_layers_as_one_call_where_that_pays(arch, stacked):
    # res18 / resdcn18: 64-channel heads on a 64- or 256-channel map share its transformed tiles;
    # dla34's 256-channel heads on its 64-channel map stay separate (measured slower stacked)
    torch.manual_seed(0)
    net = _randomise_bn(build_network(arch, {"heatmap": 3, "size": 2, "offset": 2, "joints": 5})).eval()
    fast = prepare_for_inference(net)
    assert (fast.head_starts is not None) is stacked
    assert "head_starts" not in "".join(fast.state_dict())  # nothing new in a state_dict
    if not stacked:
        return
    x = torch.randn(1, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert fast.head_starts[0](fast.body(x)[0]) is not None  # the stacked call is taken here
        together = fast(x)
        starts, fast.head_starts = fast.head_starts, None
        apart = fast(x)  # each head its own Winograd call
        fast.head_starts = starts
    with torch.no_grad():
        ref = net(x)
    for k in ref:
        scale = float(apart[k].abs().max())
        torch.testing.assert_close(together[k], apart[k], rtol=0, atol=1e-6 * scale, msg=k)
        torch.testing.assert_close(together[k], ref[k], rtol=1e-4, atol=1e-4 * float(ref[k].abs().max()), msg=k)
    fast.requires_grad_(True)
    assert fast.head_starts[0](fast.body(x)[0].requires_grad_()) is None  # with autograd: the heads one by one


def test_prepared_network_with_torchvision_dcn_and_grad_mode():
    # The fused layers fall back to plain ops when gradients are on; same numbers either way.
    net = _randomise_bn(build_network("resdcn18", HEADS), seed=1).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = set_deform_impl(net, "torchvision")(x)
    fast = prepare_for_inference(net, channels_last=False)
    plain = fast(x)  # grad mode on: F.conv2d path
    with torch.inference_mode():
        fused = fast(x)
    for k in ref:
        torch.testing.assert_close(plain[k].detach(), ref[k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fused[k], ref[k], rtol=1e-4, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 6),
    h=st.integers(3, 9),
    w=st.integers(3, 9),
    cout=st.integers(1, 4),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 2),
    spread=st.floats(0.0, 6.0),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gather_dcn_matches_torchvision(n, c, h, w, cout, stride, dilation, spread, channels_last, seed):
    g = torch.Generator().manual_seed(seed)
    pad = dilation
    ho = (h + 2 * pad - 2 * dilation - 1) // stride + 1
    wo = (w + 2 * pad - 2 * dilation - 1) // stride + 1
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(cout, c, 3, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(cout, generator=g, dtype=torch.float64)
    offset = spread * torch.randn(n, 18, ho, wo, generator=g, dtype=torch.float64)
    mask = torch.rand(n, 9, ho, wo, generator=g, dtype=torch.float64)
    ref = deform_conv2d(x, offset, weight, bias, stride=stride, padding=pad, dilation=dilation, mask=mask)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x, offset, mask = (t.contiguous(memory_format=fmt) for t in (x, offset, mask))
    ours = deform_conv2d_gather(x, offset, mask, weight, bias, stride, pad, dilation)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)


def test_gather_dcn_gradients_match_torchvision():
    g = torch.Generator().manual_seed(3)
    shapes = [(2, 4, 6, 7), (2, 18, 6, 7), (2, 9, 6, 7), (3, 4, 3, 3), (3,)]
    inputs = [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]
    inputs[1] *= 1.5
    inputs[2] = inputs[2].sigmoid()
    ours = [t.clone().requires_grad_(True) for t in inputs]
    refs = [t.clone().requires_grad_(True) for t in inputs]
    deform_conv2d_gather(*ours).square().sum().backward()
    x, off, m, w, b = refs
    deform_conv2d(x, off, w, b, padding=1, mask=m).square().sum().backward()
    for a, r in zip(ours, refs):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-9, atol=1e-9)


def _train_step(channels_last: bool, fast_optimizer: bool):
    from centerpoint_suite import create_task
    from centerpoint_suite.loss_model import LossModel

    torch.manual_seed(0)
    task = create_task("boxes2d", classes=("a", "b", "c"))
    net = build_network("resdcn18", task.heads(), heatmap_heads=task.heatmap_heads())
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, 64, generator=g)
    heat = torch.rand(2, 3, 16, 16, generator=g) * 0.9
    heat[0, 1, 5, 7] = heat[1, 2, 9, 3] = 1.0
    targets = {
        "heatmap": heat,
        "heatmap_ignore": torch.zeros(2, 3, 16, 16, dtype=torch.uint8),
        "indices": torch.tensor([[5 * 16 + 7, 0], [9 * 16 + 3, 0]]),
        "mask": torch.tensor([[1, 0], [1, 0]], dtype=torch.uint8),
        "size": torch.rand(2, 2, 2, generator=g) * 8,
        "offset": torch.rand(2, 2, 2, generator=g),
    }
    model = LossModel(net, task)
    if channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if fast_optimizer:
        opt = make_optimizer(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=False)
    loss = model(x, targets)["loss"]
    opt.zero_grad(set_to_none=fast_optimizer)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    return loss.item(), grads, [p.detach().clone() for p in model.parameters()]


def test_fast_train_step_equals_plain_step():
    loss0, grads0, params0 = _train_step(channels_last=False, fast_optimizer=False)
    loss1, grads1, params1 = _train_step(channels_last=True, fast_optimizer=True)
    assert loss1 == pytest.approx(loss0, rel=1e-5)
    scale = max(float(g.abs().max()) for g in grads0)  # some gradients are ~0 (biases before a BN): one scale
    for g0, g1, p0, p1 in zip(grads0, grads1, params0, params1):
        # Whole-tensor error: element by element, a reassociated sum deep in the network is off by
        # up to 6e-3 at single near-zero elements on some CPUs (1 of the stem's 9408 on an AVX2
        # EPYC), while the tensor as a whole agrees to 2e-5.
        if float(g0.norm()) > 1e-6 * scale * g0.numel() ** 0.5:
            assert float((g1 - g0).norm() / g0.norm()) < 1e-3
        else:  # gradients that are zero up to rounding (biases before a BN)
            assert float((g1 - g0).abs().max()) < 1e-5 * scale
        # Adam's first step moves each weight by ~lr * sign(grad): compare where the sign is certain.
        sure = g0.abs() > 1e-4 * scale
        torch.testing.assert_close(p1[sure], p0[sure], rtol=1e-6, atol=1e-7)
