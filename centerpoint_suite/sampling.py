"""Which samples each process trains on, step by step: a deterministic, resumable split of every
global batch over the processes.

``train.batch_size`` is the global batch. Epoch ``e`` shuffles the dataset with a generator
seeded by (seed, e); global batch ``i`` is ``perm[i * B : (i + 1) * B]`` and process ``r`` of
``n`` takes the contiguous slice ``[r * B / n, (r + 1) * B / n)`` of it. So the union of what the
processes see at step ``i`` is exactly what one process sees at step ``i`` with the same
global batch, and a run resumes at any step of an epoch (``set_epoch(e, start)``).

This replaces ``torch.utils.data.DistributedSampler`` (seed + ``set_epoch`` as there) because
that sampler deals indices round-robin and pads the epoch with repeated samples, so a 2-process
run would not see the 1-process batches, and it cannot start in the middle of an epoch.

Each batch element is a key ``(epoch, index)``: the dataset seeds its per-sample randomness with
(seed, epoch, index), so results do not depend on the number of workers or processes, and
persistent workers need no notice of the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from .errors import UserError
from .task import SampleSource

Key = tuple[int, int]  # (epoch, dataset index)


def steps_per_epoch(num_samples: int, global_batch: int) -> int:
    """Full global batches per epoch (the last partial one is dropped); one batch of all samples
    when the dataset is smaller than the global batch."""
    return max(1, num_samples // global_batch)


class GlobalBatchSampler(Sampler[list[Key]]):
    """Yields this process's share of each global batch of one epoch, as lists of (epoch, index).

    num_samples:  dataset length.
    global_batch: samples per optimisation step over all processes (``train.batch_size``).
    rank / world_size: this process and the process count; the global batch must divide evenly.
    seed:         shuffling seed; epoch ``e`` uses the permutation drawn from (seed, e).
    """

    def __init__(self, num_samples: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0) -> None:
        if num_samples <= 0:
            raise UserError("training split is empty")
        if global_batch <= 0 or global_batch % world_size:
            raise UserError(
                f"train.batch_size={global_batch} is the global batch: it must be a positive multiple of "
                f"the {world_size} processes"
            )
        batch = min(global_batch, num_samples)
        if batch < world_size:
            raise UserError(
                f"the training split has {num_samples} samples, fewer than the {world_size} processes: "
                "every process needs at least one sample per step"
            )
        self.num_samples, self.global_batch, self.rank, self.world_size = num_samples, batch, rank, world_size
        self.seed = seed
        self.steps = steps_per_epoch(num_samples, global_batch)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The epoch to iterate next, beginning at global step ``start`` of it (resume)."""
        if not 0 <= start <= self.steps:
            raise ValueError(f"start step {start} outside 0..{self.steps}")
        self.epoch, self.start = int(epoch), int(start)

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_samples, generator=g)

    def shares(self, step_batch: torch.Tensor) -> list[torch.Tensor]:
        """Split one global batch into the processes' contiguous slices (sizes differ by at most one)."""
        return list(torch.tensor_split(step_batch, self.world_size))

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[Key]]:
        perm = self.permutation(self.epoch)
        b = self.global_batch
        for step in range(self.start, self.steps):
            mine = self.shares(perm[step * b : (step + 1) * b])[self.rank]
            yield [(self.epoch, int(i)) for i in mine]


class ShardSource:
    """Every ``world``-th item of a source, starting at ``rank`` (validation shards)."""

    def __init__(self, source: SampleSource, rank: int, world: int) -> None:
        self.base, self.indices = source, range(rank, len(source), world)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]

    def image_id(self, i: int):
        return self.base.image_id(self.indices[i])

    def read(self, i: int, image=None):
        return self.base.read(self.indices[i], image)

    def __getattr__(self, name: str):
        return getattr(self.base, name)
