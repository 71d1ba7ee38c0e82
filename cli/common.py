"""Pieces every ``centerpoint`` command shares: one-line user errors, metric output, the task
option type, experiment and checkpoint loading, and the test-time options (flip, scales, merge).

Nothing here knows a particular task: experiments come from the registry, a config file or a
checkpoint, and every task is reached through the Task protocol.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from centerpoint_suite.errors import UserError
from centerpoint_suite.registry import TASKS

if TYPE_CHECKING:
    import torch

    from centerpoint_suite.config import Experiment


def worker_message(error: Exception) -> str:
    """The message of ``error``; for one re-raised by a DataLoader worker (its text is the worker's
    whole traceback), the original message in full: everything after the last
    ``<module>.<ExceptionName>: `` line of the traceback, not only its last line."""
    msg = str(error).strip()
    if "Original Traceback" not in msg:
        return msg
    name = re.escape(type(error).__name__)
    heads = list(re.finditer(rf"^(?:[\w.]+\.)?{name}: ", msg, flags=re.MULTILINE))
    return msg[heads[-1].end() :].strip() if heads else msg.splitlines()[-1]


def user_errors(fn: Callable) -> Callable:
    """Turn UserError (bad file, option or data) into a one-line click error, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(worker_message(e)) from None

    return wrapper


def write_json(data: dict, path: Path | None) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=float)
    if path is None:
        click.echo(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        click.echo(f"metrics written to {path}", err=True)


def print_metrics(metrics: dict[str, float]) -> None:
    for k, v in metrics.items():
        click.echo(f"  {k:40s} {v:.4f}" if isinstance(v, float) and not math.isnan(v) else f"  {k:40s} {v}", err=True)


class TaskName(click.ParamType):
    """A registered task, or registered tasks joined by + (one network for all: boxes2d+pose2d)."""

    name = "task"

    def convert(self, value, param, ctx):
        parts = [p.strip() for p in str(value).split("+")]
        unknown = [p for p in parts if p not in TASKS]
        if unknown or not all(parts):
            self.fail(f"{value!r}: unknown task {unknown or [value]}; known: {', '.join(TASKS.names())}", param, ctx)
        return "+".join(parts)


TASK_CHOICE = TaskName()


def experiment_from(
    task_name: str | None, config: str | None, overrides: tuple[str, ...], real_data: bool = False
) -> Experiment:
    """The experiment of ``--config`` (a file or a name in configs/) or of ``--task`` (its built-in
    config: for real data when ``real_data``), with the ``--set`` overrides applied."""
    from centerpoint_suite.config import apply_overrides, default_config, load_config

    if config is None and task_name is None:
        raise UserError("give --task NAME or --config FILE")
    exp = load_config(config) if config else default_config(task_name, real_data)
    if task_name is not None and exp.task.name != task_name:
        raise UserError(f"--config {config} is for task {exp.task.name}, not --task {task_name}")
    return apply_overrides(exp, overrides)


def data_root(exp: Experiment, data: Path | None) -> Path:
    """The dataset folder: ``--data``, else the experiment's ``data.root``, else the task's built-in
    synthetic data in the cache (generated on first use)."""
    from centerpoint_suite.engine import cache_dir

    if data is not None:
        return data
    if exp.data.root:
        return Path(exp.data.root)
    root = exp.task.default_data(cache_dir())
    click.echo(f"using the built-in synthetic {exp.task.name} data at {root}", err=True)
    return root


MERGE_CHOICE = click.Choice(["soft_nms_gaussian", "soft_nms_linear", "nms"])


def scale_options(fn: Callable) -> Callable:
    """``--test-scales`` and ``--merge`` (multi-scale testing) for eval, oracle and predict."""
    fn = click.option(
        "--merge",
        type=MERGE_CHOICE,
        default=None,
        help="How detections of several scales merge [test.merge: soft_nms_gaussian].",
    )(fn)
    return click.option(
        "--test-scales",
        "test_scales",
        default=None,
        help="Comma-separated test scales, e.g. 0.5,0.75,1,1.25,1.5 [test.scales: 1].",
    )(fn)


def with_test_options(
    exp: Experiment, flip_test: bool = False, test_scales: str | None = None, merge: str | None = None
) -> Experiment:
    """The experiment with the command line's test-time options applied."""
    from dataclasses import replace

    from centerpoint_suite.engine import merge_settings
    from centerpoint_suite.multiscale import check_scales, check_task_scales, parse_scales

    test = exp.test
    if flip_test:
        test = replace(test, flip_test=True)
    if test_scales is not None:
        test = replace(test, scales=parse_scales(test_scales))
    if merge is not None:
        test = replace(test, merge=merge)
    check_scales(test.scales, "test.scales")
    check_task_scales(exp.task, test.scales)
    merge_settings(test)  # an unknown test.merge fails here, before any data is read
    return replace(exp, test=test)


def load_for_inference(
    checkpoint: Path | None,
    weights: Path | None,
    arch: str | None,
    task_name: str | None,
    device: str | None,
    set_overrides: tuple[str, ...] = (),
) -> tuple[Experiment, torch.nn.Module, torch.device]:
    """(experiment, model, device) from our checkpoint, or from an original CenterNet checkpoint."""
    from dataclasses import replace

    from centerpoint_suite.checkpoint import load_checkpoint, load_weights
    from centerpoint_suite.config import apply_overrides
    from centerpoint_suite.engine import build_model, resolve_device

    if checkpoint is not None:
        exp, payload = load_checkpoint(checkpoint)
        exp = apply_overrides(exp, set_overrides)
        model = build_model(replace(exp, model=replace(exp.model, weights=None, pretrained=False)))
        load_weights(model, payload["model"], checkpoint)
    elif weights is not None:
        if not arch or not task_name:
            raise UserError("--weights needs --arch and --task (e.g. --arch dla34 --task boxes2d)")
        from centerpoint_suite.zoo import original_experiment

        exp = apply_overrides(original_experiment(arch, task_name, str(weights)), set_overrides)
        model = build_model(exp)
    else:
        raise UserError("give --checkpoint CKPT (ours) or --weights PTH --arch ARCH --task TASK (original)")
    dev = resolve_device(device or exp.train.device)
    return exp, model, dev
