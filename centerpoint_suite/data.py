"""From a SampleSource to batches: augmentation + targets in DataLoader workers, collation.

Per-sample randomness (affine, flip, colour) comes from ``numpy.random.default_rng((seed,
epoch, index))``: a run is reproducible whatever the number of workers or processes, and
resumes exactly in the middle of an epoch. Training items are fetched by key (epoch, index)
(see ``sampling.GlobalBatchSampler``), so persistent workers need no notice of the epoch.
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
    sample_colour_params,
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
    colour: np.ndarray | None = None  # (9,) colour augmentation parameters (training only)


class TrainDataset(Dataset):
    """Random affine + flip, warp, task targets and colour parameters; indexed by (epoch, index).
    The colour augmentation itself runs per batch (``augment_normalize_batch``)."""

    def __init__(
        self, source: SampleSource, task: Task, input_hw: tuple[int, int], aug: AugmentConfig, seed: int = 0
    ) -> None:
        self.source, self.task, self.input_hw, self.aug, self.seed = source, task, tuple(input_hw), aug, seed
        self.can_flip = task.flip_pairs() is not None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        epoch, index = key
        sample = self.source[index]
        rng = np.random.default_rng((self.seed, epoch, index))
        m, flipped = sample_train_affine(rng, sample.hw, self.input_hw, self.aug, self.can_flip)
        colour = sample_colour_params(rng) if self.aug.colour else None
        image = warp_image(sample.image, m, self.input_hw)
        out_hw = (self.input_hw[0] // STRIDE, self.input_hw[1] // STRIDE)
        geometry = OutputGeometry((m / STRIDE).astype(np.float32), out_hw, flipped)
        targets = self.task.build_targets(sample, geometry)
        return Item(image, targets, output_inverse(m), sample.image_id, sample.hw, sample.calib, colour)


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
    return prepare_warped(sample, task, m, in_hw, with_targets)


def prepare_warped(
    sample: Sample, task: Task, m: np.ndarray, in_hw: tuple[int, int], with_targets: bool = False
) -> Item:
    """The sample warped by ``m`` (original pixels -> input pixels) into ``in_hw``; with
    ``with_targets`` also the task targets of that geometry (oracle)."""
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
    colour: torch.Tensor | None = None  # (B, 9) colour augmentation parameters, training only

    def to(self, device: torch.device) -> Batch:
        t = None if self.targets is None else {k: v.to(device, non_blocking=True) for k, v in self.targets.items()}
        return Batch(self.images.to(device, non_blocking=True), t, self.meta, self.colour)


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
    colour = torch.from_numpy(np.stack([it.colour for it in items])) if items[0].colour is not None else None
    return Batch(images, targets, meta, colour)
