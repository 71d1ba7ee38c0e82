"""Building a model from an experiment, batched inference (with flip test), the oracle."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .config import Experiment
from .data import Batch, EvalDataset, collate
from .errors import UserError
from .models import build_network
from .progress import Progress
from .task import SampleSource, Task
from .transforms import EvalResize, Normalization, get_normalization, normalize_batch
from .types import Predictions

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
    """Model + task + pre-processing: batches of warped uint8 images -> Predictions."""

    def __init__(
        self,
        model: torch.nn.Module,
        task: Task,
        norm: Normalization,
        device: torch.device,
        k: int = 100,
        flip_test: bool = False,
        channels_last: bool = True,
    ) -> None:
        self.model = model.eval().to(device)
        self.channels_last = channels_last and device.type == "cpu"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.task, self.norm, self.device, self.k, self.flip_test = task, norm, device, k, flip_test

    @torch.no_grad()
    def raw_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = normalize_batch(images.to(self.device), self.norm)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if not self.flip_test:
            return self.model(x)
        out = self.model(torch.cat([x, x.flip(-1)]))
        b = x.shape[0]
        return self.task.merge_flip({k: v[:b] for k, v in out.items()}, {k: v[b:] for k, v in out.items()})

    def predict_batch(self, batch: Batch) -> list[Predictions]:
        return self.task.decode(self.raw_maps(batch.images), batch.meta, self.k)

    def predict_source(
        self, source: SampleSource, resize: EvalResize, batch_size: int, workers: int
    ) -> list[Predictions]:
        loader = make_eval_loader(source, self.task, resize, batch_size, workers)
        out: list[Predictions] = []
        for batch in Progress(loader, "predict"):
            out.extend(self.predict_batch(batch))
        return out


def make_eval_loader(
    source: SampleSource, task: Task, resize: EvalResize, batch_size: int, workers: int, with_targets: bool = False
) -> DataLoader:
    if resize.mode == "keep_res":
        batch_size = 1  # every image has its own padded size
    return DataLoader(
        EvalDataset(source, task, resize, with_targets),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
    )


def predictor_from_experiment(exp: Experiment, model: torch.nn.Module, device: torch.device) -> Predictor:
    return Predictor(
        model,
        exp.task,
        get_normalization(exp.data.normalization),
        device,
        exp.test.k,
        exp.test.flip_test,
        exp.model.channels_last,
    )


def run_oracle(task: Task, source: SampleSource, resize: EvalResize, k: int, workers: int = 0) -> list[Predictions]:
    """Encode the ground truth into target maps and decode them as if predicted."""
    loader = make_eval_loader(source, task, resize, 8, workers, with_targets=True)
    out: list[Predictions] = []
    for batch in Progress(loader, "oracle"):
        out.extend(task.decode(task.oracle_maps(batch.targets), batch.meta, k))
    return out


def cache_dir() -> Path:
    import os

    return Path(os.environ.get("CENTERPOINT_CACHE", Path.home() / ".cache" / "centerpoint_suite"))
