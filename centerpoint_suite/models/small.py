"""``small``: the default CPU network (ours, not in the original model zoo).

A compact residual encoder (strides 4..32) with an upsampling path that adds lateral
features back down to stride 4 (FPN/IDA style): 0.92 GFLOPs at 256x256 with 3 heads of
32 channels (res18 + deconvolutions: about 11 GFLOPs), 1.6 M parameters, so that training on
a 2-core CPU finishes in minutes. Most of its cost sits at stride 4 (heads, first stage).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import NETWORKS
from .base import CenterNetModel


def _conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (
            None
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        s = x if self.skip is None else self.skip(x)
        return F.relu(self.conv2(self.conv1(x)) + s, inplace=True)


class SmallBody(nn.Module):
    """Encoder widths ``widths`` at strides 4, 8, 16, 32; decoder to stride 4 with ``out_channels``."""

    def __init__(
        self,
        widths: tuple[int, ...] = (24, 48, 96, 192),
        blocks: tuple[int, ...] = (1, 2, 2, 2),
        out_channels: int = 32,
        stem: int = 16,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, stem, 2), _conv_bn(stem, widths[0], 2))
        stages = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(_Block(cin, w, stride), *(_Block(w, w, 1) for _ in range(n - 1))))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(_conv_bn(w, out_channels, k=1) for w in widths)
        self.smooth = nn.ModuleList(_conv_bn(out_channels, out_channels) for _ in widths[:-1])
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = self.lateral[-1](feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(y, size=feats[i].shape[-2:], mode="nearest")
            y = self.smooth[i](up + self.lateral[i](feats[i]))
        return [y]


@NETWORKS.register("small")
def build_small(
    heads: dict[str, int],
    head_conv: int | None = None,
    pretrained: bool = False,
    heatmap_heads: tuple[str, ...] = ("heatmap",),
) -> CenterNetModel:
    if pretrained:
        raise ValueError("--pretrained: the 'small' network has no ImageNet weights; use res18/res34/res50/res101")
    body = SmallBody()
    hc = 32 if head_conv is None else head_conv
    return CenterNetModel(body, body.out_channels, heads, hc, heatmap_heads=heatmap_heads)
