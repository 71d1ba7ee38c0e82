"""The network and its task's loss as one module (what ``DistributedDataParallel`` wraps, so the
loss parts come out of ``forward`` and gradients are synchronised), and frozen batch norm."""

from __future__ import annotations

import torch
from torch import nn

from .models.base import module_key


class LossModel(nn.Module):
    """The network and its task's loss as one module: ``forward(x, targets)`` -> loss parts.

    x: (B, 3, H, W) normalised images; targets: the collated task targets. Returns
    ``{"loss": weighted total, part: unweighted part}``, each averaged over the network's
    stacks (intermediate supervision of hourglass). The network runs under autocast when
    ``amp``; losses are computed in float32.
    """

    def __init__(self, net: nn.Module, task, amp: bool = False) -> None:
        super().__init__()
        self.net, self.task, self.amp = net, task, amp
        init = task.loss_parameters()  # learned loss scalars (e.g. uncertainty weights), by name
        self.param_names = {module_key(k): k for k in init}
        self.loss_params = nn.ParameterDict(
            {module_key(k): nn.Parameter(torch.tensor(float(v))) for k, v in init.items()}
        )

    def named_loss_params(self) -> dict[str, torch.Tensor]:
        return {self.param_names[k]: v for k, v in self.loss_params.items()}

    def forward(self, x: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.autocast(x.device.type, enabled=self.amp):
            stacks = self.net.forward_stacks(x)
        params = self.named_loss_params()
        losses: dict[str, torch.Tensor] = {}
        for preds in stacks:
            for k, v in self.task.loss({k: p.float() for k, p in preds.items()}, targets, params).items():
                losses[k] = losses.get(k, 0) + v / len(stacks)
        return losses


def freeze_batchnorm(model: nn.Module) -> None:
    """Batch-norm layers to eval mode: running statistics used and never updated (affine kept trainable)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
