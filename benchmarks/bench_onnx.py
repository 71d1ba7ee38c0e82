"""onnxruntime vs PyTorch CPU forward time of exported networks, and the exported file sizes.

    python benchmarks/bench_onnx.py [--size 512] [--repeats 5] [--nets res18,dla34,resdcn18]

For each network (COCO 2D-box heads, 80 classes, random weights): a static ONNX file of one
``size`` x ``size`` image is exported (raw maps, and again ``--with-decode``); then the
PyTorch path (``engine.Predictor.raw_maps``: normalisation + channels_last forward) and the
onnxruntime session (uint8 input, normalisation in the graph) run the same batch of one
image, interleaved within each repeat (the shared machine's speed drifts); medians and the
ratio onnxruntime / PyTorch are printed. Networks with deformable convolutions are exported
twice: as the ONNX DeformConv op ("torchvision") and as plain ops ("grid_sample").
Run it under the machine's CPU lock; both runtimes use their default thread counts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from centerpoint_suite.config import default_config
from centerpoint_suite.engine import Predictor, build_model
from centerpoint_suite.export import export_onnx
from centerpoint_suite.models.dcn import ModulatedDeformConv
from centerpoint_suite.onnx_runtime import OnnxPredictor
from centerpoint_suite.transforms import get_normalization


def _times_ms(fn, images, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(images)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def bench(arch: str, size: int, repeats: int, folder: Path) -> None:
    exp = default_config("boxes2d")
    task = exp.task.with_classes(tuple(f"c{i}" for i in range(80)))
    exp = replace(
        exp, task=task, model=replace(exp.model, arch=arch), data=replace(exp.data, test_input_hw=(size, size))
    )
    torch.manual_seed(0)
    model = build_model(exp).eval()
    impls = ["torchvision", "grid_sample"] if any(isinstance(m, ModulatedDeformConv) for m in model.modules()) else [""]
    images = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    # the Predictor prepares its own copy (folded, fused): the same weights as the exported model
    torch_pred = Predictor(model, task, get_normalization(exp.data.normalization), torch.device("cpu"))
    for impl in impls:
        path = folder / f"{arch}_{impl or 'plain'}.onnx"
        t = time.perf_counter()
        export_onnx(exp, model, path, deform_impl=impl or "torchvision")
        export_s = time.perf_counter() - t
        dec = export_onnx(
            exp, model, folder / f"{arch}_{impl}_decode.onnx", with_decode=True, deform_impl=impl or "torchvision"
        )
        onnx = OnnxPredictor(path)
        onnx_dec = OnnxPredictor(dec)
        fns = {
            "pytorch": lambda x: torch_pred.raw_maps(torch.from_numpy(x)),
            "onnxruntime": onnx.raw_maps,
            "onnxruntime+decode": lambda x, o=onnx_dec: o.run(x, o.det_names),
        }
        for fn in fns.values():  # warm-up
            fn(images)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                times[name] += _times_ms(fn, images, 1)
        med = {k: statistics.median(v) for k, v in times.items()}
        label = f"{arch}{' (' + impl + ')' if impl else ''}"
        print(
            f"{label:24s} {size}x{size}: pytorch {med['pytorch']:7.1f} ms  onnxruntime {med['onnxruntime']:7.1f} ms"
            f"  ratio ort/pytorch {med['onnxruntime'] / med['pytorch']:.2f}  (+decode in graph "
            f"{med['onnxruntime+decode']:7.1f} ms)  file {path.stat().st_size / 2**20:.1f} MiB"
            f" (+decode {dec.stat().st_size / 2**20:.1f} MiB)  export {export_s:.0f} s",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--nets", default="res18,dla34,resdcn18")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.nets.split(","):
            bench(arch, args.size, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
