"""The scoring commands: ``eval`` (a checkpoint on a split), ``oracle`` (the ground truth encoded
and decoded: the ceiling of the representation) and ``kitti-eval`` (KITTI result files)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from centerpoint_suite.errors import UserError

from .common import (
    TASK_CHOICE,
    data_root,
    experiment_from,
    load_for_inference,
    print_metrics,
    scale_options,
    user_errors,
    with_test_options,
    write_json,
)

log = logging.getLogger("centerpoint")


@click.command("eval")
@click.option("--checkpoint", type=click.Path(path_type=Path), help="Checkpoint written by `centerpoint train`.")
@click.option("--weights", type=click.Path(path_type=Path), help="Original CenterNet checkpoint (with --arch, --task).")
@click.option("--arch", default=None)
@click.option("--task", "task_name", type=TASK_CHOICE, default=None)
@click.option("--data", type=click.Path(path_type=Path), help="Dataset root [the checkpoint's].")
@click.option("--split", default=None, help="Split to evaluate [the config's val split].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write metrics here.")
@click.option("--out", type=click.Path(path_type=Path), help="Also write result files here.")
@click.option("--flip-test", is_flag=True, help="Average with the mirrored image.")
@scale_options
@click.option("--set", "overrides", multiple=True)
@click.option("--device", default=None)
@user_errors
def eval_cmd(
    checkpoint, weights, arch, task_name, data, split, json_path, out, flip_test, test_scales, merge, overrides, device
) -> None:
    """Evaluate a checkpoint on a dataset split with the field's own metric."""
    from centerpoint_suite.engine import eval_resize, predictor_from_experiment

    exp, model, dev = load_for_inference(checkpoint, weights, arch, task_name, device, overrides)
    exp = with_test_options(exp, flip_test, test_scales, merge)
    root = data or (Path(exp.data.root) if exp.data.root else None)
    if root is None:
        raise UserError("--data DIR is required (the checkpoint records no dataset)")
    source = exp.task.open_dataset(root, split or exp.data.val_split)
    predictor = predictor_from_experiment(exp, model, dev)
    t0 = time.perf_counter()
    preds = predictor.predict_source(source, eval_resize(exp), exp.test.batch_size, exp.data.workers)
    elapsed = time.perf_counter() - t0
    metrics = exp.task.evaluate(source, preds, out)
    click.echo(f"{len(source)} images in {elapsed:.1f}s ({len(source) / max(elapsed, 1e-9):.1f} img/s)", err=True)
    print_metrics(metrics)
    write_json(metrics, json_path)


@click.command()
@click.option("--task", "task_name", type=TASK_CHOICE, required=True)
@click.option("--data", type=click.Path(path_type=Path), help="Dataset root [built-in synthetic].")
@click.option("--split", default=None, help="Split [the only one, or val].")
@click.option("--config", default=None, help="Experiment whose task / test settings to use.")
@click.option("--set", "overrides", multiple=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write metrics here.")
@click.option("--out", type=click.Path(path_type=Path), help="Also write result files here.")
@scale_options
@user_errors
def oracle(task_name, data, split, config, overrides, json_path, out, test_scales, merge) -> None:
    """Encode the ground truth as target maps, decode them as predictions, evaluate.

    The ceiling any network can reach with this encoding: every point lost here is lost by
    the representation (two centres in one cell, clipped boxes, ...), not by learning.
    """
    from centerpoint_suite.engine import eval_resize, merge_settings, run_oracle
    from centerpoint_suite.trainer import for_source

    exp = with_test_options(
        experiment_from(task_name, config, overrides, real_data=data is not None), False, test_scales, merge
    )
    root = data_root(exp, data)
    source = exp.task.open_dataset(root, split if split is not None else (None if data else exp.data.val_split))
    exp = for_source(exp, source)
    preds = run_oracle(
        exp.task, source, eval_resize(exp), exp.test.k, scales=exp.test.scales, merge=merge_settings(exp.test)
    )
    metrics = exp.task.evaluate(source, preds, out)
    print_metrics(metrics)
    write_json(metrics, json_path)


@click.command("kitti-eval")
@click.option("--gt", "gt_dir", type=click.Path(path_type=Path), required=True, help="KITTI label_2 folder.")
@click.option(
    "--results", "result_dir", type=click.Path(path_type=Path), required=True, help="Folder of <id>.txt results."
)
@click.option("--split-file", type=click.Path(path_type=Path), help="Score only the frame ids listed here.")
@click.option(
    "--skip-missing",
    is_flag=True,
    help="Leave out frames without a result file (and split ids without a label file) instead of "
    "scoring them as frames with no detections (resp. an error); the count is logged.",
)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write metrics here.")
@user_errors
def kitti_eval(gt_dir, result_dir, split_file, skip_missing, json_path) -> None:
    """Score KITTI result files (label format + score) against KITTI labels: bbox / aos / bev / 3d AP,
    R11 and R40, both IoU sets (keys like Car/3d/moderate/R40@0.7, percent).

    A frame with labels and no result file counts as a frame without detections."""
    from centerpoint_suite.tasks.mono3d.eval import format_kitti_metrics, kitti_eval_dirs

    ids = None
    if split_file is not None:
        if not split_file.is_file():
            raise UserError(f"--split-file {split_file}: no such file")
        ids, lines = [], []
        for lineno, line in enumerate(split_file.read_text(errors="replace").splitlines(), start=1):
            if line.strip():
                ids.append(line.split()[0])
                lines.append(lineno)
        if not ids:
            raise UserError(f"--split-file {split_file}: lists no frame ids")
        absent = [(i, n) for i, n in zip(ids, lines) if not (gt_dir / f"{i}.txt").is_file()]
        if absent and not skip_missing:
            raise UserError(
                f"{split_file}:{absent[0][1]}: frame {absent[0][0]} has no label file in {gt_dir}"
                + (f" ({len(absent)} ids in all)" if len(absent) > 1 else "")
                + "; --skip-missing leaves such ids out"
            )
        if absent:
            log.warning("--split-file: skipped %d of %d ids with no label file in %s", len(absent), len(ids), gt_dir)
            ids = [i for i in ids if (gt_dir / f"{i}.txt").is_file()]
    metrics = kitti_eval_dirs(gt_dir, result_dir, ids=ids, skip_missing=skip_missing)
    click.echo(format_kitti_metrics(metrics), err=True)
    write_json(metrics, json_path)
