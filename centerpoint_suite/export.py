"""Export a network for deployment without this package's Python code.

ONNX (``export_onnx``): a self-describing file. The graph takes the letterboxed uint8 batch
``image`` (N, H, W, 3) BGR (what ``data.collate`` produces) and normalises it inside; it
outputs the raw (pre-sigmoid) maps, one output per head, and with ``with_decode`` also the
decoded top-K detections (``det_*``: 3x3 peaks, top-K over classes x cells, gathers, mapped
to network-input pixels) through the task's own ``decode_tensors``. The file's
``metadata_props`` hold one JSON document under ``METADATA_KEY`` (``read_metadata``): task
and its parameters, classes, normalisation, input size, stride, heads, K and every output's
shape and coordinate frame. Only the inverse letterbox affine to the original image stays
outside the graph (see README "Deploying with ONNX").

TorchScript (``export_torchscript``): raw maps out of a normalised float (1, 3, H, W) input.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import Experiment, to_dict
from .errors import UserError
from .models.dcn import ModulatedDeformConv, set_deform_impl
from .task import Task
from .transforms import STRIDE, Normalization, get_normalization, normalize_batch

METADATA_KEY = "centerpoint_suite"
FORMAT_VERSION = 1
OPSET = 19  # DeformConv (deformable networks) needs opset 19
DEFORM_IMPLS = ("torchvision", "grid_sample")


class _TupleOutputs(nn.Module):
    """Dict outputs -> tuple in a fixed head order (tracing wants tensors)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(model.head_names)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        return tuple(out[n] for n in self.names)


class DeployGraph(nn.Module):
    """uint8 (N, H, W, 3) BGR letterboxed batch -> raw maps (+ decoded detections).

    Outputs, in order: one raw (pre-sigmoid) map (N, C, H/4, W/4) per head, then with
    ``with_decode`` the task's ``decode_tensors`` fields as ``det_<field>`` (N, K, ...),
    coordinates in network-input pixels, floating outputs as float32.
    """

    def __init__(self, model: nn.Module, task: Task, norm: Normalization, k: int, with_decode: bool) -> None:
        super().__init__()
        self.model, self.task, self.norm, self.k, self.with_decode = model, task, norm, k, with_decode
        self.heads = tuple(model.head_names)
        self.fields = tuple(task.detection_fields()) if with_decode else ()

    def output_names(self) -> list[str]:
        return [*self.heads, *(f"det_{f}" for f in self.fields)]

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        maps = self.model(normalize_batch(image, self.norm))
        out = [maps[n] for n in self.heads]
        if self.with_decode:
            dets = self.task.decode_tensors(maps, self.k, scale=float(STRIDE))
            out += [dets[f].float() if dets[f].is_floating_point() else dets[f] for f in self.fields]
        return tuple(out)


def input_multiple(arch: str, heads: dict[str, int], candidates: tuple[int, ...] = (32, 64, 128, 256)) -> int:
    """Smallest of ``candidates`` that the network's input height and width must be a multiple
    of (32 for ResNet / DLA, 128 for Hourglass), probed with shape-only (meta) tensors."""
    from .models import build_network

    with torch.device("meta"):
        net = set_deform_impl(build_network(arch, heads, heatmap_heads=()), "grid_sample").eval()
        for m in candidates:
            h, w = 3 * m, 5 * m  # odd multiples: a network needing 2m fails here
            try:
                with torch.no_grad():
                    out = net(torch.empty(1, 3, h, w))
            except RuntimeError:
                continue
            if all(t.shape[-2:] == (h // STRIDE, w // STRIDE) for t in out.values()):
                return m
    raise UserError(f"network {arch}: no input size multiple among {candidates} works")


def build_metadata(
    exp: Experiment,
    graph: DeployGraph,
    output_shapes: dict[str, list[int | str]],
    input_hw: tuple[int, int],
    dynamic: bool,
    multiple: int,
    deform_impl: str,
) -> dict[str, Any]:
    """The JSON document stored in the file (see module docstring). ``output_shapes``: the
    exported graph's output shapes (symbolic dimensions as strings)."""
    from . import __version__

    norm_name = exp.data.normalization
    fields = exp.task.detection_fields()
    heatmaps = set(exp.task.heatmap_heads())
    outputs = []
    for name in graph.output_names():
        if name in graph.heads:
            frame = "output cells (stride 4)"
            desc = "raw logits (pre-sigmoid)" if name in heatmaps else "raw regression map, as trained"
        else:
            desc = fields[name[4:]]
            frame = "network-input pixels" if "{frame}" in desc else ""
            desc = desc.replace("{frame}", "network-input pixels")
        outputs.append({"name": name, "shape": output_shapes[name], "frame": frame, "description": desc})
    h, w = ("height", "width") if dynamic else input_hw
    return {
        "format_version": FORMAT_VERSION,
        "producer": f"centerpoint_suite {__version__}",
        "task": to_dict(exp.task),
        "classes": list(exp.task.classes),
        "arch": exp.model.arch,
        "input": {
            "name": "image",
            "dtype": "uint8",
            "shape": ["batch", h, w, 3],
            "channel_order": "bgr",
            "note": "letterboxed to the network input; normalised inside the graph",
        },
        "input_hw": list(input_hw),
        "dynamic": dynamic,
        "size_multiple": multiple,
        "test_mode": exp.data.test_mode if dynamic else "fixed",
        "normalization": {"name": norm_name, **asdict(get_normalization(norm_name))},
        "stride": STRIDE,
        "heads": dict(exp.task.heads()),
        "with_decode": graph.with_decode,
        "k": graph.k,
        "deform_impl": deform_impl,
        "outputs": outputs,
    }


def _name_dims(program: Any, graph: DeployGraph, heads: dict[str, int], input_hw: tuple[int, int], dynamic: bool):
    """Give the graph's input and outputs readable shapes ("batch", "height", "width",
    "height/4", "width/4"; K fixed) and return {output name: shape}."""
    import onnx_ir as ir

    b, h, w = ("batch", "height", "width") if dynamic else (1, *input_hw)
    oh, ow = ("height/4", "width/4") if dynamic else (h // STRIDE, w // STRIDE)
    g = program.model.graph
    g.inputs[0].shape = ir.Shape([b, h, w, 3])
    shapes: dict[str, list[int | str]] = {}
    for value in g.outputs:
        if value.name in heads:
            dims = [b, heads[value.name], oh, ow]
        else:  # det_*: (batch, K, ...); export guarantees K cells, so min(k, cells) == k
            dims = [b, graph.k, *(int(d) for d in list(value.shape)[2:])]
        value.shape = ir.Shape(dims)
        shapes[value.name] = dims
    return shapes


def export_onnx(
    exp: Experiment,
    model: nn.Module,
    out: Path,
    with_decode: bool = False,
    dynamic: bool = False,
    k: int | None = None,
    deform_impl: str = "torchvision",
) -> Path:
    """Write a self-describing ONNX file (see module docstring) and return its path.

    input size: ``exp.data.test_input_hw``; with ``dynamic`` batch, height and width are free
    (height and width multiples of the network's ``input_multiple``).
    k: detections per image with ``with_decode`` [exp.test.k]; the output map must have at
    least k cells.
    deform_impl: deformable convolutions as the ONNX ``DeformConv`` op ("torchvision") or
    as plain ops ("grid_sample"; for runtimes without DeformConv).
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs the onnx extra: pip install 'centerpoint-suite[onnx]'") from None
    if deform_impl not in DEFORM_IMPLS:
        raise UserError(f"--deform-impl {deform_impl}: use one of {', '.join(DEFORM_IMPLS)}")
    out = Path(out)
    k = int(k or exp.test.k)
    heads = dict(exp.task.heads())
    multiple = input_multiple(exp.model.arch, heads)
    in_h, in_w = (int(v) for v in exp.data.test_input_hw)
    if in_h % multiple or in_w % multiple:
        raise UserError(f"input size {in_h}x{in_w}: {exp.model.arch} needs multiples of {multiple}")
    min_cells = (in_h // STRIDE) * (in_w // STRIDE)
    if with_decode and k > min_cells:
        raise UserError(f"--k {k}: more than the {min_cells} cells of a {in_h}x{in_w} input")
    model = model.eval().float()
    impls = {m: m.impl for m in model.modules() if isinstance(m, ModulatedDeformConv)}
    set_deform_impl(model, deform_impl)  # restored below: the caller's model keeps its setting
    graph = DeployGraph(model, exp.task, get_normalization(exp.data.normalization), k, with_decode).eval()
    if dynamic:
        side = multiple
        while with_decode and (side // STRIDE) ** 2 < k:  # smallest square input with k cells
            side += multiple
        example = torch.zeros(2, 2 * side, 2 * side, 3, dtype=torch.uint8)
        hd = torch.export.Dim("h", min=side // multiple, max=8192 // multiple)
        wd = torch.export.Dim("w", min=side // multiple, max=8192 // multiple)
        shapes = {"image": {0: torch.export.Dim("batch", min=1, max=1024), 1: multiple * hd, 2: multiple * wd}}
    else:
        example = torch.zeros(1, in_h, in_w, 3, dtype=torch.uint8)
        shapes = None
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                graph,
                (example,),
                input_names=["image"],
                output_names=graph.output_names(),
                dynamic_shapes=shapes,
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        for m, impl in impls.items():
            m.impl = impl
    shapes = _name_dims(program, graph, heads, (in_h, in_w), dynamic)
    meta = build_metadata(exp, graph, shapes, (in_h, in_w), dynamic, multiple, deform_impl)
    program.model.metadata_props[METADATA_KEY] = json.dumps(meta)
    program.save(str(out), external_data=False)
    return out


def read_metadata(path: Path | str) -> dict[str, Any]:
    """The ``METADATA_KEY`` JSON document of an exported file; UserError naming the file when
    it is missing, unreadable or of a newer format version."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UserError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    return parse_metadata(props, path)


def parse_metadata(props: dict[str, str], path: Path | str) -> dict[str, Any]:
    """Validate the metadata map of a file (from onnx or an onnxruntime session)."""
    if METADATA_KEY not in props:
        raise UserError(f"{path}: no {METADATA_KEY} metadata (export it with `centerpoint export`)")
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: unreadable {METADATA_KEY} metadata ({exc})") from None
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{path}: metadata format version {version}; this version reads <= {FORMAT_VERSION}")
    return meta


def export_torchscript(exp: Experiment, model: nn.Module, out: Path) -> Path:
    """TorchScript file: normalised float (1, 3, H, W) -> tuple of raw maps in head order
    (the order is stored in the file's ``heads.txt``)."""
    out = Path(out)
    model = model.eval().float()
    h, w = exp.data.test_input_hw
    wrapped = _TupleOutputs(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        traced = torch.jit.trace(wrapped, torch.zeros(1, 3, h, w), strict=False)
    torch.jit.save(traced, str(out), _extra_files={"heads.txt": ",".join(wrapped.names)})
    return out


def export_model(exp: Experiment, model: nn.Module, out: Path, fmt: str | None = None, **onnx_options: Any) -> Path:
    """Write ``out``; fmt "torchscript" (.pt) or "onnx" (.onnx), inferred from the suffix when None."""
    out = Path(out)
    fmt = fmt or ("onnx" if out.suffix == ".onnx" else "torchscript")
    if fmt == "torchscript":
        return export_torchscript(exp, model, out)
    if fmt == "onnx":
        return export_onnx(exp, model, out, **onnx_options)
    raise UserError(f"--format {fmt}: use torchscript or onnx")
