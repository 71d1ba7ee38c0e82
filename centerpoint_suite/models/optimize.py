"""Network preparation for prediction and for training, each in one function.

``prepare_for_inference(net)`` returns an eval-mode copy (the caller's network, its
state_dict keys and its checkpoints are untouched) in which:

- every batch norm that directly follows a convolution (plain, transposed or deformable)
  is folded into it: ``w' = w * g / sqrt(var + eps)`` per output channel,
  ``b' = (b - mean) * g / sqrt(var + eps) + beta``;
- each plain 3x3 / 1x1 convolution with the ReLU (and, in residual blocks, the residual
  addition) that follows it becomes one call: Winograd F(4x4, 3x3) or F(6x6, 3x3) for wide 3x3 stride-1 ones
  (``winograd.py``), else oneDNN (``torch.ops.mkldnn._convolution_pointwise``) with weights packed
  once per input shape; plain torch ops where that is unavailable, off the CPU or when gradients
  are wanted; transposed convolutions likewise (``FusedConvTranspose``);
- the heads' first 3x3 convolutions, which all read the same feature map, run as one Winograd
  call with their weights stacked where that pays (``StackedHeadStarts``);
- the memory format is channels_last on CPU.

Outputs equal the unprepared network's within float32 rounding (tests check 1e-4 relative).

The training side: ``make_optimizer(params, lr, weight_decay)``, Adam with the fused update
(one kernel per parameter instead of about ten), the fastest CPU variant measured here; and
``train_channels_last``, the trainer's memory format (channels_last on CPU: faster to train there).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet

from . import bn_relu, dla, hourglass, winograd, winograd_train
from .base import CenterNetModel, module_key
from .dcn import ModulatedDeformConv
from .resnet import ResNetBody

_POINTWISE = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
_REORDER = getattr(torch._C._nn, "mkldnn_reorder_conv2d_weight", None)
if _POINTWISE is None or _REORDER is None:
    _POINTWISE = _REORDER = None
_TRANSPOSED = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_transpose_pointwise", None)
_REORDER_T = getattr(getattr(torch.ops, "mkldnn", None), "_reorder_convolution_transpose_weight", None)
if _TRANSPOSED is None or _REORDER_T is None:
    _TRANSPOSED = _REORDER_T = None


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Per-channel (scale, shift) of an eval-mode batch norm: y = x * scale + shift."""
    scale = bn.weight.detach() * torch.rsqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


def fold_bn_into(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """In place: ``conv`` (Conv2d, ConvTranspose2d with groups 1, or ModulatedDeformConv)
    followed by eval-mode ``bn`` becomes one layer with the same output (a bias is added)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    scale, shift = _bn_scale_shift(bn)
    w = conv.weight.detach()
    if isinstance(conv, nn.ConvTranspose2d):
        if conv.groups != 1:
            raise ValueError("folding a batch norm into a grouped transposed convolution is not supported")
        w = w * scale.view(1, -1, 1, 1)  # (Cin, Cout, kh, kw)
    else:
        w = w * scale.view(-1, 1, 1, 1)  # (Cout, Cin, kh, kw)
    b = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    conv.weight = nn.Parameter(w, requires_grad=False)
    conv.bias = nn.Parameter(b * scale + shift, requires_grad=False)


def _inference_on_cpu(x: Tensor, *tensors: Tensor | None) -> bool:
    """CPU float32 with no gradient wanted for ``x`` or ``tensors``: the fused / packed / Winograd paths."""
    wants_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *tensors))
    return not wants_grad and x.device.type == "cpu" and x.dtype == torch.float32


class PackedWeights:
    """A layer's weights re-laid out for oneDNN, per input shape (the ``SHAPES`` newest kept).

    Not module state (no state_dict entry); a deep copy starts empty and packs again on use
    (oneDNN tensors cannot be copied).
    """

    SHAPES = 4

    def __init__(self) -> None:
        self.cache: dict[tuple, Tensor] = {}

    def get(self, key: tuple, pack: Callable[[], Tensor]) -> Tensor:
        w = self.cache.get(key)
        if w is None:
            if len(self.cache) >= self.SHAPES:
                self.cache.pop(next(iter(self.cache)))
            w = self.cache[key] = pack()
        return w

    def __deepcopy__(self, memo) -> PackedWeights:
        return PackedWeights()


class FusedConv(nn.Module):
    """conv2d (BN folded) [+ other] [-> ReLU] as one call on CPU.

    (N, Cin, H, W) -> (N, Cout, Ho, Wo); ``other`` (same shape as the output) is added
    before the ReLU (residual connections). Without autograd on CPU float32:

    - 3x3 stride-1 convolutions with 64+ channels on maps of 16x16+ run as Winograd
      F(4x4, 3x3) or on large maps F(6x6, 3x3) (``winograd.py``; ``winograd_ok=False`` turns that off);
    - the others run as one oneDNN call (convolution + addition + ReLU) whose weights are
      re-laid out for oneDNN once per input shape and kept (``PackedWeights``):
      unpacked, oneDNN re-lays them out at every call, which cost up to 40% on small maps.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, relu: bool, winograd_ok: bool = True) -> None:
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("FusedConv needs numeric zero padding")
        conv = copy.deepcopy(conv)
        if bn is not None:
            fold_bn_into(conv, bn)
        self.weight = nn.Parameter(conv.weight.detach(), requires_grad=False)
        b = conv.bias.detach() if conv.bias is not None else None
        self.bias = None if b is None else nn.Parameter(b, requires_grad=False)
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups, self.relu, self.winograd_ok = conv.groups, relu, winograd_ok
        self._packed = PackedWeights()
        self._winograd: dict[int, Tensor] = {}  # transformed weights per tile side, made at first use

    def _packed_weight(self, x: Tensor) -> Tensor:
        return self._packed.get(
            tuple(x.shape),
            lambda: _REORDER(
                self.weight.to_mkldnn(), self.padding, self.stride, self.dilation, self.groups, list(x.shape)
            ),
        )

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        act = "relu" if self.relu else "none"
        if _inference_on_cpu(x, self.weight, other):
            if self.winograd_ok and winograd.eligible(
                self.weight, self.stride, self.padding, self.dilation, self.groups, x
            ):
                u = _winograd_weight(self._winograd, self.weight, x)
                return winograd.conv3x3(x, u, self.bias, self.relu, other)
            if _POINTWISE is not None:
                args = (self.padding, self.stride, self.dilation, self.groups)
                w = self._packed_weight(x)
                if other is None:
                    return _POINTWISE(x, w, self.bias, *args, act, [], "")
                return _POINTWISE.binary(x, other, w, self.bias, *args, "add", 1.0, act, [], "")
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if other is not None:
            y = y + other
        return F.relu(y) if self.relu else y

    def extra_repr(self) -> str:
        w = self.weight.shape
        return f"{w[1] * self.groups}, {w[0]}, kernel_size={tuple(w[2:])}, stride={self.stride}, relu={self.relu}"


def _winograd_weight(cache: dict[int, Tensor], weight: Tensor, x: Tensor) -> Tensor:
    """The Winograd weights for a call on ``x``: F(6x6, 3x3) or F(4x4, 3x3) by the map's size
    (``winograd.tile_side``), each transformed once (``cache``, by tile side)."""
    m = winograd.tile_side(*x.shape[-2:])
    if m not in cache:
        cache[m] = winograd.transform_weight(weight, m)
    return cache[m]


class FusedConvTranspose(nn.Module):
    """ConvTranspose2d (groups 1, BN folded) [-> ReLU] for prediction: the 4x4 stride-2 ones with
    256+ channels on maps of 32x32+ as Winograd F(4x4, 2x2) per output phase
    (``winograd.conv_transpose4x4s2``; rule: ``winograd.transposed_eligible``), the others as one
    oneDNN call with weights packed once per input shape (measured: 256 -> 256 channels, 64x64 ->
    128x128, 55 ms against 65 ms for torch's call plus the ReLU); torch's call off the CPU, with
    autograd or without oneDNN."""

    def __init__(self, conv: nn.ConvTranspose2d, bn: nn.BatchNorm2d | None, relu: bool) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("FusedConvTranspose needs groups 1 and zero padding")
        conv = copy.deepcopy(conv)
        if bn is not None:
            fold_bn_into(conv, bn)
        self.weight = nn.Parameter(conv.weight.detach(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach(), requires_grad=False)
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.output_padding, self.dilation, self.relu = list(conv.output_padding), list(conv.dilation), relu
        self._packed = PackedWeights()
        self._winograd: Tensor | None = None  # transformed weights of the Winograd path, made at first use

    def forward(self, x: Tensor) -> Tensor:
        fast = _inference_on_cpu(x, self.weight)
        if fast and winograd.transposed_eligible(
            self.weight, self.stride, self.padding, self.output_padding, self.dilation, 1, x
        ):
            if self._winograd is None:
                self._winograd = winograd.transform_transposed_weight(self.weight)
            return winograd.conv_transpose4x4s2(x, self._winograd, self.bias, self.relu)
        if fast and _TRANSPOSED is not None:
            geometry = (self.padding, self.output_padding, self.stride, self.dilation, 1)
            w = self._packed.get(tuple(x.shape), lambda: _REORDER_T(self.weight, *geometry, list(x.shape)))
            return _TRANSPOSED(x, w, self.bias, *geometry, "relu" if self.relu else "none", [], "")
        y = F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, self.output_padding, 1, self.dilation
        )
        return F.relu(y) if self.relu else y


class StackedHeadStarts(nn.Module):
    """The first layers of several heads that read one feature map (3x3 conv + ReLU each) as one
    Winograd call with their weights stacked: the feature map's tiles are transformed once
    instead of once per head. ``forward(x)`` returns each head's part of the result (channel
    slices of one channels_last tensor, the same values as the heads' own layers give), or None
    where the Winograd path does not apply (the heads then run one by one).

    Built only where it pays (``stack_head_starts``): measured per head group on 128x128, batch 1
    (AMD EPYC Zen 3): res18's three 256 -> 64 heads 97.6 -> 70.7 ms, its six pose heads 177.7 ->
    100.5 ms, resdcn18's 64 -> 64 27.3 -> 23.7 ms, hourglass104's 256 -> 256 264 -> 227 ms; dla34's
    64 -> 256 heads lose (84 -> 120 ms: the stacked product is wide and the shared input
    transform of 64 channels was cheap), so heads wider than their input stay separate.
    """

    def __init__(self, convs: list[FusedConv]) -> None:
        super().__init__()
        self.sizes = [c.weight.shape[0] for c in convs]
        self.register_buffer("weight", torch.cat([c.weight for c in convs]), persistent=False)
        bias = None if convs[0].bias is None else torch.cat([c.bias for c in convs])
        self.register_buffer("bias", bias, persistent=False)
        self._winograd: dict[int, Tensor] = {}  # made at first use, like FusedConv's

    def forward(self, x: Tensor) -> list[Tensor] | None:
        if not (_inference_on_cpu(x, self.weight) and winograd.eligible(self.weight, (1, 1), (1, 1), (1, 1), 1, x)):
            return None
        u = _winograd_weight(self._winograd, self.weight, x)
        return list(winograd.conv3x3(x, u, self.bias, True).split(self.sizes, dim=1))


def stack_head_starts(heads: list[nn.Module]) -> StackedHeadStarts | None:
    """``StackedHeadStarts`` for fused heads whose first layers are Winograd-shaped 3x3 convs with
    ReLU on the same input, no wider than it (see the measurements there); None otherwise."""
    if len(heads) < 2 or not all(isinstance(h, nn.Sequential) and len(h) > 1 for h in heads):
        return None
    convs = [h[0] for h in heads]
    if not all(isinstance(c, FusedConv) and c.relu and c.winograd_ok and c.groups == 1 for c in convs):
        return None
    shapes = {tuple(c.weight.shape[1:]) for c in convs}
    geometry = {(tuple(c.stride), tuple(c.padding), tuple(c.dilation)) for c in convs}
    if len(shapes) > 1 or geometry != {((1, 1), (1, 1), (1, 1))} or len({c.bias is None for c in convs}) > 1:
        return None
    cin, kh, kw = shapes.pop()
    if (kh, kw) != (3, 3) or max(c.weight.shape[0] for c in convs) > cin:
        return None
    return StackedHeadStarts(convs)


class FusedResidual(nn.Module):
    """Residual block for inference: convs[:-1] (each with ReLU), then relu(convs[-1](.) + skip).

    ``forward(x, residual=None)``: the skip branch is ``skip(x)`` unless ``residual`` is given
    (DLA's trees pass a projected residual).
    """

    def __init__(self, convs: list[FusedConv], skip: nn.Module) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.skip = skip

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if residual is None:
            residual = self.skip(x)
        y = x
        for conv in self.convs[:-1]:
            y = conv(y)
        return self.convs[-1](y, residual)


def _skip(module: nn.Module | None) -> nn.Module:
    return nn.Identity() if module is None else _convert(module)


def _residual(m: nn.Module) -> nn.Module | None:
    """An inference twin of a known residual block, None for other modules."""
    if isinstance(m, (tv_resnet.BasicBlock, dla.BasicBlock)):
        skip = _skip(getattr(m, "downsample", None))
        return FusedResidual([FusedConv(m.conv1, m.bn1, True), FusedConv(m.conv2, m.bn2, True)], skip)
    if isinstance(m, tv_resnet.Bottleneck):
        convs = [FusedConv(m.conv1, m.bn1, True), FusedConv(m.conv2, m.bn2, True), FusedConv(m.conv3, m.bn3, True)]
        return FusedResidual(convs, _skip(m.downsample))
    if isinstance(m, hourglass.Residual):
        return FusedResidual([FusedConv(m.conv1, m.bn1, True), FusedConv(m.conv2, m.bn2, True)], _skip(m.skip))
    return None


# modules whose forward is relu(bn(conv(x))) with these attribute names
_CONV_BN_RELU = {ResNetBody: ("conv1", "bn1", "relu"), dla.Root: ("conv", "bn", "relu")}
_CONV_BN_RELU[hourglass.ConvBNReLU] = ("conv", "bn", "relu")


#: convolution classes that fuse as plain ones (a trained network's Winograd layers included)
_PLAIN_CONVS = (nn.Conv2d, winograd_train.WinogradConv2d)
_PLAIN_TRANSPOSED = (nn.ConvTranspose2d, winograd_train.WinogradConvTranspose2d)


def _fuse_sequence(seq: nn.Sequential) -> nn.Sequential:
    """conv -> BN -> ReLU runs inside a Sequential: fused / folded, the consumed layers dropped."""
    items, out, i = list(seq), [], 0
    while i < len(items):
        m = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        bn = nxt if isinstance(nxt, nn.BatchNorm2d) else None
        if type(m) in _PLAIN_CONVS:
            j = i + 1 + (bn is not None)
            relu = j < len(items) and isinstance(items[j], nn.ReLU)
            out.append(FusedConv(m, bn, relu))
            i = j + relu
            continue
        if type(m) in _PLAIN_TRANSPOSED and m.groups == 1 and m.padding_mode == "zeros":
            j = i + 1 + (bn is not None)
            relu = j < len(items) and isinstance(items[j], nn.ReLU)
            out.append(FusedConvTranspose(m, bn, relu))
            i = j + relu
            continue
        if bn is not None and isinstance(m, ModulatedDeformConv):
            fold_bn_into(m, bn)
            out.append(m)
            i += 2
            continue
        out.append(m)
        i += 1
    return nn.Sequential(*out)


def _convert(m: nn.Module) -> nn.Module:
    """The inference twin of ``m`` (children converted recursively; ``m`` may be modified)."""
    twin = _residual(m)
    if twin is not None:
        return twin
    for name, child in list(m.named_children()):
        setattr(m, name, _convert(child))
    names = next((v for k, v in _CONV_BN_RELU.items() if isinstance(m, k)), None)
    if names is not None:
        conv, bn, relu = names
        setattr(m, conv, FusedConv(getattr(m, conv), getattr(m, bn), True))
        setattr(m, bn, nn.Identity())
        setattr(m, relu, nn.Identity())
    if isinstance(m, dla.DeformConv):
        fold_bn_into(m.conv, m.actf[0])
        m.actf[0] = nn.Identity()
    if isinstance(m, nn.Sequential):
        return _fuse_sequence(m)
    return m


def prepare_for_inference(net: nn.Module, channels_last: bool | None = None) -> nn.Module:
    """An eval-mode, batch-norm-folded, conv+ReLU-fused copy of ``net`` for prediction.

    channels_last: memory format of the copy (None: channels_last on CPU). ``net`` itself
    is not modified (its training, state_dict keys and checkpoints stay as they are). Feed
    the copy inputs in the same memory format for the fastest path.
    """
    was_training = net.training
    out = copy.deepcopy(net.eval())
    net.train(was_training)
    bn_relu.disable(out)  # the plain structure the patterns below read
    out = _convert(out).eval()
    for m in out.modules():
        if isinstance(m, CenterNetModel):
            starts = [stack_head_starts([hs[module_key(name)] for name in m.head_names]) for hs in m.heads]
            if all(st is not None for st in starts):  # every stack has the same heads
                m.head_starts = nn.ModuleList(starts)
    out.requires_grad_(False)
    device = next(out.parameters()).device
    if channels_last if channels_last is not None else device.type == "cpu":
        out = out.to(memory_format=torch.channels_last)
    return out


#: channels_last training on CPU. Before the Winograd and batch-norm + ReLU training layers it
#: measured slower (ResNet-18 512x512 batch 4, one step: 7.0 s against 5.2 s NCHW, oneDNN's
#: channels_last convolution backward); with them, which read and write channels_last maps, it
#: is faster: one step, interleaved in one process (AMD EPYC Zen 3, 2 cores), small 256x256
#: batch 16 1.076x, res18 512 batch 4 1.04-1.07x, resdcn18 1.068x, hourglass104 256 batch 2
#: 1.049x, dla34 512 batch 4 0.95-1.00x (the NCHW max-pool alone cost res18 250 ms of a 4 s step)
TRAIN_CHANNELS_LAST_ON_CPU = True


def train_channels_last(requested: bool, device: torch.device) -> bool:
    """Whether the trainer runs the network channels_last: ``model.channels_last`` asks for it,
    applied on CPU only when ``TRAIN_CHANNELS_LAST_ON_CPU`` (prediction always uses it there)."""
    return requested and device.type == "cpu" and TRAIN_CHANNELS_LAST_ON_CPU


def make_optimizer(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam for training: the fused single-kernel update (CPU and CUDA float parameters; 5x
    faster than the per-parameter loop on CPU, measured on 12M weights in 60 tensors), else ``foreach``."""
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors)
    if fused:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
