"""Run an exported ONNX file with onnxruntime, configured by the file's own metadata.

``OnnxPredictor`` has ``engine.Predictor``'s ``predict_batch(batch) -> list[Predictions]``,
so ``demo.run_demo`` (``centerpoint predict --onnx``) takes either. The Python side only
letterboxes the images (as ``data.prepare_eval``) and maps the graph's detections back to
the original images with the task's ``to_predictions`` (the same code as the PyTorch path);
a file exported without ``--with-decode`` is decoded with the task's ``decode``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import DataConfig, Experiment, ModelConfig, TestConfig, task_from_dict
from .data import Batch, collate, prepare_eval
from .errors import UserError
from .export import parse_metadata
from .transforms import STRIDE, EvalResize
from .types import Predictions, Sample


def experiment_from_metadata(meta: dict[str, Any]) -> Experiment:
    """The Experiment an exported file stands for: its task (with classes), normalisation,
    test input size / mode and K (what ``demo.run_demo`` and the letterbox need)."""
    task = task_from_dict(meta["task"])
    data = replace(
        DataConfig(),
        test_input_hw=tuple(meta["input_hw"]),
        test_mode=meta["test_mode"],
        normalization=meta["normalization"]["name"],
        workers=0,
    )
    return Experiment(task=task, data=data, model=ModelConfig(arch=meta["arch"]), test=TestConfig(k=meta["k"]))


class OnnxPredictor:
    """onnxruntime session + the file's metadata: letterboxed uint8 batches -> Predictions.

    path:    a file written by ``centerpoint export --format onnx``.
    threads: intra-op threads (None: onnxruntime's default, all cores).
    k:       detections per image for a file without ``--with-decode`` [the file's K].
    """

    def __init__(self, path: Path | str, threads: int | None = None, k: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("--onnx needs onnxruntime: pip install 'centerpoint-suite[onnx]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"--onnx {self.path}: no such file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UserError(f"--onnx {self.path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None
        self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.exp = experiment_from_metadata(self.meta)
        self.task = self.exp.task
        self.heads = list(self.meta["heads"])
        self.k = k or self.meta["k"]
        names = [o.name for o in self.session.get_outputs()]
        self.det_names = [n for n in names if n.startswith("det_")]

    def _check(self, images: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise UserError(f"{self.path}: expects uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
        h, w = images.shape[1:3]
        if self.meta["dynamic"]:
            m = self.meta["size_multiple"]
            if h % m or w % m:
                raise UserError(f"{self.path}: input {h}x{w} is not a multiple of {m}")
        elif [h, w] != list(self.meta["input_hw"]) or images.shape[0] != 1:
            raise UserError(
                f"{self.path}: exported for one {self.meta['input_hw'][0]}x{self.meta['input_hw'][1]} image; "
                f"got {images.shape[0]} of {h}x{w} (export with --dynamic for other sizes)"
            )

    def run(self, images: np.ndarray, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """uint8 (N, H, W, 3) BGR letterboxed -> {output name: array} (all outputs when names is None)."""
        images = np.ascontiguousarray(images)
        self._check(images)
        names = names or [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {"image": images})))

    def raw_maps(self, images: np.ndarray) -> dict[str, torch.Tensor]:
        """Raw maps {head: (N, C, H/4, W/4)} as torch tensors."""
        return {n: torch.from_numpy(v) for n, v in self.run(images, self.heads).items()}

    def predict_samples(self, samples: list[Sample], resize: EvalResize) -> list[Predictions]:
        """Samples (original images) -> Predictions: letterbox, run, map back (one test scale)."""
        return self.predict_batch(collate([prepare_eval(s, self.exp.task, resize) for s in samples]))

    def predict_batch(self, batch: Batch) -> list[Predictions]:
        images = batch.images.cpu().numpy()
        if self.det_names and self.k == self.meta["k"]:
            out = self.run(images, self.det_names)
            dets = {n[len("det_") :]: v for n, v in out.items()}
            return self.task.to_predictions(dets, batch.meta, scale=float(STRIDE))
        return self.task.decode(self.raw_maps(images), batch.meta, self.k)
