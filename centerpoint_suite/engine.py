"""Building a model from an experiment, batched inference (flip test, multi-scale), the oracle."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .config import Experiment, TestConfig
from .data import Batch, EvalDataset, Item, collate
from .errors import UserError
from .loading import keep_freed_memory
from .models import build_network
from .models.optimize import prepare_for_inference
from .multiscale import (
    MultiScaleEvalDataset,
    check_scales,
    check_task_scales,
    collate_scales,
    merge_scales,
    ordered_scales,
    prepare_scaled,
)
from .nms import MergeSettings
from .progress import Progress
from .task import SampleSource, Task
from .transforms import EvalResize, Normalization, get_normalization, normalize_batch
from .types import Predictions, Sample

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise UserError(f"--device {name}: {e}") from None


def build_model(exp: Experiment) -> torch.nn.Module:
    """Network for the experiment's task; original CenterNet weights when ``model.weights`` is set."""
    task = exp.task
    model = build_network(exp.model.arch, task.heads(), exp.model.head_conv, exp.model.pretrained, task.heatmap_heads())
    if exp.model.weights:
        from .zoo import load_original_weights

        load_original_weights(model, exp.model.weights)
    return model


def eval_resize(exp: Experiment) -> EvalResize:
    return EvalResize(tuple(exp.data.test_input_hw), exp.data.test_mode)


class Predictor:
    """Model + task + pre-processing: warped uint8 images -> Predictions.

    scales: test scales (see ``multiscale``); with more than one, every image runs at each
    scale (flip test included), each scale's images as one batch, and the detections of all
    scales are merged by ``merge`` (soft-NMS / NMS per class), keeping the ``k`` best.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        task: Task,
        norm: Normalization,
        device: torch.device,
        k: int = 100,
        flip_test: bool = False,
        channels_last: bool = True,
        scales: tuple[float, ...] = (1.0,),
        merge: MergeSettings = MergeSettings(),
    ) -> None:
        check_scales(scales)
        check_task_scales(task, scales)
        # a prediction process allocates the same large maps for every image: keep freed memory for
        # reuse instead of faulting it in again (res18 at 512: its 80-channel 1x1 heatmap conv took
        # 18 ms on fresh pages, 1.7 ms on reused ones); process-wide, as the trainer already does
        keep_freed_memory()
        self.channels_last = channels_last and device.type == "cpu"
        self.model = prepare_for_inference(model.to(device), self.channels_last)  # a folded, fused copy
        self.task, self.norm, self.device, self.k, self.flip_test = task, norm, device, k, flip_test
        self.scales, self.merge = ordered_scales(scales), merge

    @property
    def multi_scale(self) -> bool:
        return len(self.scales) > 1

    @torch.inference_mode()
    def raw_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 (B, H, W, 3) BGR network inputs -> raw maps, under ``inference_mode`` (no autograd
        bookkeeping at all: the maps are only decoded)."""
        x = normalize_batch(images.to(self.device), self.norm)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if not self.flip_test:
            return self.model(x)
        out = self.model(torch.cat([x, x.flip(-1)]))
        b = x.shape[0]
        return self.task.merge_flip({k: v[:b] for k, v in out.items()}, {k: v[b:] for k, v in out.items()})

    def predict_batch(self, batch: Batch) -> list[Predictions]:
        """One prepared batch -> Predictions (single scale; several scales need the original
        images: ``predict_samples`` or ``predict_scales``)."""
        if self.multi_scale:
            raise UserError(
                f"test scales {','.join(map(str, self.scales))}: this caller passes one prepared batch, but "
                "multi-scale prediction needs the original images (Predictor.predict_samples)"
            )
        return self._decode(batch)

    def _decode(self, batch: Batch) -> list[Predictions]:
        return self.task.decode(self.raw_maps(batch.images), batch.meta, self.k)

    def predict_scales(self, batches: list[Batch]) -> list[Predictions]:
        """The same images at each of ``self.scales`` (one Batch per scale, that order) -> merged."""
        return merge_scales([self._decode(b) for b in batches], self.merge, self.k)

    def predict_samples(self, samples: list[Sample], resize: EvalResize) -> list[Predictions]:
        """Samples (original images) -> Predictions, at every test scale (keep_res: one by one)."""
        if resize.mode == "keep_res" and len(samples) > 1:
            return [p for s in samples for p in self.predict_samples([s], resize)]
        batches = collate_scales([[prepare_scaled(s, self.task, resize, sc) for sc in self.scales] for s in samples])
        return self.predict_scales(batches) if self.multi_scale else self._decode(batches[0])

    def predict_source(
        self, source: SampleSource, resize: EvalResize, batch_size: int, workers: int
    ) -> list[Predictions]:
        loader = make_eval_loader(source, self.task, resize, batch_size, workers, scales=self.scales)
        out: list[Predictions] = []
        for batch in Progress(loader, "predict"):
            out.extend(self.predict_scales(batch) if self.multi_scale else self._decode(batch))
        return out


def make_eval_loader(
    source: SampleSource,
    task: Task,
    resize: EvalResize,
    batch_size: int,
    workers: int,
    with_targets: bool = False,
    scales: tuple[float, ...] = (1.0,),
) -> DataLoader:
    """Batches of one scale; with several ``scales``, each loader item is a list of Batches,
    one per scale (in ``scales`` order) of the same images."""
    if resize.mode == "keep_res":
        batch_size = 1  # every image has its own padded size
    if tuple(scales) == (1.0,):
        dataset, collate_fn = EvalDataset(source, task, resize, with_targets), collate
    else:
        dataset = MultiScaleEvalDataset(source, task, resize, scales, with_targets)
        collate_fn = collate_scales if len(scales) > 1 else _collate_one_scale
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_fn)


def _collate_one_scale(items: list[list[Item]]) -> Batch:
    return collate_scales(items)[0]


def merge_settings(test: TestConfig) -> MergeSettings:
    return MergeSettings(test.merge, test.nms_iou, test.soft_nms_sigma, test.nms_score_threshold, test.nms_plus_one)


def predictor_from_experiment(exp: Experiment, model: torch.nn.Module, device: torch.device) -> Predictor:
    return Predictor(
        model,
        exp.task,
        get_normalization(exp.data.normalization),
        device,
        exp.test.k,
        exp.test.flip_test,
        exp.model.channels_last,
        tuple(exp.test.scales),
        merge_settings(exp.test),
    )


def run_oracle(
    task: Task,
    source: SampleSource,
    resize: EvalResize,
    k: int,
    workers: int = 0,
    scales: tuple[float, ...] = (1.0,),
    merge: MergeSettings = MergeSettings(),
) -> list[Predictions]:
    """Encode the ground truth into target maps and decode them as if predicted; with several
    ``scales``, encode and decode at each and merge exactly as predictions are merged."""
    check_scales(scales)
    check_task_scales(task, scales)
    scales = ordered_scales(scales)
    loader = make_eval_loader(source, task, resize, 8, workers, with_targets=True, scales=scales)
    out: list[Predictions] = []
    for batch in Progress(loader, "oracle"):
        if len(scales) > 1:
            per_scale = [task.decode(task.oracle_maps(b.targets), b.meta, k) for b in batch]
            out.extend(merge_scales(per_scale, merge, k))
        else:
            out.extend(task.decode(task.oracle_maps(batch.targets), batch.meta, k))
    return out


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("CENTERPOINT_CACHE", Path.home() / ".cache" / "centerpoint_suite"))
