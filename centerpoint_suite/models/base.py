"""The model shape shared by every network: a body producing stride-4 features, plus heads.

``CenterNetModel.forward(x)`` returns the raw (pre-sigmoid) maps of the last stack,
``{head name: (N, C, H/4, W/4)}``; ``forward_stacks(x)`` returns one such dict per stack
(hourglass has 2, every other network 1) for intermediate supervision.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import winograd_train

HEATMAP_BIAS = -2.19  # sigmoid(-2.19) ~= 0.1: the focal-loss prior of CornerNet / CenterNet


def make_head(in_channels: int, out_channels: int, head_conv: int, heatmap: bool) -> nn.Sequential:
    """3x3 conv (head_conv channels) -> ReLU -> 1x1 conv; a single 1x1 conv when head_conv <= 0.

    Heatmap heads start with bias -2.19; regression heads with zero bias.
    """
    if head_conv > 0:
        head = nn.Sequential(
            nn.Conv2d(in_channels, head_conv, 3, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_conv, out_channels, 1, bias=True),
        )
    else:
        head = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=True))
    last = head[-1]
    if heatmap:
        nn.init.constant_(last.bias, HEATMAP_BIAS)
    else:
        for m in head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
    return head


def module_key(head: str) -> str:
    """Head name -> a ModuleDict key (module names cannot hold dots: ``boxes2d.heatmap``)."""
    return head.replace(".", "__")


def _rest(head: nn.Sequential, y: Tensor) -> Tensor:
    """``head`` applied to ``y``, the output of its first layer."""
    for layer in list(head)[1:]:
        y = layer(y)
    return y


class CenterNetModel(nn.Module):
    """body(x) -> list of stride-4 feature maps (one per stack), then the same heads per stack.

    body:         module returning ``list[Tensor]`` of (N, feat_channels, H/4, W/4).
    heads:        {head name: channels}; names may hold dots (``boxes2d.heatmap`` in composite tasks).
    head_conv:    hidden channels of each head (<= 0: a single 1x1 conv).
    num_stacks:   number of feature maps ``body`` returns.
    heatmap_heads: the heads that are keypoint heatmaps (bias -2.19), as the task declares them.
    """

    def __init__(
        self,
        body: nn.Module,
        feat_channels: int,
        heads: dict[str, int],
        head_conv: int,
        num_stacks: int = 1,
        heatmap_heads: tuple[str, ...] = ("heatmap",),
    ) -> None:
        super().__init__()
        unknown = set(heatmap_heads) - set(heads)
        if unknown:
            raise ValueError(f"heatmap heads {sorted(unknown)} are not among the heads {list(heads)}")
        self.body = body
        self.head_names = tuple(heads)
        self.heads_spec = dict(heads)
        self.heatmap_heads = tuple(heatmap_heads)
        self.num_stacks = num_stacks
        self.heads = nn.ModuleList(
            nn.ModuleDict(
                {
                    module_key(name): make_head(feat_channels, ch, head_conv, name in self.heatmap_heads)
                    for name, ch in heads.items()
                }
            )
            for _ in range(num_stacks)
        )
        #: per stack, the heads' first layers as one call (``optimize.StackedHeadStarts``): set on
        #: the prediction copy by ``optimize.prepare_for_inference``, never on a trained network
        self.head_starts: nn.ModuleList | None = None

    def _apply_heads(self, feat: Tensor, stack: int) -> dict[str, Tensor]:
        modules = [self.heads[stack][module_key(name)] for name in self.head_names]
        if self.head_starts is not None:  # prediction on CPU: one stacked conv
            firsts = self.head_starts[stack](feat)
        else:  # training on CPU: one stacked conv
            firsts = winograd_train.merged_first_convs(feat, modules)
        if firsts is None:
            return {name: head(feat) for name, head in zip(self.head_names, modules)}
        return {name: _rest(head, y) for name, head, y in zip(self.head_names, modules, firsts)}

    def forward_stacks(self, x: Tensor) -> list[dict[str, Tensor]]:
        feats = self.body(x)
        return [self._apply_heads(f, i) for i, f in enumerate(feats)]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.num_stacks == 1:
            return self.forward_stacks(x)[0]
        feats = self.body(x)
        return self._apply_heads(feats[-1], self.num_stacks - 1)
