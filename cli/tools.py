"""What the installation offers and how fast it runs: ``tasks`` (registered tasks and networks)
and ``bench`` (our stages timed against the original's slow paths)."""

from __future__ import annotations

from pathlib import Path

import click

from centerpoint_suite.errors import UserError
from centerpoint_suite.registry import NETWORKS, TASKS

from .common import TASK_CHOICE, user_errors


@click.command("tasks")
def tasks_cmd() -> None:
    """List registered tasks (and networks)."""
    for name in TASKS.names():
        task = TASKS.get(name)()
        heads = ", ".join(f"{k}:{v}" for k, v in task.heads().items())
        doc = (TASKS.get(name).__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name:10s} {doc}  [heads {heads}]")
    click.echo("composites: tasks joined by + share one network, e.g. --task boxes2d+pose2d")
    click.echo(f"networks: {', '.join(NETWORKS.names())}")


@click.command()
@click.option("--task", "task_name", type=TASK_CHOICE, default="boxes2d")
@click.option("--arch", default="res18", show_default=True, help="Network of the whole-prediction and forward rows.")
@click.option("--repeat", type=int, default=10, show_default=True, help="Timed calls of each side (medians).")
@click.option(
    "--min-seconds",
    type=float,
    default=3.0,
    show_default=True,
    help="Time each data stage for at least this long (more rounds than --repeat for the fast ones).",
)
@click.option(
    "--stages",
    type=click.Choice(["data", "networks", "all"]),
    default="all",
    show_default=True,
    help="data: training samples, decode, whole prediction; networks: forwards and training step.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path),
    help="COCO folder with instances and person_keypoints files (real images); default: synthetic.",
)
@click.option(
    "--networks",
    help="Comma-separated networks of the network rows, e.g. res18,resdcn18,dla34,hourglass104 (default: --arch).",
)
@user_errors
def bench(task_name, arch, repeat, min_seconds, stages, data_dir, networks) -> None:
    """Time our stages side by side with the original's slow paths (re-implemented), interleaved
    in one run, and print the speed-up of each (baseline / ours)."""
    from centerpoint_suite.bench import run_bench

    if repeat < 1:
        raise UserError(f"--repeat {repeat}: must be at least 1")
    if not min_seconds >= 0:
        raise UserError(f"--min-seconds {min_seconds}: must be 0 or more")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"--data {data_dir}: no such folder")
    archs = tuple(a.strip() for a in networks.split(",") if a.strip()) if networks else (arch,)
    unknown = [a for a in (arch, *archs) if a not in NETWORKS]
    if unknown:
        raise UserError(f"bench: unknown network {unknown[0]!r}; known: {', '.join(NETWORKS.names())}")
    run_bench(
        task_name, arch, repeat, echo=click.echo, stages=stages, data=data_dir, networks=archs, min_seconds=min_seconds
    )
