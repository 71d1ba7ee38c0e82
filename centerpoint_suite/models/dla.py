"""DLA-34 with deformable DLAUp / IDAUp aggregation (the original ``pose_dla_dcn``), as ``dla34``.

Backbone ``base``: Deep Layer Aggregation (levels 0..5 at strides 1, 2, 4, 8, 16, 32 with
16, 32, 64, 128, 256, 512 channels; hierarchical ``Tree`` aggregation with ``Root`` nodes).
Neck: ``dla_up`` (iterative deep aggregation from stride 32 down to stride 4, each step a
deformable 3x3 projection, a depthwise bilinear-initialised ConvTranspose upsampling and a
deformable 3x3 aggregation node) followed by ``ida_up`` (merging the strides 4, 8, 16
outputs into one stride-4, 64-channel map). Parameter names equal the original network's.
Default head_conv 256.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..registry import NETWORKS
from .base import CenterNetModel
from .dcn import ModulatedDeformConv
from .resnet import fill_bilinear

DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)
DLA34_IMAGENET_FILE = "dla34-ba72cf86.pth"
DLA34_IMAGENET_URL = "http://dl.yf.io/dla/models/imagenet/" + DLA34_IMAGENET_FILE


class BasicBlock(nn.Module):
    """3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, + residual, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if residual is None:
            residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 conv over the concatenated children -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *children: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(torch.cat(children, 1))))


class Tree(nn.Module):
    """Hierarchical aggregation of ``levels`` depth (``levels == 1``: two blocks and a Root)."""

    def __init__(
        self, levels: int, cin: int, cout: int, stride: int = 1, level_root: bool = False, root_dim: int = 0
    ) -> None:
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * cout
        if level_root:
            root_dim += cin
        if levels == 1:
            self.tree1 = BasicBlock(cin, cout, stride)
            self.tree2 = BasicBlock(cout, cout, 1)
            self.root = Root(root_dim, cout)
        else:
            self.tree1 = Tree(levels - 1, cin, cout, stride, root_dim=0)
            self.tree2 = Tree(levels - 1, cout, cout, root_dim=root_dim + cout)
        self.levels = levels
        self.level_root = level_root
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        self.project = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, 1, bias=False), nn.BatchNorm2d(cout)) if cin != cout else None
        )

    def forward(self, x: Tensor, residual: Tensor | None = None, children: list[Tensor] | None = None) -> Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        residual = self.project(bottom) if self.project is not None else bottom
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        children.append(x1)
        return self.tree2(x1, children=children)


def _conv_level(cin: int, cout: int, convs: int, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(cin, cout, 3, stride if i == 0 else 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
        cin = cout
    return nn.Sequential(*layers)


class DLA(nn.Module):
    """DLA backbone: (N, 3, H, W) -> 6 maps at strides 1..32 (channels ``channels``)."""

    def __init__(self, levels: tuple[int, ...] = DLA34_LEVELS, channels: tuple[int, ...] = DLA34_CHANNELS) -> None:
        super().__init__()
        self.channels = channels
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], 7, 1, 3, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)
        )
        self.level0 = _conv_level(channels[0], channels[0], levels[0])
        self.level1 = _conv_level(channels[0], channels[1], levels[1], stride=2)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, level_root=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.base_layer(x)
        out = []
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            out.append(x)
        return out


class DeformConv(nn.Module):
    """Deformable 3x3 conv -> BN -> ReLU (keys ``conv.*`` and ``actf.0.*`` as the original)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.actf = nn.Sequential(nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
        self.conv = ModulatedDeformConv(cin, cout, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.actf(self.conv(x))


class IDAUp(nn.Module):
    """Iterative aggregation of maps at increasing strides into ``out_ch`` channels.

    channels[i], up_factors[i]: channels and stride ratio (to the first map) of input i.
    ``forward(layers, start, end)`` rewrites ``layers[start+1:end]`` in place: each is
    projected, upsampled to the resolution of ``layers[start]`` and merged with its
    predecessor; ``layers[end - 1]`` is the aggregate.
    """

    def __init__(self, out_ch: int, channels: list[int], up_factors: list[int]) -> None:
        super().__init__()
        for i in range(1, len(channels)):
            f = int(up_factors[i])
            setattr(self, f"proj_{i}", DeformConv(channels[i], out_ch))
            up = nn.ConvTranspose2d(
                out_ch, out_ch, f * 2, stride=f, padding=f // 2, output_padding=0, groups=out_ch, bias=False
            )
            fill_bilinear(up)
            setattr(self, f"up_{i}", up)
            setattr(self, f"node_{i}", DeformConv(out_ch, out_ch))

    def forward(self, layers: list[Tensor], start: int, end: int) -> None:
        for i in range(start + 1, end):
            j = i - start
            up = getattr(self, f"up_{j}")(getattr(self, f"proj_{j}")(layers[i]))
            layers[i] = getattr(self, f"node_{j}")(up + layers[i - 1])


class DLAUp(nn.Module):
    """Deep aggregation of the stride 4..32 maps; returns the maps at strides 4, 8, 16, 32."""

    def __init__(self, start: int, channels: list[int], scales: list[int]) -> None:
        super().__init__()
        self.start = start
        in_channels = list(channels)
        scales = list(scales)
        for i in range(len(channels) - 1):
            j = len(channels) - i - 2
            ups = [s // scales[j] for s in scales[j:]]
            setattr(self, f"ida_{i}", IDAUp(channels[j], in_channels[j:], ups))
            scales[j + 1 :] = [scales[j]] * (len(scales) - j - 1)
            in_channels[j + 1 :] = [channels[j]] * (len(in_channels) - j - 1)

    def forward(self, layers: list[Tensor]) -> list[Tensor]:
        layers = list(layers)
        out = [layers[-1]]
        for i in range(len(layers) - self.start - 1):
            getattr(self, f"ida_{i}")(layers, len(layers) - i - 2, len(layers))
            out.insert(0, layers[-1])
        return out


class DLASegBody(nn.Module):
    """DLA-34 + DLAUp + IDAUp: (N, 3, H, W) -> [(N, 64, H/4, W/4)] (H, W multiples of 32)."""

    first_level = 2  # stride 4
    last_level = 5

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        self.base = DLA()
        if pretrained:
            load_dla34_imagenet(self.base)
        ch = list(self.base.channels[self.first_level :])
        scales = [2**i for i in range(len(ch))]
        self.dla_up = DLAUp(self.first_level, ch, scales)
        n = self.last_level - self.first_level
        self.ida_up = IDAUp(ch[0], ch[:n], [2**i for i in range(n)])
        self.out_channels = ch[0]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = self.dla_up(self.base(x))
        y = feats[: self.last_level - self.first_level]
        self.ida_up(y, 0, len(y))
        return [y[-1]]


def load_dla34_imagenet(base: DLA) -> None:
    """Load the DLA authors' ImageNet weights from the torch hub cache (never downloads)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / DLA34_IMAGENET_FILE
    if not path.is_file():
        raise UserError(
            f"dla34 pretrained=True: ImageNet weights not found at {path}; download {DLA34_IMAGENET_URL} "
            f"into that directory (or set TORCH_HOME), or build without pretrained."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path}: cannot read DLA-34 ImageNet weights ({exc})") from exc
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = base.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{path}: not DLA-34 weights: missing {missing[:5]}, unexpected {unexpected[:5]}")


@NETWORKS.register("dla34")
def build_dla34(
    heads: dict[str, int],
    head_conv: int | None = None,
    pretrained: bool = False,
    heatmap_heads: tuple[str, ...] = ("heatmap",),
) -> CenterNetModel:
    """``dla34``: DLA-34 + deformable DLAUp/IDAUp, 64-channel stride-4 output; head_conv 256."""
    body = DLASegBody(pretrained=pretrained)
    hc = 256 if head_conv is None else head_conv
    return CenterNetModel(body, body.out_channels, heads, hc, heatmap_heads=heatmap_heads)
