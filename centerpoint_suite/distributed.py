"""Running under PyTorch's distributed engine (``torchrun``): one process per device, any number
of machines. Everything here is a no-op in a plain single process, so the trainer has one code
path.

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR / MASTER_PORT); the backend
is nccl when the process trains on a GPU and gloo on the CPU. Collectives used by the trainer:

- ``all_reduce_sum``: per-step loss parts and stop flags, object counts for loss normalisation;
- ``gather_to_main``: validation predictions of every rank's shard to rank 0 for the evaluator;
- ``broadcast_from_main``: the metrics rank 0 computed, so every rank takes the same decisions.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .errors import UserError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the run.

    rank / world_size: global process index and count; local_rank / local_world_size: on this machine.
    device: the device this process trains on (``cuda:<local_rank>`` on GPUs).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group when started by ``torchrun`` with more than one process.

    device: the device the experiment asks for (cpu or cuda); on cuda each process takes
    ``cuda:<LOCAL_RANK>``. A single process returns a disabled context and starts nothing.
    """
    if not launched_by_torchrun():
        return DistContext(device=device)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local_rank}: this machine has {torch.cuda.device_count()} GPU(s); "
                "start at most that many processes per node (torchrun --nproc-per-node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(rank, world, local_rank, local_world, device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over all processes (a new tensor; ``t`` itself in a single process)."""
    if world_size() == 1:
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def global_mean_count(count: Tensor) -> Tensor:
    """Normaliser of a loss summed over this process's samples: the count over all processes
    divided by the number of processes.

    DDP averages gradients over processes, so ``local_sum / global_mean_count`` gives each step
    the gradient of ``global_sum / global_count``: the objective of one process with the whole
    global batch, whatever the process count. No gradient flows through the count.
    """
    n = world_size()
    if n == 1:
        return count
    return all_reduce_sum(count.detach().float()) / n


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` as a list on rank 0 (rank order), None on the other ranks."""
    if world_size() == 1:
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
