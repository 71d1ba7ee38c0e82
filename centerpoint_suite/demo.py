"""Demo / predict: images, folders, video files and cameras -> annotated files + detections JSON.

Headless-safe: everything is written to files; ``show`` opens a window only where a display
exists.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from .config import Experiment
from .data import Batch
from .datasets.coco import read_image
from .engine import eval_resize
from .errors import UserError
from .progress import Progress
from .transforms import EvalResize
from .types import Predictions, Sample

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg"}


class BatchPredictor(Protocol):
    """What the demo needs: ``engine.Predictor`` or ``onnx_runtime.OnnxPredictor``."""

    def predict_batch(self, batch: Batch) -> list[Predictions]: ...

    def predict_samples(self, samples: list[Sample], resize: EvalResize) -> list[Predictions]: ...


def detections_to_json(pred: Predictions, classes: tuple[str, ...]) -> list[dict]:
    out = []
    for i in range(len(pred)):
        cls = int(pred.classes[i])
        d = {
            "box": [round(float(v), 2) for v in pred.boxes[i]],
            "score": round(float(pred.scores[i]), 4),
            "class": classes[cls] if cls < len(classes) else cls,
        }
        for k, v in pred.extras.items():
            value = np.asarray(v[i])
            if np.issubdtype(value.dtype, np.integer):
                d[k] = value.tolist()
            elif not np.isnan(value).all():  # composite tasks: another task's field is NaN here
                d[k] = np.round(value.astype(np.float64), 3).tolist()
        out.append(d)
    return out


class FrameRunner:
    """One frame (BGR uint8) -> (Predictions, annotated frame)."""

    def __init__(self, exp: Experiment, predictor: BatchPredictor, threshold: float, calib: np.ndarray | None) -> None:
        self.exp, self.predictor, self.threshold, self.calib = exp, predictor, threshold, calib
        self.resize = eval_resize(exp)

    def __call__(self, frame: np.ndarray, image_id: int | str) -> tuple[Predictions, np.ndarray]:
        empty = np.zeros((0, 4), np.float32)
        calib = self.calib
        if calib is None:
            calib = self.exp.task.calibration(frame.shape[:2])
        sample = Sample(frame, image_id, empty, np.zeros(0, np.int64), np.zeros(0, bool), calib=calib)
        with torch.inference_mode():  # from the original image: every test scale warps it itself
            pred = self.predictor.predict_samples([sample], self.resize)[0]
        keep = pred.extras.get("score2d", pred.scores) >= min(self.threshold, 0.05)  # see Predictions
        pred = pred.select(keep)
        return pred, self.exp.task.draw(frame, pred, self.threshold)


def _can_show() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_video(
    runner: FrameRunner,
    cap: cv2.VideoCapture,
    out_path: Path,
    name: str,
    max_frames: int,
    show: bool,
    fps_default: float = 30.0,
) -> list[dict]:
    fps = cap.get(cv2.CAP_PROP_FPS) or fps_default
    if not np.isfinite(fps) or fps <= 0:
        fps = fps_default
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    total = total if total > 0 else None  # cameras and streams report 0 or -1
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    writer = None
    records = []

    def frames():
        n = 0
        while not max_frames or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame
            n += 1

    start = time.perf_counter()
    n = 0
    bar = Progress(frames(), f"video {name}", total=total)
    try:
        for n, frame in enumerate(bar, 1):
            pred, drawn = runner(frame, n - 1)
            if writer is None:
                h, w = drawn.shape[:2]
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise UserError(f"{out_path}: cannot open a video writer (mp4v)")
            writer.write(drawn)
            records.append({"frame": n - 1, "detections": detections_to_json(pred, runner.exp.task.classes)})
            bar.set_postfix(f"{n / max(time.perf_counter() - start, 1e-9):.1f} fps")
            if show and _can_show():
                cv2.imshow("centerpoint", drawn)
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
    except KeyboardInterrupt:  # Ctrl-C ends a camera run: keep what was recorded
        log.info("%s: interrupted after %d frames", name, n)
    finally:
        if writer is not None:
            writer.release()  # finalise the MP4 even on errors / interruption
    elapsed = time.perf_counter() - start
    log.info("%s: %d frames in %.1fs (%.2f fps) -> %s", name, n, elapsed, n / max(elapsed, 1e-9), out_path)
    return records


def run_demo(
    exp: Experiment,
    predictor: BatchPredictor,
    inputs: list[Path],
    out: Path,
    threshold: float,
    camera: int | None = None,
    max_frames: int = 0,
    show: bool = False,
    calib: Path | None = None,
) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    calib_matrix = None
    if calib is not None:
        calib_matrix = exp.task.calibration((1, 1), Path(calib))
    runner = FrameRunner(exp, predictor, threshold, calib_matrix)
    images: list[Path] = []
    videos: list[Path] = []
    for p in inputs:
        p = Path(p)
        if p.is_dir():
            for q in sorted(p.iterdir()):
                if q.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(q)
                elif q.suffix.lower() in VIDEO_SUFFIXES:
                    videos.append(q)
        elif p.is_file():
            (videos if p.suffix.lower() in VIDEO_SUFFIXES else images).append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    if not images and not videos and camera is None:
        raise UserError(f"no images or videos found in {', '.join(map(str, inputs))}")
    result: dict = {"images": [], "videos": []}
    for path in Progress(images, "images", enabled=len(images) > 1):
        frame = read_image(path)
        pred, drawn = runner(frame, path.stem)
        cv2.imwrite(str(out / f"{path.stem}_pred.jpg"), drawn)
        result["images"].append({"file": str(path), "detections": detections_to_json(pred, exp.task.classes)})
        if show and _can_show():
            cv2.imshow("centerpoint", drawn)
            cv2.waitKey(0)
    for path in videos:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise UserError(f"{path}: cannot open video")
        frames = run_video(runner, cap, out / f"{path.stem}_pred.mp4", path.name, max_frames, show)
        cap.release()
        result["videos"].append({"file": str(path), "output": str(out / f"{path.stem}_pred.mp4"), "frames": frames})
    if camera is not None:
        cap = cv2.VideoCapture(camera)
        if not cap.isOpened():
            raise UserError(f"--camera {camera}: cannot open the camera")
        frames = run_video(runner, cap, out / f"camera{camera}.mp4", f"camera {camera}", max_frames, show)
        cap.release()
        result["videos"].append(
            {"file": f"camera:{camera}", "output": str(out / f"camera{camera}.mp4"), "frames": frames}
        )
    (out / "detections.json").write_text(json.dumps(result))
    log.info("wrote %d image(s), %d video(s) and detections.json to %s", len(images), len(result["videos"]), out)
    return result
