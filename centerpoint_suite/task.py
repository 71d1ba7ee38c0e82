"""The Task protocol: everything the trainer, evaluator and CLI need from a task plugin.

A task is a frozen dataclass registered in ``TASKS``; its fields are its hyper-parameters. It
subclasses ``Task`` explicitly, which gives it the defaults below. The core never looks inside
a task (no ``hasattr``): every method it calls is listed here. A new task is one package under
``tasks/`` plus one import line in ``centerpoint_suite/__init__.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

from .errors import UserError
from .types import BatchMeta, OutputGeometry, Predictions, Sample


@runtime_checkable
class SampleSource(Protocol):
    """A readable dataset split: random access to Samples plus what its evaluator needs.

    ``read(index, image)`` takes an image another reader already decoded (composite tasks read
    each image once); ``image_id(index)`` names an item without reading it.
    """

    classes: tuple[str, ...]
    root: Path

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...

    def image_id(self, index: int) -> Any: ...

    def read(self, index: int, image: np.ndarray | None = None) -> Sample: ...


@runtime_checkable
class Task(Protocol):
    """name: registry name; classes: heatmap channel names; max_objects: object slots per image.

    real_config: the config in configs/ of the task's standard recipe on real data (None: none).
    dataset_format: the dataset layout its reader reads ("coco", "kitti"): tasks of one format can
    share a dataset and so compose on one network (``boxes2d+pose2d``).
    """

    name: ClassVar[str]
    real_config: ClassVar[str | None] = None
    dataset_format: ClassVar[str] = "coco"
    classes: tuple[str, ...]
    max_objects: int

    # -- network ---------------------------------------------------------------------------
    def heads(self) -> dict[str, int]:
        """Output heads this task needs: name -> channels."""

    def heatmap_heads(self) -> tuple[str, ...]:
        """The heads that are keypoint heatmaps (focal loss; their bias starts at the -2.19 prior)."""
        return ("heatmap",)

    # -- data ------------------------------------------------------------------------------
    def open_dataset(self, root: Path, split: str | None) -> SampleSource:
        """Reader for a dataset folder of this task's format."""

    def default_data(self, cache_dir: Path) -> Path:
        """Generate (once) the built-in synthetic dataset and return its root."""

    def with_classes(self, classes: tuple[str, ...]) -> Task:
        """This task with another class list (heatmap channels)."""
        return replace(self, classes=tuple(classes))

    def for_source(self, source: SampleSource) -> Task:
        """This task with what the config left open filled from the training data (by default:
        an empty class list becomes the source's classes)."""
        return self if self.classes else self.with_classes(tuple(source.classes))

    def flip_pairs(self) -> tuple[tuple[int, int], ...] | None:
        """Left/right index pairs swapped by a horizontal flip; None when flip augmentation is unsafe."""

    def calibration(self, image_hw: tuple[int, int], path: Path | None = None) -> np.ndarray | None:
        """Camera matrix for an image without one (predict): from ``path`` (``--calib``) or the
        task's default; None for tasks that need no calibration."""
        if path is not None:
            raise UserError(f"--calib {path}: task {self.name} takes no calibration")
        return None

    # -- training --------------------------------------------------------------------------
    def build_targets(self, sample: Sample, geometry: OutputGeometry) -> dict[str, np.ndarray]:
        """Target maps and per-object arrays for one sample (numpy, fixed shapes for collation)."""

    def loss_parameters(self) -> dict[str, float]:
        """Learned scalars of the loss (name -> initial value), trained with the network and
        saved in checkpoints; given back to ``loss`` as ``params``."""
        return {}

    def loss(
        self, preds: dict[str, Tensor], targets: dict[str, Tensor], params: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Weighted loss ``"loss"`` plus its unweighted parts, each a scalar tensor."""

    # -- inference -------------------------------------------------------------------------
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

    def merges_scales(self) -> bool:
        """True: detections of several test scales merge by soft-NMS / NMS on their 2D boxes,
        per class, every per-detection extra following its box (multi-scale testing).
        False: multi-scale testing is refused for this task."""
        return False

    # -- results ---------------------------------------------------------------------------
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
    from .config import to_dict

    return to_dict(task)
