"""``centerpoint bench``: our hot paths timed side by side with the slow paths the original
CenterNet takes (re-implemented here as baselines), in one run, reported as ratios.

Absolute times drift with the machine (2x within a day on shared CPUs); the ratio of two
timings taken in the same run is what to compare.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .geometry import center_scale_affine
from .heatmap import gaussian_radius, peak_scores, splat_gaussians
from .transforms import get_normalization, normalize_batch


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up (numba compile, allocator)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


# ---- baselines: the original's per-object python loops, NCHW max-pool, float warp ----------
def _gaussian2d(r: int) -> np.ndarray:
    sigma = (2 * r + 1) / 6
    m = np.arange(-r, r + 1)
    g = np.exp(-(m[:, None] ** 2 + m[None, :] ** 2) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    return g


def baseline_box_targets(boxes: np.ndarray, classes: np.ndarray, num_classes: int, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    hm = np.zeros((num_classes, h, w), np.float32)
    for b, c in zip(boxes, classes):  # one python iteration per object, a fresh gaussian each
        bh, bw = b[3] - b[1], b[2] - b[0]
        r = max(0, int(gaussian_radius(np.ceil(bh), np.ceil(bw))))
        cx, cy = int((b[0] + b[2]) / 2), int((b[1] + b[3]) / 2)
        g = _gaussian2d(r)
        left, right, top, bottom = min(cx, r), min(w - cx, r + 1), min(cy, r), min(h - cy, r + 1)
        region = hm[c, cy - top : cy + bottom, cx - left : cx + right]
        np.maximum(region, g[r - top : r + bottom, r - left : r + right], out=region)
    return hm


def ours_box_targets(boxes: np.ndarray, classes: np.ndarray, num_classes: int, hw: tuple[int, int]) -> np.ndarray:
    hm = np.zeros((num_classes, *hw), np.float32)
    wh = boxes[:, 2:] - boxes[:, :2]
    radii = np.maximum(0, np.floor(gaussian_radius(np.ceil(wh[:, 1]), np.ceil(wh[:, 0])))).astype(np.int32)
    centers = ((boxes[:, :2] + boxes[:, 2:]) / 2).astype(np.int32)
    splat_gaussians(hm, classes, centers, radii)
    return hm


def baseline_peaks(heat: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(heat)
    return prob * (F.max_pool2d(prob, 3, 1, 1) == prob).float()


def baseline_preprocess(image: np.ndarray, m: np.ndarray, hw: tuple[int, int]) -> torch.Tensor:
    warped = cv2.warpAffine(image, m, (hw[1], hw[0]), flags=cv2.INTER_LINEAR)
    x = warped.astype(np.float32) / 255.0
    x = (x - np.array([0.408, 0.447, 0.470], np.float32)) / np.array([0.289, 0.274, 0.278], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]


@torch.no_grad()
def run_bench(task: str = "boxes2d", arch: str = "small", repeat: int = 10, echo: Callable[[str], None] = print):
    echo(
        f"machine: {platform.machine()} {platform.processor() or ''} | torch {torch.__version__} | "
        f"threads {torch.get_num_threads()} | medians of {repeat}"
    )
    echo(f"{'stage':52s} {'ours ms':>9s} {'baseline ms':>12s} {'speed-up':>9s}")
    rows = []

    def row(name: str, ours: float, base: float | None) -> None:
        ratio = f"{base / ours:8.1f}x" if base else ""
        echo(f"{name:52s} {ours:9.2f} {base if base is not None else float('nan'):12.2f} {ratio}")
        rows.append((name, ours, base))

    rng = np.random.default_rng(0)
    for n in (7, 50):
        xy = rng.uniform(0, 100, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(4, 28, (n, 2))], 1).astype(np.float32)
        classes = rng.integers(0, 80, n).astype(np.int64)
        ref = baseline_box_targets(boxes, classes, 80, (128, 128))
        assert np.allclose(ours_box_targets(boxes, classes, 80, (128, 128)), ref, atol=1e-6)
        row(
            f"box heatmap targets, {n} objects (80x128x128)",
            _median_ms(lambda b=boxes, c=classes: ours_box_targets(b, c, 80, (128, 128)), repeat),
            _median_ms(lambda b=boxes, c=classes: baseline_box_targets(b, c, 80, (128, 128)), repeat),
        )
    for b in (1, 8):
        heat = torch.randn(b, 80, 128, 128)
        row(
            f"heatmap peaks (3x3), batch {b}, 80x128x128",
            _median_ms(lambda h=heat: peak_scores(h), repeat),
            _median_ms(lambda h=heat: baseline_peaks(h), repeat),
        )
    image = (rng.random((600, 1116, 3)) * 255).astype(np.uint8)
    m = center_scale_affine((558, 300), 1116, (512, 512))
    norm = get_normalization("original_coco")

    def ours_pre():
        warped = cv2.warpAffine(image, m, (512, 512), flags=cv2.INTER_LINEAR)
        return normalize_batch(torch.from_numpy(warped)[None], norm)

    row(
        "pre-process 1116x600 -> 512x512",
        _median_ms(ours_pre, repeat),
        _median_ms(lambda: baseline_preprocess(image, m, (512, 512)), repeat),
    )

    from . import create_task
    from .models import build_network

    t = create_task(task, classes=("a",) * 80) if task == "boxes2d" else create_task(task)
    model = build_network(arch, t.heads(), heatmap_heads=t.heatmap_heads()).eval()
    x = torch.randn(1, 3, 512, 512)
    plain = _median_ms(lambda: model(x), max(3, repeat // 3))
    model_cl = model.to(memory_format=torch.channels_last)
    xcl = x.contiguous(memory_format=torch.channels_last)
    cl = _median_ms(lambda: model_cl(xcl), max(3, repeat // 3))
    row(f"forward {arch} 512x512 batch 1 (channels_last vs NCHW)", cl, plain)
    return rows
