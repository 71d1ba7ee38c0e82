"""The ``centerpoint`` command: tasks, train, eval, predict, oracle, export, bench, kitti-eval.

Every command knows nothing about a particular task: it builds the task from the registry
or from a checkpoint and calls the Task protocol.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import sys
import time
from pathlib import Path

import click

import centerpoint_suite  # noqa: F401  (registers tasks and networks)
from centerpoint_suite.errors import UserError
from centerpoint_suite.registry import NETWORKS, TASKS

log = logging.getLogger("centerpoint")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", stream=sys.stderr)


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


def user_errors(fn):
    """Turn UserError (bad file, option or data) into a one-line click error, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise click.ClickException(worker_message(e)) from None

    return wrapper


def _write_json(data: dict, path: Path | None) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=float)
    if path is None:
        click.echo(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        click.echo(f"metrics written to {path}", err=True)


def _print_metrics(metrics: dict[str, float]) -> None:
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """CenterNet (Objects as Points) for 2D boxes, monocular 3D boxes and multi-person pose."""
    _setup_logging(verbose)


@main.command("tasks")
def tasks_cmd() -> None:
    """List registered tasks (and networks)."""
    for name in TASKS.names():
        task = TASKS.get(name)()
        heads = ", ".join(f"{k}:{v}" for k, v in task.heads().items())
        doc = (TASKS.get(name).__doc__ or "").strip().splitlines()[0]
        click.echo(f"{name:10s} {doc}  [heads {heads}]")
    click.echo("composites: tasks joined by + share one network, e.g. --task boxes2d+pose2d")
    click.echo(f"networks: {', '.join(NETWORKS.names())}")


def _experiment(task_name: str | None, config: str | None, overrides: tuple[str, ...], real_data: bool = False):
    from centerpoint_suite.config import apply_overrides, default_config, load_config

    if config is None and task_name is None:
        raise UserError("give --task NAME or --config FILE")
    exp = load_config(config) if config else default_config(task_name, real_data)
    if task_name is not None and exp.task.name != task_name:
        raise UserError(f"--config {config} is for task {exp.task.name}, not --task {task_name}")
    return apply_overrides(exp, overrides)


def _data_root(exp, data: Path | None) -> Path:
    from centerpoint_suite.engine import cache_dir

    if data is not None:
        return data
    if exp.data.root:
        return Path(exp.data.root)
    root = exp.task.default_data(cache_dir())
    click.echo(f"using the built-in synthetic {exp.task.name} data at {root}", err=True)
    return root


MERGE_CHOICE = click.Choice(["soft_nms_gaussian", "soft_nms_linear", "nms"])


def scale_options(fn):
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


def _with_test_options(exp, flip_test: bool = False, test_scales: str | None = None, merge: str | None = None):
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


@main.command()
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
        exp = _experiment(task_name, config, overrides, real_data=data is not None)
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
    root = _data_root(exp, data)
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
        _print_metrics(metrics)
        _write_json(summary, out / "metrics.json")


def _load_for_inference(checkpoint, weights, arch, task_name, device, set_overrides=()):
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


@main.command("eval")
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

    exp, model, dev = _load_for_inference(checkpoint, weights, arch, task_name, device, overrides)
    exp = _with_test_options(exp, flip_test, test_scales, merge)
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
    _print_metrics(metrics)
    _write_json(metrics, json_path)


@main.command()
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

    exp = _with_test_options(
        _experiment(task_name, config, overrides, real_data=data is not None), False, test_scales, merge
    )
    root = _data_root(exp, data)
    source = exp.task.open_dataset(root, split if split is not None else (None if data else exp.data.val_split))
    exp = for_source(exp, source)
    preds = run_oracle(
        exp.task, source, eval_resize(exp), exp.test.k, scales=exp.test.scales, merge=merge_settings(exp.test)
    )
    metrics = exp.task.evaluate(source, preds, out)
    _print_metrics(metrics)
    _write_json(metrics, json_path)


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--checkpoint", type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path))
@click.option("--arch", default=None)
@click.option("--task", "task_name", type=TASK_CHOICE, default=None)
@click.option(
    "--onnx", "onnx_path", type=click.Path(path_type=Path), help="Run a file from `centerpoint export` (onnxruntime)."
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--threshold", type=float, default=None, help="Score threshold for drawing.")
@click.option("--camera", type=int, default=None, help="Read frames from camera N.")
@click.option("--max-frames", type=int, default=0, help="Stop a camera/video after N frames (0: all).")
@click.option("--show", is_flag=True, help="Also show frames in a window (needs a display).")
@click.option("--calib", type=click.Path(path_type=Path), help="KITTI calib file for mono3d.")
@click.option("--flip-test", is_flag=True)
@scale_options
@click.option("--set", "overrides", multiple=True)
@click.option("--device", default=None)
@user_errors
def predict(
    inputs,
    checkpoint,
    weights,
    arch,
    task_name,
    onnx_path,
    out,
    threshold,
    camera,
    max_frames,
    show,
    calib,
    flip_test,
    test_scales,
    merge,
    overrides,
    device,
) -> None:
    """Run a model on images, folders, videos or a camera; write annotated files + detections JSON."""
    from centerpoint_suite.demo import run_demo

    if not inputs and camera is None:
        raise UserError("give input images / folders / videos, or --camera N")
    if onnx_path is not None:
        from centerpoint_suite.onnx_runtime import OnnxPredictor

        clash = [name for name, v in (("--checkpoint", checkpoint), ("--weights", weights)) if v is not None]
        clash += ["--flip-test"] if flip_test else []
        clash += ["--test-scales"] if test_scales else []
        clash += ["--set"] if overrides else []
        if clash:
            raise UserError(f"--onnx: the file describes the model; drop {', '.join(clash)}")
        predictor = OnnxPredictor(onnx_path)
        exp = predictor.exp
    else:
        from centerpoint_suite.engine import predictor_from_experiment

        exp, model, dev = _load_for_inference(checkpoint, weights, arch, task_name, device, overrides)
        exp = _with_test_options(exp, flip_test, test_scales, merge)
        predictor = predictor_from_experiment(exp, model, dev)
    run_demo(
        exp,
        predictor,
        list(inputs),
        out,
        threshold if threshold is not None else exp.test.score_threshold,
        camera=camera,
        max_frames=max_frames,
        show=show,
        calib=calib,
    )


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), help="Checkpoint written by `centerpoint train`.")
@click.option("--weights", type=click.Path(path_type=Path), help="Original CenterNet checkpoint (with --arch, --task).")
@click.option("--arch", default=None)
@click.option("--task", "task_name", type=TASK_CHOICE, default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output file (.pt TorchScript or .onnx).")
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), default=None)
@click.option("--with-decode", is_flag=True, help="ONNX: also output decoded detections (det_*) from the graph.")
@click.option("--dynamic", is_flag=True, help="ONNX: free batch, height and width (else one test-size image).")
@click.option("--k", type=int, default=None, help="ONNX --with-decode: detections per image [config test.k].")
@click.option(
    "--deform-impl",
    type=click.Choice(["torchvision", "grid_sample"]),
    default="torchvision",
    help="ONNX: deformable convs as the DeformConv op (opset 19) or as plain ops.",
)
@click.option("--set", "overrides", multiple=True, help="e.g. data.test_input_hw=[384,1280].")
@user_errors
def export(checkpoint, weights, arch, task_name, out, fmt, with_decode, dynamic, k, deform_impl, overrides) -> None:
    """Export the network to ONNX (.onnx, self-describing; see README) or TorchScript (.pt, raw maps)."""
    from centerpoint_suite.export import export_model

    exp, model, _ = _load_for_inference(checkpoint, weights, arch, task_name, "cpu", overrides)
    fmt = fmt or ("onnx" if out.suffix == ".onnx" else "torchscript")
    if fmt == "onnx":
        export_model(exp, model, out, fmt, with_decode=with_decode, dynamic=dynamic, k=k, deform_impl=deform_impl)
    else:
        if with_decode or dynamic or k is not None:
            raise UserError("--with-decode / --dynamic / --k apply to ONNX export (--format onnx or a .onnx file)")
        export_model(exp, model, out, fmt)
    size = out.stat().st_size / 2**20
    click.echo(f"exported to {out} ({size:.1f} MiB)", err=True)


@main.command()
@click.option("--task", "task_name", type=TASK_CHOICE, default="boxes2d")
@click.option("--arch", default="res18", show_default=True, help="Network of the whole-prediction and forward rows.")
@click.option("--repeat", type=int, default=10, show_default=True, help="Timed calls of each side (medians).")
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
def bench(task_name, arch, repeat, stages, data_dir, networks) -> None:
    """Time our stages side by side with the original's slow paths (re-implemented), interleaved
    in one run, and print the speed-up of each (baseline / ours)."""
    from centerpoint_suite.bench import run_bench

    if repeat < 1:
        raise UserError(f"--repeat {repeat}: must be at least 1")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UserError(f"--data {data_dir}: no such folder")
    archs = tuple(a.strip() for a in networks.split(",") if a.strip()) if networks else (arch,)
    unknown = [a for a in (arch, *archs) if a not in NETWORKS]
    if unknown:
        raise UserError(f"bench: unknown network {unknown[0]!r}; known: {', '.join(NETWORKS.names())}")
    run_bench(task_name, arch, repeat, echo=click.echo, stages=stages, data=data_dir, networks=archs)


@main.command("kitti-eval")
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
    _write_json(metrics, json_path)


if __name__ == "__main__":
    main()
