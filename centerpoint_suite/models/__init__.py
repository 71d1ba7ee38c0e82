"""Networks: ``build_network(arch, heads)`` and ``list_networks()``.

Each network module registers its builders in ``NETWORKS`` on import; the imports below
are the complete list (no scanning).
"""

from __future__ import annotations

from ..registry import NETWORKS
from . import (
    dla,  # noqa: F401  (registers "dla34")
    hourglass,  # noqa: F401  (registers "hourglass104")
    resnet,  # noqa: F401  (registers "res18/34/50/101", "resdcn18/34/50/101")
    small,  # noqa: F401  (registers "small")
)
from .base import CenterNetModel, make_head

__all__ = ["CenterNetModel", "build_network", "list_networks", "make_head"]


def build_network(
    arch: str,
    heads: dict[str, int],
    head_conv: int | None = None,
    pretrained: bool = False,
    heatmap_heads: tuple[str, ...] = ("heatmap",),
) -> CenterNetModel:
    """Build a registered network with the given heads (raw maps out, stride 4).

    head_conv: hidden channels of each head; None takes the network's default
    (64 for ResNets and ``small``, 256 for DLA-34 and Hourglass-104, as the original model zoo).
    pretrained: initialise the backbone from ImageNet weights (needs the weights in the
    torch hub cache or network access; never happens by default).
    heatmap_heads: the heads that are heatmaps (``Task.heatmap_heads()``): their bias starts at -2.19.
    """
    return NETWORKS.get(arch)(heads, head_conv=head_conv, pretrained=pretrained, heatmap_heads=tuple(heatmap_heads))


def list_networks() -> list[str]:
    return NETWORKS.names()
