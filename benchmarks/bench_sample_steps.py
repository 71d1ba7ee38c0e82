"""Where the time of one training sample goes: each sub-step of ``centerpoint bench``'s
"training sample" rows (warp, normalise, targets) timed alone, ours against the path it replaced
and against the original's, interleaved, medians over many repeats, per sample.

    python benchmarks/bench_sample_steps.py [--data DIR] [--count 8] [--repeat 40] [--cv-threads N]

``--data``: a COCO folder (instances + person_keypoints; default: synthetic images). Each line
is a sub-step: its median ms per sample for each variant, and the ratio to the first variant
(the warp: OpenCV with its threads and with one, as in a data worker).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from centerpoint_suite import bench_baselines as orig
from centerpoint_suite import create_task, streaming
from centerpoint_suite.bench import load_samples
from centerpoint_suite.bench_networks import interleaved_ms
from centerpoint_suite.geometry import center_scale_affine
from centerpoint_suite.loading import keep_freed_memory
from centerpoint_suite.transforms import get_normalization, normalization_lut, normalize_batch, warp_image
from centerpoint_suite.types import OutputGeometry


def interleaved(fns: dict, repeat: int, per: int) -> dict[str, float]:
    """Median ms per sample of each function (``per`` samples a call), timed alternately."""
    return {k: v / per for k, v in interleaved_ms(fns, repeat).items()}


def show(name: str, res: dict[str, float]) -> None:
    first = next(iter(res.values()))
    parts = "  ".join(f"{k} {v:7.3f} ms ({first / v:4.2f}x)" for k, v in res.items())
    print(f"{name:28s} {parts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--cv-threads", type=int, default=None)
    args = ap.parse_args()
    keep_freed_memory()  # as the bench and the trainer do
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    print(f"opencv {cv2.__version__} ({cv2.getNumThreads()} threads), torch {torch.__version__}, repeat {args.repeat}")
    for kind in ("instances", "person_keypoints"):
        steps(kind, args.data, args.count, args.repeat)


def steps(kind: str, data: Path | None, count: int, repeat: int) -> None:
    """Print the warp, normalise and targets lines of one kind of sample (instances / person_keypoints)."""
    in_hw, out_hw = (512, 512), (128, 128)
    norm = get_normalization("original_coco")
    lut = normalization_lut(norm)
    samples, classes = load_samples(data, kind, count)
    rng = np.random.default_rng(1)
    affines = [
        center_scale_affine((s.hw[1] / 2, s.hw[0] / 2 + rng.uniform(-20, 20)), max(s.hw), in_hw) for s in samples
    ]
    n = len(samples)
    task = create_task("boxes2d", classes=classes) if kind == "instances" else create_task("pose2d")
    print(f"-- {kind}: {n} samples")
    warped = [warp_image(s.image, m, in_hw) for s, m in zip(samples, affines)]
    threads = cv2.getNumThreads()

    def warp(n_threads: int) -> list:
        cv2.setNumThreads(n_threads)
        out = [warp_image(s.image, m, in_hw) for s, m in zip(samples, affines)]
        cv2.setNumThreads(threads)
        return out

    show(
        "warp (cv2.warpAffine)",
        interleaved({f"{threads} threads": lambda: warp(threads), "1 thread": lambda: warp(1)}, repeat, n),
    )
    show(
        "normalise",
        interleaved(
            {
                "cv2.LUT": lambda: [cv2.LUT(w, lut) for w in warped],
                "ours": lambda: [normalize_batch(torch.from_numpy(w)[None], norm) for w in warped],
                "original": lambda: [
                    (
                        (w.astype(np.float32) / 255.0 - np.array(norm.mean, np.float32))
                        / np.array(norm.std, np.float32)
                    ).transpose(2, 0, 1)
                    for w in warped
                ],
            },
            repeat,
            n,
        ),
    )
    geos = [OutputGeometry((m / 4).astype(np.float32), out_hw) for m in affines]
    if kind == "instances":

        def base_targets():
            return [
                orig._center_loop(s, g.trans_output, out_hw, len(classes), task.max_objects)
                for s, g in zip(samples, geos)
            ]
    else:

        def base_targets():
            return [
                orig.original_pose_targets(s, g.trans_output, out_hw, 17, task.max_objects)
                for s, g in zip(samples, geos)
            ]

    def ours_targets(stream: bool = True) -> list:
        saved, streaming.STREAMING = streaming.STREAMING, stream
        try:
            return [task.build_targets(s, g) for s, g in zip(samples, geos)]
        finally:
            streaming.STREAMING = saved

    show(
        "targets",
        interleaved(
            {"ours": ours_targets, "np.zeros maps": lambda: ours_targets(False), "original": base_targets},
            repeat,
            n,
        ),
    )


if __name__ == "__main__":
    main()
