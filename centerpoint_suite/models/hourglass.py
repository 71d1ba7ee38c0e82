"""Hourglass-104 (2 stacks, from CornerNet; the original ``large_hourglass``), as ``hourglass104``.

``pre``: 7x7 conv stride 2 (128 ch) + residual stride 2 (256 ch) -> stride 4.
Each stack: a 5-level hourglass ``kps[i]`` (dims 256, 256, 384, 384, 384, 512; residual
blocks 2, 2, 2, 2, 2, 4; downsampling by stride-2 residuals, upsampling by nearest x2 and
addition), then ``cnvs[i]`` (3x3 conv-BN-ReLU, 256 ch) whose output feeds the heads of
stack i. Between stacks: ``inter = inters[i](relu(inters_[i](inter) + cnvs_[i](cnv)))``.

The body returns one 256-channel stride-4 map per stack; training supervises both
(``forward_stacks``), inference reads the last (``forward``). Default head_conv 256.
Parameter names equal the original network's (heads are renamed by the converter).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import UserError
from ..registry import NETWORKS
from .base import CenterNetModel

HG104_DIMS = (256, 256, 384, 384, 384, 512)
HG104_MODULES = (2, 2, 2, 2, 2, 4)


class ConvBNReLU(nn.Module):
    """k x k conv (stride) -> BN -> ReLU (keys ``conv``, ``bn``)."""

    def __init__(self, k: int, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    """3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, + skip (1x1 conv + BN when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu(y + self.skip(x))


def _residuals(cin: int, cout: int, n: int, stride: int = 1) -> nn.Sequential:
    """n residuals, the first changing cin -> cout (with stride)."""
    return nn.Sequential(Residual(cin, cout, stride), *(Residual(cout, cout) for _ in range(n - 1)))


def _residuals_rev(cin: int, cout: int, n: int) -> nn.Sequential:
    """n residuals, the last changing cin -> cout."""
    return nn.Sequential(*(Residual(cin, cin) for _ in range(n - 1)), Residual(cin, cout))


class HourglassModule(nn.Module):
    """One recursive hourglass level: up1(x) + upsample(low3(low2(low1(x)))), low1 at stride 2."""

    def __init__(self, dims: tuple[int, ...], modules: tuple[int, ...]) -> None:
        super().__init__()
        cur, nxt = dims[0], dims[1]
        self.up1 = _residuals(cur, cur, modules[0])
        self.low1 = _residuals(cur, nxt, modules[0], stride=2)
        self.low2: nn.Module = (
            HourglassModule(dims[1:], modules[1:]) if len(dims) > 2 else _residuals(nxt, nxt, modules[1])
        )
        self.low3 = _residuals_rev(nxt, cur, modules[0])
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(x))))


class HourglassBody(nn.Module):
    """Stacked hourglass trunk: (N, 3, H, W) -> num_stacks maps (N, cnv_dim, H/4, W/4).

    H and W must be multiples of 128 (5 halvings after the stride-4 stem).
    """

    def __init__(
        self,
        num_stacks: int = 2,
        dims: tuple[int, ...] = HG104_DIMS,
        modules: tuple[int, ...] = HG104_MODULES,
        cnv_dim: int = 256,
    ) -> None:
        super().__init__()
        cur = dims[0]
        self.num_stacks = num_stacks
        self.pre = nn.Sequential(ConvBNReLU(7, 3, 128, stride=2), Residual(128, cur, stride=2))
        self.kps = nn.ModuleList(HourglassModule(dims, modules) for _ in range(num_stacks))
        self.cnvs = nn.ModuleList(ConvBNReLU(3, cur, cnv_dim) for _ in range(num_stacks))
        self.inters = nn.ModuleList(Residual(cur, cur) for _ in range(num_stacks - 1))
        self.inters_ = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cur, cur, 1, bias=False), nn.BatchNorm2d(cur)) for _ in range(num_stacks - 1)
        )
        self.cnvs_ = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cnv_dim, cur, 1, bias=False), nn.BatchNorm2d(cur)) for _ in range(num_stacks - 1)
        )
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = cnv_dim

    def forward(self, x: Tensor) -> list[Tensor]:
        inter = self.pre(x)
        outs = []
        for i in range(self.num_stacks):
            cnv = self.cnvs[i](self.kps[i](inter))
            outs.append(cnv)
            if i < self.num_stacks - 1:
                inter = self.inters[i](self.relu(self.inters_[i](inter) + self.cnvs_[i](cnv)))
        return outs


@NETWORKS.register("hourglass104")
def build_hourglass104(
    heads: dict[str, int],
    head_conv: int | None = None,
    pretrained: bool = False,
    heatmap_heads: tuple[str, ...] = ("heatmap",),
) -> CenterNetModel:
    """``hourglass104``: 2-stack Hourglass-104, 256-channel stride-4 maps; head_conv 256."""
    if pretrained:
        raise UserError(
            "hourglass104 has no ImageNet weights (the original starts from CornerNet's COCO model); "
            "use load_original_checkpoint with ctdet_coco_hg.pth / multi_pose_hg_3x.pth, or build without pretrained"
        )
    body = HourglassBody()
    hc = 256 if head_conv is None else head_conv
    return CenterNetModel(body, body.out_channels, heads, hc, num_stacks=2, heatmap_heads=heatmap_heads)
