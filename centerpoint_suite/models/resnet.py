"""ResNet-18/34/50/101 + the CenterNet upsampling neck (original ``msra_resnet`` / ``resnet_dcn``).

The trunk is torchvision's ``ResNet`` (same key names as the original: ``conv1``, ``bn1``,
``layer1..4``; the classifier is dropped). The neck takes the stride-32 map back to stride 4
with three upsampling stages in ``deconv_layers``:

- ``res{18,34,50,101}``: 3 x [ConvTranspose2d 4x4 stride 2 pad 1 (no bias), BN, ReLU], 256
  channels each (the original ``msra_resnet``);
- ``resdcn{18,34,50,101}``: 3 x [deformable 3x3 conv (bias), BN, ReLU, ConvTranspose2d 4x4
  stride 2 pad 1 (no bias, bilinear init), BN, ReLU] with 256 / 128 / 64 channels (the
  original ``resnet_dcn``).

Registered as ``res18 ... res101`` and ``resdcn18 ... resdcn101``; default head_conv 64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet

from ..errors import UserError
from ..registry import NETWORKS
from .base import CenterNetModel
from .dcn import ModulatedDeformConv

# depth -> (block class, blocks per stage, torchvision weights enum name)
RESNET_SPECS: dict[int, tuple[type[nn.Module], list[int], str]] = {
    18: (tv_resnet.BasicBlock, [2, 2, 2, 2], "ResNet18_Weights"),
    34: (tv_resnet.BasicBlock, [3, 4, 6, 3], "ResNet34_Weights"),
    50: (tv_resnet.Bottleneck, [3, 4, 6, 3], "ResNet50_Weights"),
    101: (tv_resnet.Bottleneck, [3, 4, 23, 3], "ResNet101_Weights"),
}


def fill_bilinear(up: nn.ConvTranspose2d) -> None:
    """Initialise a ConvTranspose2d as bilinear upsampling (every output channel, first input slot).

    Matches the original ``fill_up_weights``: the same 2-D bilinear kernel is written into
    ``weight[c, 0]`` for every c (used with depthwise deconvolutions, groups = channels).
    """
    w = up.weight.data
    k = w.shape[-1]
    f = math.ceil(k / 2)
    centre = (2 * f - 1 - f % 2) / (2.0 * f)
    r = torch.arange(k, dtype=torch.float64)
    line = 1 - (r / f - centre).abs()
    kernel = (line[:, None] * line[None, :]).to(w.dtype)
    w[:, 0] = kernel


def load_torchvision_weights(trunk: nn.Module, weights_enum_name: str, arch: str) -> None:
    """Load torchvision's ImageNet weights into ``trunk`` (cache first, then download).

    Raises UserError naming the cache file torchvision would need when it is neither cached
    nor downloadable (offline machine).
    """
    from torchvision import models

    weights = getattr(models, weights_enum_name).IMAGENET1K_V1
    fname = weights.url.rsplit("/", 1)[-1]
    cache = torch.hub.get_dir() + "/checkpoints"
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, socket timeouts, HTTP errors: all mean "not available"
        raise UserError(
            f"{arch} pretrained=True: torchvision's ImageNet weights {fname} are not in the torch hub cache "
            f"({cache}/{fname}) and could not be downloaded from {weights.url} ({type(exc).__name__}: {exc}). "
            f"Copy the file there (or set TORCH_HOME), or build without pretrained."
        ) from exc
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise UserError(
            f"{arch}: ImageNet weights {fname} do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def _deconv_stage(cin: int, cout: int) -> list[nn.Module]:
    up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, output_padding=0, bias=False)
    return [up, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class ResNetBody(nn.Module):
    """ResNet trunk + CenterNet neck: (N, 3, H, W) -> [(N, out_channels, H/4, W/4)].

    depth: 18, 34, 50 or 101. dcn: deformable neck (``resnet_dcn``) instead of plain
    deconvolutions (``msra_resnet``). Parameter names equal the original network's.
    """

    def __init__(self, depth: int, dcn: bool, pretrained: bool = False) -> None:
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"ResNet depth {depth}; choose from {sorted(RESNET_SPECS)}")
        block, layers, weights_name = RESNET_SPECS[depth]
        trunk = tv_resnet.ResNet(block, layers)
        if pretrained:
            load_torchvision_weights(trunk, weights_name, f"{'resdcn' if dcn else 'res'}{depth}")
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        cin = 512 * block.expansion
        neck: list[nn.Module] = []
        if dcn:
            for cout in (256, 128, 64):
                neck += [ModulatedDeformConv(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                neck += _deconv_stage(cout, cout)
                fill_bilinear(neck[-3])
                cin = cout
        else:
            for cout in (256, 256, 256):
                neck += _deconv_stage(cin, cout)
                nn.init.normal_(neck[-3].weight, std=0.001)
                cin = cout
        self.deconv_layers = nn.Sequential(*neck)
        self.out_channels = cin

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return [self.deconv_layers(x)]


def _build(depth: int, dcn: bool):
    def builder(
        heads: dict[str, int],
        head_conv: int | None = None,
        pretrained: bool = False,
        heatmap_heads: tuple[str, ...] = ("heatmap",),
    ) -> CenterNetModel:
        body = ResNetBody(depth, dcn, pretrained=pretrained)
        hc = 64 if head_conv is None else head_conv
        return CenterNetModel(body, body.out_channels, heads, hc, heatmap_heads=heatmap_heads)

    name = f"{'resdcn' if dcn else 'res'}{depth}"
    builder.__name__ = f"build_{name}"
    builder.__doc__ = (
        f"``{name}``: ResNet-{depth} + {'deformable ' if dcn else ''}deconvolution neck, stride-4 output "
        f"({64 if dcn else 256} channels); heads default head_conv 64."
    )
    NETWORKS.register(name)(builder)
    return builder


build_res18 = _build(18, False)
build_res34 = _build(34, False)
build_res50 = _build(50, False)
build_res101 = _build(101, False)
build_resdcn18 = _build(18, True)
build_resdcn34 = _build(34, True)
build_resdcn50 = _build(50, True)
build_resdcn101 = _build(101, True)
