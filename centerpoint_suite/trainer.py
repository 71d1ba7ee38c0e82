"""A plain training loop: Adam with a step schedule, optional AMP and gradient clipping,
JSONL log, checkpoint every epoch (last.pth) and on the best validation metric (best.pth),
resume, and hooks for anything else."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Experiment
from .data import TrainDataset, collate
from .engine import build_model, eval_resize, predictor_from_experiment, resolve_device
from .errors import UserError
from .progress import Progress
from .task import SampleSource
from .transforms import colour_augment_batch, get_normalization, normalize_batch

log = logging.getLogger(__name__)

Hook = Callable[[dict], None]


def lr_at(exp: Experiment, progress: float, it: int) -> float:
    """Step schedule: x gamma at each of ``lr_steps`` (epochs, i.e. at progress step/epochs),
    with optional linear warm-up over the first ``warmup_iters`` iterations.

    progress: fraction of the run done, in epochs (epoch / epochs) or, with a time budget,
    the larger of that and elapsed / budget.
    """
    t = exp.train
    lr = t.lr * t.lr_gamma ** sum(progress * t.epochs >= s - 1e-9 for s in t.lr_steps)
    if t.warmup_iters and it < t.warmup_iters:
        lr *= (it + 1) / t.warmup_iters
    return lr


class Trainer:
    def __init__(
        self,
        exp: Experiment,
        train_source: SampleSource,
        val_source: SampleSource | None,
        out_dir: Path,
        hooks: list[Hook] | None = None,
        quiet: bool = False,
    ) -> None:
        self.exp, self.train_source, self.val_source, self.out_dir = exp, train_source, val_source, Path(out_dir)
        self.hooks = hooks or []
        self.quiet = quiet
        self.device = resolve_device(exp.train.device)
        torch.manual_seed(exp.train.seed)
        self.model = build_model(exp).to(self.device)
        self.channels_last = exp.model.channels_last and self.device.type == "cpu"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=exp.train.lr, weight_decay=exp.train.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=exp.train.amp and self.device.type == "cuda")
        self.norm = get_normalization(exp.data.normalization)
        self.epoch = 0
        self.iteration = 0
        self.best = -math.inf
        self.progress = 0.0
        self.elapsed_before = 0.0
        self._start, self._budget = time.perf_counter(), math.inf
        self.history: list[dict] = []
        self.generator = torch.Generator().manual_seed(exp.train.seed)

    # -- state -----------------------------------------------------------------------------
    def save(self, name: str) -> None:
        save_checkpoint(
            self.out_dir / name,
            self.exp,
            self.model,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            epoch=self.epoch,
            iteration=self.iteration,
            best=self.best,
            elapsed_s=time.perf_counter() - self._start,
        )

    def resume(self, path: Path) -> None:
        exp, payload = load_checkpoint(path)
        if type(exp.task).name != type(self.exp.task).name:
            raise UserError(f"--resume {path}: checkpoint is for task {type(exp.task).name}")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scaler.load_state_dict(payload.get("scaler", {}))
        self.epoch = int(payload["epoch"])
        self.iteration = int(payload["iteration"])
        self.best = float(payload.get("best", -math.inf))
        self.elapsed_before = float(payload.get("elapsed_s", 0.0))
        log.info("resumed from %s at epoch %d", path, self.epoch)

    def _log(self, record: dict) -> None:
        self.history.append(record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for hook in self.hooks:
            hook(record)

    # -- loop ------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        exp = self.exp
        ds = TrainDataset(self.train_source, exp.task, exp.data.input_hw, exp.data.augment, exp.train.seed)
        if len(ds) == 0:
            raise UserError("training split is empty")
        workers = exp.data.workers
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        budget = exp.train.time_budget_min * 60 if exp.train.time_budget_min > 0 else math.inf
        self._start, self._budget = start - self.elapsed_before, budget
        while self.epoch < exp.train.epochs:
            ds.set_epoch(self.epoch)
            g = torch.Generator().manual_seed(exp.train.seed * 1000 + self.epoch)
            loader = DataLoader(
                ds,
                batch_size=exp.train.batch_size,
                shuffle=True,
                num_workers=workers,
                collate_fn=collate,
                drop_last=len(ds) >= exp.train.batch_size,
                generator=g,
                persistent_workers=False,
                pin_memory=self.device.type == "cuda",
            )
            self.model.train()
            sums: dict[str, float] = {}
            n = 0
            bar = Progress(loader, f"epoch {self.epoch + 1}/{exp.train.epochs}", enabled=not self.quiet)
            steps = max(len(loader), 1)
            out_of_time = False
            for i, batch in enumerate(bar):
                self.progress = max((self.epoch + i / steps) / exp.train.epochs, self.time_progress())
                parts = self.step(batch)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                n += 1
                bar.set_postfix(f"loss {parts['loss']:.3f}")
                if self.time_progress() >= 1.0:
                    out_of_time = True
                    break
            self.epoch += 1
            record = {"epoch": self.epoch, "iteration": self.iteration, "lr": lr_at(exp, self.progress, self.iteration)}
            record.update({f"train/{k}": v / max(n, 1) for k, v in sums.items()})
            record["time_s"] = round(time.perf_counter() - self._start, 1)
            last = self.epoch >= exp.train.epochs or out_of_time
            if out_of_time:
                log.info("time budget reached after %d iterations", self.iteration)
            if self.val_source is not None and (self.epoch % exp.train.val_every == 0 or last):
                metrics = self.validate()
                record.update(metrics)
                key = exp.task.primary_metric()
                value = metrics.get(key, -math.inf)
                if value == value and value > self.best:  # not nan
                    self.best = value
                    self.save("best.pth")
            self.save("last.pth")
            self._log(record)
            if last:
                break
        return metrics

    def time_progress(self) -> float:
        return (time.perf_counter() - self._start) / self._budget

    def step(self, batch) -> dict[str, float]:
        exp = self.exp
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(exp, self.progress, self.iteration)
        batch = batch.to(self.device)
        images = batch.images
        if exp.data.augment.colour:
            images = colour_augment_batch(images, self.generator)
        x = normalize_batch(images, self.norm)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        with torch.autocast(self.device.type, enabled=exp.train.amp):
            stacks = self.model.forward_stacks(x)
        losses: dict[str, torch.Tensor] = {}
        for preds in stacks:  # intermediate supervision: mean over stacks
            for k, v in exp.task.loss({k: p.float() for k, p in preds.items()}, batch.targets).items():
                losses[k] = losses.get(k, 0) + v / len(stacks)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at iteration {self.iteration}: {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if exp.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), exp.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.iteration += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        exp = self.exp
        predictor = predictor_from_experiment(exp, self.model, self.device)
        preds = predictor.predict_source(self.val_source, eval_resize(exp), exp.test.batch_size, exp.data.workers)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        return exp.task.evaluate(self.val_source, preds, self.out_dir)


def with_classes(exp: Experiment, classes: tuple[str, ...]) -> Experiment:
    """Fill the task's class list from the dataset when the config leaves it empty."""
    if exp.task.classes:
        return exp
    return replace(exp, task=exp.task.with_classes(tuple(classes)))
