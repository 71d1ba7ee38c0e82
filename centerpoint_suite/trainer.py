"""The training loop, in one process or many (``torchrun``): Adam with a step schedule, optional
AMP and gradient clipping, checkpoints every ``train.checkpoint_every`` iterations and at epoch
ends (``last.pth``) and on the best validation metric (``best.pth``), exact resume.

Its pieces, each testable alone:

- ``loss_model.LossModel``: network + task loss as one module, the thing DDP wraps (``forward`` returns
  the loss parts, so gradients are synchronised);
- ``sampling.GlobalBatchSampler``: which samples each process takes at each step;
- ``Trainer.step``: one optimisation step; loss parts, the non-finite flag and the time budget
  are summed over processes in one all-reduce before the backward pass, so every process takes
  the same stop decision at the same step;
- ``Trainer.evaluate``: validation sharded over processes (``sampling.ShardSource``),
  predictions gathered on rank 0;
- ``runlog.RunLog``: log.jsonl, TensorBoard and hooks, on rank 0 only; checkpoints are written
  by rank 0 only.

A run's position is (epoch, step inside the epoch, iteration); with the per-sample randomness
keyed by (seed, epoch, index) and every generator saved, a resumed run continues bit for bit.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import distributed as D
from .checkpoint import capture_rng, load_checkpoint, load_weights, restore_rng, save_checkpoint
from .config import Experiment, experiment_differences
from .data import TrainDataset, collate
from .ema import WeightAverage
from .engine import build_model, eval_resize, predictor_from_experiment, resolve_device
from .errors import TrainingError, UserError
from .image_cache import CachedImages
from .loading import set_up_training_process, train_loader
from .loss_model import LossModel, freeze_batchnorm
from .models import bn_relu, winograd_train
from .models.optimize import make_optimizer, train_channels_last
from .progress import Progress
from .runlog import Hook, RunLog
from .sampling import GlobalBatchSampler, ShardSource
from .task import SampleSource
from .transforms import augment_normalize_batch, get_normalization

log = logging.getLogger(__name__)

# fields a resumed run may change without saying so: where it runs, not what it computes
RUN_ENVIRONMENT = ("train.device", "train.threads", "data.workers", "data.cache_gb", "test.batch_size")


def lr_at(exp: Experiment, progress: float, it: int) -> float:
    """``train.lr_schedule``: "step", x gamma at each of ``lr_steps`` (epochs, i.e. at progress
    step/epochs), or "linear", down to 0 at the end of the run; both with optional linear
    warm-up over the first ``warmup_iters`` iterations.

    progress: fraction of the run done, in epochs (epoch / epochs) or, with a time budget,
    the larger of that and elapsed / budget.
    """
    t = exp.train
    if t.lr_schedule == "linear":
        lr = t.lr * max(0.0, 1.0 - progress)
    else:
        lr = t.lr * t.lr_gamma ** sum(progress * t.epochs >= s - 1e-9 for s in t.lr_steps)
    if t.warmup_iters and it < t.warmup_iters:
        lr *= (it + 1) / t.warmup_iters
    return lr


@dataclass
class TrainState:
    """Where a run stands; saved in every checkpoint.

    epoch: epochs completed; step: global steps done inside the current epoch;
    iteration: global steps done in the run; best: best validation metric so far;
    elapsed_s: training wall time so far; sums / count: running loss sums of the epoch.
    """

    epoch: int = 0
    step: int = 0
    iteration: int = 0
    best: float = -math.inf
    elapsed_s: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0


class Trainer:
    """Trains ``exp`` on ``train_source``, validating on ``val_source``, writing to ``out_dir``.

    Started by ``torchrun`` with several processes it joins the process group itself (gloo on
    CPU, nccl on GPUs); ``train.batch_size`` is then the global batch.
    """

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
        device = resolve_device(exp.train.device)
        self.threads = set_up_training_process(exp.data.workers, exp.train.threads, on_gpu=device.type == "cuda")
        self.dist = D.init_distributed(device)  # threads set above, before the first torch op
        self.device = self.dist.device
        self.quiet = quiet or not self.dist.is_main
        torch.manual_seed(exp.train.seed)
        net = build_model(exp).to(self.device)
        if exp.model.sync_bn and self.dist.enabled and self.device.type == "cuda" and not exp.model.frozen_bn:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        self.channels_last = train_channels_last(exp.model.channels_last, self.device)
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        if exp.model.winograd and self.device.type == "cpu":
            winograd_train.enable(net)
        if exp.model.bn_relu_kernel and self.device.type == "cpu":
            bn_relu.enable(net)
        self.net = net
        self.ema = WeightAverage(net, exp.train.ema_decay) if exp.train.ema_decay > 0 else None
        self.loss_model = LossModel(net, exp.task, exp.train.amp and self.device.type == "cuda")
        self.engine: nn.Module = self.loss_model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.engine = nn.parallel.DistributedDataParallel(self.loss_model, device_ids=ids)
        self.optimizer = make_optimizer(self.loss_model.parameters(), exp.train.lr, exp.train.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=exp.train.amp and self.device.type == "cuda")
        self.norm = get_normalization(exp.data.normalization)
        self.sampler = GlobalBatchSampler(
            len(train_source), exp.train.batch_size, self.dist.rank, self.dist.world_size, exp.train.seed
        )
        self.state = TrainState()
        self.budget_s = exp.train.time_budget_min * 60 if exp.train.time_budget_min > 0 else math.inf
        self.time_fraction = 0.0
        self.runlog = RunLog(self.out_dir, self.dist.is_main, exp.train.tensorboard, hooks)
        self._t0 = time.perf_counter()
        self._loader: DataLoader | None = None
        self.throughput = math.nan

    # -- compatibility views -----------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        return self.net

    @property
    def deployed(self) -> nn.Module:
        """The network validated and saved as the run's weights: the average when there is one."""
        return self.ema.net if self.ema is not None else self.net

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def iteration(self) -> int:
        return self.state.iteration

    @property
    def history(self) -> list[dict]:
        return self.runlog.history

    # -- state -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def save(self, name: str) -> None:
        """Rank 0 writes ``OUT/name``: weights, optimizer, scaler, generators, position."""
        if not self.dist.is_main:
            return
        self.state.elapsed_s = self.elapsed()
        averaged = {}
        if self.ema is not None:  # the trained weights beside the average, for exact resume
            averaged = {"train_model": self.net.state_dict(), "ema_updates": self.ema.updates}
        save_checkpoint(
            self.out_dir / name,
            self.exp,
            self.deployed,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=capture_rng(),
            state=asdict(self.state),
            loss_params={k: v.detach().cpu() for k, v in self.loss_model.named_loss_params().items()},
            world_size=self.dist.world_size,
            **averaged,
            # read by older tools: the epoch / iteration reached
            epoch=self.state.epoch,
            iteration=self.state.iteration,
        )

    def resume(self, path: Path, allowed: tuple[str, ...] = ()) -> None:
        """Continue the run saved in ``path``. Its experiment must equal ours except for the
        keys in ``allowed`` (what the user changed on purpose, e.g. with ``--set``) and the run
        environment (device, workers)."""
        exp, payload = load_checkpoint(path)
        diffs = experiment_differences(exp, self.exp, ignore=(*RUN_ENVIRONMENT, *allowed))
        if diffs:
            raise UserError(
                f"--resume {path}: the experiment differs from the checkpoint's ({'; '.join(diffs)}); "
                "set the changed fields with --set to change them on purpose"
            )
        load_weights(self.net, payload.get("train_model", payload["model"]), path)
        if self.ema is not None:
            if "train_model" in payload:
                self.ema.load(payload["model"], int(payload["ema_updates"]))
            else:  # the run had no average: it starts from the resumed weights
                self.ema.load(self.net.state_dict(), 1)
        saved = payload.get("loss_params") or {}
        with torch.no_grad():
            for name, value in self.loss_model.named_loss_params().items():
                if name in saved:
                    value.copy_(saved[name])
        if "optimizer" in payload:
            try:
                self.optimizer.load_state_dict(payload["optimizer"])
            except (ValueError, KeyError) as e:
                raise UserError(f"--resume {path}: optimizer state does not fit ({e})") from None
        scaler_state = payload.get("scaler") or {}
        if scaler_state and self.scaler.is_enabled():
            self.scaler.load_state_dict(scaler_state)
        elif self.scaler.is_enabled():
            log.info("--resume %s: the run had no AMP scaler state; starting a fresh one", path)
        if "rng" in payload:
            restore_rng(payload["rng"])
        if "state" in payload:
            self.state = TrainState(**payload["state"])
        else:  # checkpoints written before exact resume: at an epoch boundary
            self.state = TrainState(int(payload.get("epoch", 0)), 0, int(payload.get("iteration", 0)))
            self.state.best = float(payload.get("best", -math.inf))
            self.state.elapsed_s = float(payload.get("elapsed_s", 0.0))
        self._t0 = time.perf_counter() - self.state.elapsed_s
        log.info(
            "resumed from %s at epoch %d, step %d (iteration %d)",
            path,
            self.state.epoch,
            self.state.step,
            self.state.iteration,
        )

    # -- loop ----------------------------------------------------------------------------------
    def loader(self) -> DataLoader:
        """One DataLoader for the whole run; its workers persist across epochs."""
        if self._loader is None:
            exp = self.exp
            source = self.train_source
            if exp.data.cache_gb > 0:
                source = CachedImages(source, exp.data.cache_gb)
            ds = TrainDataset(source, exp.task, exp.data.input_hw, exp.data.augment, exp.train.seed)
            pin = self.device.type == "cuda"
            self._loader = train_loader(ds, self.sampler, collate, self.threads.workers, pin)
        return self._loader

    def progress(self) -> float:
        """Fraction of the run done: epochs, or elapsed time when a budget runs out first."""
        s = self.state
        return max((s.epoch + s.step / self.sampler.steps) / self.exp.train.epochs, self.time_fraction)

    def fit(self) -> dict[str, float]:
        exp, s = self.exp, self.state
        self._t0 = time.perf_counter() - s.elapsed_s
        self.time_fraction = s.elapsed_s / self.budget_s
        metrics: dict[str, float] = {}
        try:
            while s.epoch < exp.train.epochs:
                out_of_time = self.train_one_epoch()
                if not out_of_time:
                    s.epoch, s.step = s.epoch + 1, 0
                last = s.epoch >= exp.train.epochs or out_of_time
                record = {"epoch": s.epoch, "iteration": s.iteration, "lr": lr_at(exp, self.progress(), s.iteration)}
                record.update({f"train/{k}": v / max(s.count, 1) for k, v in s.sums.items()})
                if self.throughput == self.throughput:  # images per second over all processes
                    record["train/images_per_s"] = round(self.throughput, 2)
                    record["train/iterations_per_s"] = round(self.throughput / self.sampler.global_batch, 3)
                s.sums, s.count = {}, 0
                if out_of_time:
                    log.info("time budget reached at iteration %d (epoch %d, step %d)", s.iteration, s.epoch, s.step)
                if self.val_source is not None and (s.epoch % exp.train.val_every == 0 or last):
                    metrics = self.evaluate()
                    record.update(metrics)
                    value = metrics.get(exp.task.primary_metric(), -math.inf)
                    if value == value and value > s.best:  # not nan
                        s.best = value
                        self.save("best.pth")
                record["time_s"] = round(self.elapsed(), 1)
                self.save("last.pth")
                self.runlog.epoch(record)
                if last:
                    break
            D.barrier()
        finally:
            self.runlog.close()
        return metrics

    def train_one_epoch(self) -> bool:
        """The rest of the current epoch; True when the time budget stopped it early."""
        exp, s = self.exp, self.state
        self.sampler.set_epoch(s.epoch, s.step)
        self.loss_model.train()
        if exp.model.frozen_bn:
            freeze_batchnorm(self.loss_model)
        bar = Progress(self.loader(), f"epoch {s.epoch + 1}/{exp.train.epochs}", enabled=not self.quiet)
        every = exp.train.checkpoint_every
        self.throughput = math.nan
        t_first, first_iteration = 0.0, s.iteration
        for batch in bar:
            parts, out_of_time = self.step(batch)
            if s.iteration == first_iteration + 1:  # the rate leaves out the first step (warm-up)
                t_first = time.perf_counter()
            elif s.iteration > first_iteration + 1:
                self.throughput = (
                    (s.iteration - first_iteration - 1) * self.sampler.global_batch / (time.perf_counter() - t_first)
                )
            for k, v in parts.items():
                s.sums[k] = s.sums.get(k, 0.0) + v
            s.count += 1
            bar.set_postfix(f"loss {parts['loss']:.3f}")
            if every > 0 and s.iteration % every == 0 and s.step < self.sampler.steps:
                self.save("last.pth")
                log.info("checkpoint at iteration %d (epoch %d, step %d)", s.iteration, s.epoch, s.step)
            if out_of_time:
                return True
        return False

    def step(self, batch) -> tuple[dict[str, float], bool]:
        """One optimisation step on this process's share of a global batch.

        Returns the loss parts averaged over processes and whether the time budget is spent
        (both agreed by every process). Raises TrainingError on a non-finite loss in any process.
        """
        exp, s = self.exp, self.state
        lr = lr_at(exp, self.progress(), s.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = batch.to(self.device)
        x = augment_normalize_batch(batch.images, batch.colour, self.norm)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        losses = self.engine(x, batch.targets)
        names = sorted(losses)
        loss = losses["loss"]
        flags = torch.tensor([float(not torch.isfinite(loss)), self.elapsed() / self.budget_s], device=loss.device)
        agreed = D.all_reduce_sum(torch.cat([torch.stack([losses[k].detach().float() for k in names]), flags]))
        n = self.dist.world_size
        parts = {k: float(v) / n for k, v in zip(names, agreed[: len(names)].tolist())}
        if agreed[len(names)] > 0:
            raise TrainingError(
                f"non-finite loss at iteration {s.iteration} ({parts}); try a lower train.lr or train.grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if exp.train.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.loss_model.parameters(), exp.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.net)
        s.iteration += 1
        s.step += 1
        self.time_fraction = float(agreed[len(names) + 1]) / n
        if exp.train.log_every and s.iteration % exp.train.log_every == 0:
            self.runlog.step(s.iteration, parts, lr)
        return parts, self.time_fraction >= 1.0

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation metrics: each process predicts its shard, rank 0 evaluates, all get the metrics."""
        exp = self.exp
        shard = self.val_source
        if self.dist.enabled:
            shard = ShardSource(self.val_source, self.dist.rank, self.dist.world_size)
        predictor = predictor_from_experiment(exp, self.deployed, self.device)
        preds = predictor.predict_source(shard, eval_resize(exp), exp.test.batch_size, self.threads.workers)
        gathered = D.gather_to_main(preds)
        metrics = None
        if gathered is not None:
            ordered = [g[i] for i in range(max(len(g) for g in gathered)) for g in gathered if i < len(g)]
            metrics = exp.task.evaluate(self.val_source, ordered, self.out_dir)
            self._log_images(ordered)
        return D.broadcast_from_main(metrics)

    def _log_images(self, preds, count: int = 4) -> None:
        if not self.runlog.wants_images:
            return
        pictures = []
        for i, p in enumerate(preds[:count]):
            image = self.val_source[i].image
            pictures.append((str(p.image_id), self.exp.task.draw(image, p, self.exp.test.score_threshold)))
        self.runlog.images(self.state.iteration, pictures)


def for_source(exp: Experiment, source: SampleSource) -> Experiment:
    """The experiment with what its task left open (class lists) filled from the training data."""
    return replace(exp, task=exp.task.for_source(source))
