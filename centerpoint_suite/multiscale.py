"""Multi-scale testing: the input of each test scale, batches of one scale, and the merge of
the detections of all scales (soft-NMS / NMS per class, then the top K per image).

The input of an image at scale ``s`` (``s == 1`` is exactly the single-scale input):

- ``fixed``:    the whole image letterboxed into ``input_hw * s``, each side rounded to a
                multiple of 32 (at least 32). Every image of a scale has that size, so a
                scale's images run through the network as one batch. (The original's
                ``--fix_res`` instead zooms the image by ``s`` inside an unchanged input,
                cropping it at ``s > 1``.)
- ``keep_res``: the image zoomed by ``s`` (to ``int(h s) x int(w s)``, as the original resizes)
                and padded like keep_res: ``(int(h s) | pad) + 1``, centred at its middle.

Each scale is one affine warp of the original image (one interpolation; the original
resizes, then warps), so decode maps detections straight back to original pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from .data import Batch, Item, collate, prepare_eval, prepare_warped
from .errors import UserError
from .geometry import center_scale_affine
from .nms import MergeSettings, soft_nms
from .task import SampleSource, Task
from .transforms import EvalResize, eval_affine
from .types import Predictions, Sample

MULTIPLE = 32  # fixed-mode inputs of other scales are rounded to this (the networks' total stride)


def parse_scales(text: str, option: str = "--test-scales") -> tuple[float, ...]:
    """``"0.5,0.75,1"`` -> (0.5, 0.75, 1.0); a UserError naming the option on bad input."""
    try:
        scales = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise UserError(f"{option} {text}: expected comma-separated numbers, e.g. 0.5,0.75,1,1.25,1.5") from None
    check_scales(scales, option, text)
    return scales


def check_scales(scales: Sequence[float], option: str = "test.scales", shown: str | None = None) -> None:
    """Scales must be positive, finite and distinct (UserError naming ``option``)."""
    shown = shown if shown is not None else ",".join(map(str, scales))
    if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
        raise UserError(f"{option} {shown or '(empty)'}: scales must be positive numbers")
    if len(set(scales)) != len(scales):
        raise UserError(f"{option} {shown}: a scale is repeated")


def check_task_scales(task: Task, scales: Sequence[float]) -> None:
    """Refuse several scales for a task that cannot merge detections across them."""
    if len(scales) > 1 and not task.merges_scales():
        raise UserError(
            f"--test-scales {','.join(map(str, scales))}: task {type(task).name} has no rule to merge "
            "detections across scales; test it at one scale"
        )


def ordered_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """Scales closest to 1 first (stable): equal scores across scales then keep the native one."""
    return tuple(sorted((float(s) for s in scales), key=lambda s: abs(math.log(s))))


def scaled_input_hw(input_hw: tuple[int, int], scale: float) -> tuple[int, int]:
    """Fixed-mode input size at ``scale``: ``input_hw`` itself at 1, else multiples of 32."""
    if scale == 1.0:
        return tuple(input_hw)
    return tuple(max(MULTIPLE, int(round(v * scale / MULTIPLE)) * MULTIPLE) for v in input_hw)


def scaled_eval_affine(
    image_hw: tuple[int, int], resize: EvalResize, scale: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """(2, 3) map original pixels -> input pixels at ``scale``, and the input (h, w)."""
    if scale == 1.0:
        return eval_affine(image_hw, resize)
    if resize.mode == "fixed":
        return eval_affine(image_hw, EvalResize(scaled_input_hw(resize.input_hw, scale), "fixed", resize.pad))
    if resize.mode != "keep_res":
        raise ValueError(f"unknown test resize mode {resize.mode!r}; use 'fixed' or 'keep_res'")
    h, w = image_hw
    new_h, new_w = int(h * scale), int(w * scale)
    in_h, in_w = (new_h | resize.pad) + 1, (new_w | resize.pad) + 1
    # centre (new_w // 2, new_h // 2) of the zoomed image, in original pixels; window in_w / s -> zoom s
    c = np.array([new_w // 2, new_h // 2], float) / scale
    return center_scale_affine(c, in_w / scale, (in_w, in_h)), (in_h, in_w)


def prepare_scaled(sample: Sample, task: Task, resize: EvalResize, scale: float, with_targets: bool = False) -> Item:
    """``data.prepare_eval`` at one test scale (identical to it at scale 1)."""
    if scale == 1.0:
        return prepare_eval(sample, task, resize, with_targets)
    m, in_hw = scaled_eval_affine(sample.hw, resize, scale)
    return prepare_warped(sample, task, m, in_hw, with_targets)


class MultiScaleEvalDataset(Dataset):
    """Each sample read once and prepared at every scale: item = list of Items, one per scale."""

    def __init__(
        self,
        source: SampleSource,
        task: Task,
        resize: EvalResize,
        scales: Sequence[float],
        with_targets: bool = False,
    ) -> None:
        self.source, self.task, self.resize, self.with_targets = source, task, resize, with_targets
        self.scales = tuple(scales)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> list[Item]:
        sample = self.source[index]
        return [prepare_scaled(sample, self.task, self.resize, s, self.with_targets) for s in self.scales]


def collate_scales(items: list[list[Item]]) -> list[Batch]:
    """B images x S scales -> S batches (one per scale, the images in the same order)."""
    return [collate([per_image[i] for per_image in items]) for i in range(len(items[0]))]


def concat_predictions(preds: Sequence[Predictions]) -> Predictions:
    """Detections of one image from several decodes, in one record (not re-sorted)."""
    first = preds[0]
    return Predictions(
        first.image_id,
        np.concatenate([p.boxes for p in preds]).astype(np.float32, copy=False),
        np.concatenate([p.scores for p in preds]).astype(np.float32, copy=False),
        np.concatenate([p.classes for p in preds]),
        {k: np.concatenate([p.extras[k] for p in preds]) for k in first.extras},
    )


def merge_detections(pred: Predictions, settings: MergeSettings, k: int) -> Predictions:
    """(Soft-)NMS per class on the boxes of one image, every extra following its box; the
    ``k`` best survivors with their decayed scores, sorted descending."""
    keep, scores = soft_nms(pred.boxes, pred.scores, pred.classes, settings)
    out = pred.select(keep[:k])
    out.scores = scores[:k]
    return out


def merge_scales(per_scale: Sequence[Sequence[Predictions]], settings: MergeSettings, k: int) -> list[Predictions]:
    """S lists (one per scale) of B images' Predictions -> B merged Predictions.

    Concatenation follows the scale order, so equal scores keep the earlier scale."""
    return [merge_detections(concat_predictions(list(group)), settings, k) for group in zip(*per_scale)]
