"""The ``centerpoint`` command: tasks, train, eval, predict, oracle, export, bench, kitti-eval.

Every command knows nothing about a particular task: it builds the task from the registry
or from a checkpoint and calls the Task protocol.

This module holds the click group and registers the commands on it; they live by concern:
``training`` (train), ``evaluation`` (eval, oracle, kitti-eval), ``inference`` (predict,
export), ``tools`` (tasks, bench), with the pieces they share in ``common``.
"""

from __future__ import annotations

import logging
import sys

import click

import centerpoint_suite  # noqa: F401  (registers tasks and networks)

from .common import worker_message
from .evaluation import eval_cmd, kitti_eval, oracle
from .inference import export, predict
from .tools import bench, tasks_cmd
from .training import train

__all__ = ["main", "worker_message"]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """CenterNet (Objects as Points) for 2D boxes, monocular 3D boxes and multi-person pose."""
    _setup_logging(verbose)


for _command in (tasks_cmd, train, eval_cmd, oracle, predict, export, bench, kitti_eval):
    main.add_command(_command)


if __name__ == "__main__":
    main()
