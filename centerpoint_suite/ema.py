"""Exponential moving average of a network's weights (``train.ema_decay``), on torch's
``AveragedModel``.

The first update copies the weights; update n >= 1 then moves the average towards them,
``avg <- d * avg + (1 - d) * w`` with ``d = min(decay, (1 + n) / (10 + n))``, so early on, when
the average has little history, it follows the weights closely. Batch-norm running statistics
are averaged the same way; integer buffers (the batch counter) are copied. Validation,
``best.pth`` / ``last.pth``'s deployable weights, and with them eval, predict and export, use
the average; the trained weights travel beside it for exact resume.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ramped_ema(decay: float):
    """The ``multi_avg_fn`` of ``AveragedModel``: one update of every tensor of one dtype."""

    @torch.no_grad()
    def update(average: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        if not average[0].is_floating_point():
            torch._foreach_copy_(average, current)
            return
        done = int(n)
        torch._foreach_lerp_(average, current, 1.0 - min(decay, (1 + done) / (10 + done)))

    return update


class WeightAverage:
    """The moving average of ``net``'s parameters and buffers; ``net`` (a copy) holds it."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay={decay}: must be in (0, 1), e.g. 0.999 (0 turns the average off)")
        self.decay = decay
        self.averaged = AveragedModel(net, multi_avg_fn=ramped_ema(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def net(self) -> nn.Module:
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    def update(self, net: nn.Module) -> None:
        """One step of the average towards ``net`` (the architecture given at construction)."""
        self.averaged.update_parameters(net)

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Restore an average saved as its network's ``weights`` after ``updates`` updates."""
        self.net.load_state_dict(weights)
        self.averaged.n_averaged.fill_(updates)
