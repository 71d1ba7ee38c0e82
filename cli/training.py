"""``centerpoint train``: build the experiment (task, config file, checkpoint to resume, command
line options), open the train / val sources and run the Trainer; writes OUT/metrics.json."""

from __future__ import annotations

import time
from pathlib import Path

import click

from centerpoint_suite.errors import UserError
from centerpoint_suite.registry import NETWORKS

from .common import TASK_CHOICE, data_root, experiment_from, print_metrics, user_errors, write_json


@click.command()
@click.option("--task", "task_name", type=TASK_CHOICE, help="Task to train (its built-in config).")
@click.option("--config", type=str, help="Experiment file (path or name in configs/).")
@click.option("--data", type=click.Path(path_type=Path), help="Dataset root; default: built-in synthetic data.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder [runs/<task>].")
@click.option("--set", "overrides", multiple=True, help="Override a config field: section.field=value.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 or auto.")
@click.option("--weights", type=click.Path(path_type=Path), help="Initialise from an original CenterNet checkpoint.")
@click.option("--arch", default=None, help="Network (see `centerpoint tasks`).")
@click.option("--pretrained", is_flag=True, help="ImageNet backbone weights (must be in the torch hub cache).")
@click.option(
    "--resume",
    "resume",
    type=click.Path(path_type=Path),
    help="Continue the run saved in a checkpoint (e.g. OUT/last.pth), exactly where it stopped.",
)
@user_errors
def train(task_name, config, data, out, overrides, device, weights, arch, pretrained, resume) -> None:
    """Train a task; evaluates on the val split and writes OUT/metrics.json.

    Under torchrun (several processes, one or more machines) train.batch_size is the global
    batch; rank 0 logs and writes checkpoints. --resume alone continues the checkpoint's own
    experiment; options and --set given with it change it on purpose.
    """
    from dataclasses import replace

    from centerpoint_suite.checks import check_same_classes
    from centerpoint_suite.trainer import Trainer, for_source

    if resume is not None and task_name is None and config is None:
        from centerpoint_suite.checkpoint import load_checkpoint
        from centerpoint_suite.config import apply_overrides

        exp = apply_overrides(load_checkpoint(resume)[0], overrides)
    else:
        exp = experiment_from(task_name, config, overrides, real_data=data is not None)
    allowed = [item.split("=", 1)[0].strip() for item in overrides]
    model = exp.model
    if arch:
        model = replace(model, arch=arch)
        allowed.append("model.arch")
    if weights:
        model = replace(model, weights=str(weights))
        allowed.append("model.weights")
    if pretrained:
        model = replace(model, pretrained=True)
        allowed.append("model.pretrained")
    exp = replace(exp, model=model)
    if device:
        exp = replace(exp, train=replace(exp.train, device=device))
    if exp.model.arch not in NETWORKS:
        raise UserError(f"--arch {exp.model.arch}: unknown network; known: {', '.join(NETWORKS.names())}")
    if data is not None:
        allowed.append("data.root")
    root = data_root(exp, data)
    train_src = exp.task.open_dataset(root, exp.data.train_split)
    val_src = exp.task.open_dataset(root, exp.data.val_split) if exp.data.val_split else None
    check_same_classes(train_src, val_src)
    exp = for_source(exp, train_src)
    exp = replace(exp, data=replace(exp.data, root=str(root.resolve())))
    out = out or Path("runs") / exp.task.name
    trainer = Trainer(exp, train_src, val_src, out)
    main_rank = trainer.dist.is_main
    if main_rank:
        procs = f", {trainer.dist.world_size} processes" if trainer.dist.enabled else ""
        click.echo(
            f"training {exp.task.name} ({exp.model.arch}{procs}) on {root}: {len(train_src)} train images, "
            f"{len(val_src) if val_src else 0} val images -> {out}",
            err=True,
        )
    if resume:
        trainer.resume(resume, tuple(allowed))
    t0 = time.perf_counter()
    try:
        metrics = trainer.fit()
    finally:
        from centerpoint_suite.distributed import shutdown

        shutdown()
    elapsed = time.perf_counter() - t0
    if main_rank:
        s = trainer.state
        epochs = s.epoch + s.step / max(trainer.sampler.steps, 1)
        summary = {**metrics, "epochs": round(epochs, 3), "iterations": s.iteration, "train_time_s": round(elapsed, 1)}
        print_metrics(metrics)
        write_json(summary, out / "metrics.json")
