"""The commands that run a trained network on new input: ``predict`` (images, folders, videos, a
camera; PyTorch or an exported ONNX file) and ``export`` (ONNX or TorchScript)."""

from __future__ import annotations

from pathlib import Path

import click

from centerpoint_suite.errors import UserError

from .common import TASK_CHOICE, load_for_inference, scale_options, user_errors, with_test_options


@click.command()
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

        exp, model, dev = load_for_inference(checkpoint, weights, arch, task_name, device, overrides)
        exp = with_test_options(exp, flip_test, test_scales, merge)
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


@click.command()
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

    exp, model, _ = load_for_inference(checkpoint, weights, arch, task_name, "cpu", overrides)
    fmt = fmt or ("onnx" if out.suffix == ".onnx" else "torchscript")
    if fmt == "onnx":
        export_model(exp, model, out, fmt, with_decode=with_decode, dynamic=dynamic, k=k, deform_impl=deform_impl)
    else:
        if with_decode or dynamic or k is not None:
            raise UserError("--with-decode / --dynamic / --k apply to ONNX export (--format onnx or a .onnx file)")
        export_model(exp, model, out, fmt)
    size = out.stat().st_size / 2**20
    click.echo(f"exported to {out} ({size:.1f} MiB)", err=True)
