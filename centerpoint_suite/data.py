"""From a SampleSource to batches: augmentation + targets in DataLoader workers, collation.

Per-sample randomness comes from ``numpy.random.default_rng((seed, epoch, index))``, so a
run is reproducible whatever the number of workers and each worker draws different numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .task import SampleSource, Task
from .transforms import (
    STRIDE,
    AugmentConfig,
    EvalResize,
    eval_affine,
    output_inverse,
    sample_train_affine,
    warp_image,
)
from .types import BatchMeta, OutputGeometry, Sample


@dataclass
class Item:
    image: np.ndarray  # uint8 (h, w, 3) BGR network input
    targets: dict[str, np.ndarray] | None
    inverse: np.ndarray  # (2, 3) output cells -> original pixels
    image_id: int | str
    image_hw: tuple[int, int]
    calib: np.ndarray | None


class TrainDataset(Dataset):
    """Random affine + flip, warp, task targets. Colour augmentation happens per batch."""

    def __init__(
        self, source: SampleSource, task: Task, input_hw: tuple[int, int], aug: AugmentConfig, seed: int = 0
    ) -> None:
        self.source, self.task, self.input_hw, self.aug, self.seed = source, task, tuple(input_hw), aug, seed
        self.epoch = 0
        self.can_flip = task.flip_pairs() is not None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Item:
        sample = self.source[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        m, flipped = sample_train_affine(rng, sample.hw, self.input_hw, self.aug, self.can_flip)
        image = warp_image(sample.image, m, self.input_hw)
        out_hw = (self.input_hw[0] // STRIDE, self.input_hw[1] // STRIDE)
        geometry = OutputGeometry((m / STRIDE).astype(np.float32), out_hw, flipped)
        targets = self.task.build_targets(sample, geometry)
        return Item(image, targets, output_inverse(m), sample.image_id, sample.hw, sample.calib)


class EvalDataset(Dataset):
    """Test-time affine (letterbox or keep_res); with ``with_targets`` also the task targets (oracle)."""

    def __init__(self, source: SampleSource, task: Task, resize: EvalResize, with_targets: bool = False) -> None:
        self.source, self.task, self.resize, self.with_targets = source, task, resize, with_targets

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Item:
        return prepare_eval(self.source[index], self.task, self.resize, self.with_targets)


def prepare_eval(sample: Sample, task: Task, resize: EvalResize, with_targets: bool = False) -> Item:
    m, in_hw = eval_affine(sample.hw, resize)
    image = warp_image(sample.image, m, in_hw)
    targets = None
    if with_targets:
        geometry = OutputGeometry((m / STRIDE).astype(np.float32), (in_hw[0] // STRIDE, in_hw[1] // STRIDE))
        targets = task.build_targets(sample, geometry)
    return Item(image, targets, output_inverse(m), sample.image_id, sample.hw, sample.calib)


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (B, H, W, 3) BGR
    targets: dict[str, torch.Tensor] | None
    meta: BatchMeta

    def to(self, device: torch.device) -> Batch:
        t = None if self.targets is None else {k: v.to(device, non_blocking=True) for k, v in self.targets.items()}
        return Batch(self.images.to(device, non_blocking=True), t, self.meta)


def collate(items: list[Item]) -> Batch:
    images = torch.from_numpy(np.stack([it.image for it in items]))
    targets = None
    if items[0].targets is not None:
        targets = {k: torch.from_numpy(np.stack([it.targets[k] for it in items])) for k in items[0].targets}
    calibs = [it.calib for it in items]
    calib = np.stack(calibs).astype(np.float32) if all(c is not None for c in calibs) else None
    meta = BatchMeta(
        np.stack([it.inverse for it in items]),
        [it.image_id for it in items],
        [it.image_hw for it in items],
        calib,
    )
    return Batch(images, targets, meta)
