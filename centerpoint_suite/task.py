"""The Task protocol: everything the trainer, evaluator and CLI need from a task plugin.

A task is a frozen dataclass registered in ``TASKS``; its fields are its hyper-parameters.
The core never looks inside a task; a new task is one package under ``tasks/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

from .types import BatchMeta, OutputGeometry, Predictions, Sample


@runtime_checkable
class SampleSource(Protocol):
    """A readable dataset split: random access to Samples plus what its evaluator needs."""

    classes: tuple[str, ...]
    root: Path

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


@runtime_checkable
class Task(Protocol):
    name: ClassVar[str]
    classes: tuple[str, ...]
    max_objects: int

    def heads(self) -> dict[str, int]:
        """Output heads this task needs: name -> channels (``heatmap`` first)."""

    def flip_pairs(self) -> tuple[tuple[int, int], ...] | None:
        """Left/right index pairs swapped by a horizontal flip; None when flip augmentation is unsafe."""

    def build_targets(self, sample: Sample, geometry: OutputGeometry) -> dict[str, np.ndarray]:
        """Target maps and per-object arrays for one sample (numpy, fixed shapes for collation)."""

    def loss(self, preds: dict[str, Tensor], targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss ``"loss"`` plus its unweighted parts, each a scalar tensor."""

    def decode(self, preds: dict[str, Tensor], meta: BatchMeta, k: int = 100) -> list[Predictions]:
        """Raw (pre-sigmoid) maps of a batch -> detections in original image coordinates.

        Always ``to_predictions(numpy(decode_tensors(preds, k)), meta)``: one decode path for
        Python inference and for an exported graph."""

    def decode_tensors(self, preds: dict[str, Tensor], k: int = 100, scale: float = 1.0) -> dict[str, Tensor]:
        """The exportable half of ``decode``: raw maps (B, C, H, W) -> the top-``k`` detections.

        Pure torch: fixed K (``k`` must not exceed the heatmap's C * H * W), tensors only, no
        numpy and no Python loop over detections, so it traces into an ONNX graph. Keys and
        shapes are ``detection_fields()``; always "boxes" (B, K, 4), "scores" (B, K) and
        "classes" (B, K) int64. x, y coordinates are in output cells times ``scale``
        (1: output cells; ``STRIDE``: network-input pixels)."""

    def detection_fields(self) -> dict[str, str]:
        """``decode_tensors`` keys -> one-line description (shape, dtype, meaning, units); the
        description of a field holding x, y coordinates says "in {frame}" (filled in by the
        user of the description: "output cells", "network-input pixels")."""

    def to_predictions(self, dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
        """The other half of ``decode``: ``decode_tensors`` output as numpy (coordinates in
        output cells times ``scale``) -> Predictions in original image coordinates, through
        ``meta`` (inverse affine, image sizes, calibration)."""

    def merge_flip(self, preds: dict[str, Tensor], flipped: dict[str, Tensor]) -> dict[str, Tensor]:
        """Combine maps of an image and of its mirror image (flip test); returns raw maps."""

    def oracle_maps(self, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        """Targets rewritten as the raw maps a perfect network would output."""

    def open_dataset(self, root: Path, split: str) -> SampleSource:
        """Reader for a dataset folder of this task's format."""

    def default_data(self, cache_dir: Path) -> Path:
        """Generate (once) the built-in synthetic dataset and return its root."""

    def evaluate(self, source: SampleSource, predictions: list[Predictions], out_dir: Path | None) -> dict[str, float]:
        """Score predictions against the ground truth of ``source``; flat metric keys."""

    def write_results(self, source: SampleSource | None, predictions: list[Predictions], path: Path) -> None:
        """Write predictions in the field's own result format (COCO json, KITTI txt)."""

    def draw(self, image: np.ndarray, predictions: Predictions, score_threshold: float) -> np.ndarray:
        """Annotated copy of a BGR image."""

    def primary_metric(self) -> str:
        """Metric key used to pick the best checkpoint."""


def task_to_dict(task: Any) -> dict[str, Any]:
    """Serialisable description of a task (name + dataclass fields) for checkpoints."""
    from dataclasses import asdict

    return {"name": type(task).name, "params": asdict(task)}
