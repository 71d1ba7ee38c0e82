"""Export a trained network (raw maps out) for deployment: TorchScript, or ONNX when the
``onnx`` package is installed. Pre-processing (affine + normalisation) and decoding stay in
Python; the exported graph takes the normalised (1, 3, H, W) float input."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Experiment
from .errors import UserError


class _TupleOutputs(torch.nn.Module):
    """Dict outputs -> tuple in a fixed head order (ONNX and tracing want tensors)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(model.head_names)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[n] for n in self.names)


def export_model(exp: Experiment, model: torch.nn.Module, out: Path, fmt: str | None = None) -> Path:
    """Write ``out``; fmt "torchscript" (.pt) or "onnx" (.onnx), inferred from the suffix when None."""
    out = Path(out)
    fmt = fmt or ("onnx" if out.suffix == ".onnx" else "torchscript")
    model = model.eval().float()
    h, w = exp.data.test_input_hw
    example = torch.zeros(1, 3, h, w)
    wrapped = _TupleOutputs(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example, strict=False)
        traced.save(str(out))
        extra = {"heads.txt": ",".join(wrapped.names)}
        torch.jit.save(traced, str(out), _extra_files=extra)
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UserError(
                "--format onnx needs the 'onnx' package (pip install onnx); TorchScript needs nothing"
            ) from None
        torch.onnx.export(
            wrapped,
            example,
            str(out),
            input_names=["image"],
            output_names=list(wrapped.names),
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}},
        )
    else:
        raise UserError(f"--format {fmt}: use torchscript or onnx")
    return out
