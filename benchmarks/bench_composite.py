"""Forward time of one composite network (boxes2d+pose2d heads on one backbone) against the two
single-task networks run one after the other, in one run (CPU, batch 1, eval, no grad).

    python benchmarks/bench_composite.py [--nets small:256,res18:512,dla34:512] [--repeats 7]

The three models are timed in turn within each repeat (the machine's speed drifts); medians.
boxes2d has the 80 COCO classes, pose2d 17 joints (the original heads).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from centerpoint_suite import create_task
from centerpoint_suite.datasets.coco import COCO_CLASSES
from centerpoint_suite.models import build_network


def _model(arch: str, task) -> torch.nn.Module:
    net = build_network(arch, task.heads(), heatmap_heads=task.heatmap_heads()).eval()
    return net.to(memory_format=torch.channels_last)


@torch.no_grad()
def _ms(model: torch.nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    model(x)
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nets", default="small:256,res18:512,dla34:512")
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    print(f"machine: {platform.machine()} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    boxes = create_task("boxes2d", classes=COCO_CLASSES)
    pose = create_task("pose2d")
    both = create_task("boxes2d+pose2d").with_task("boxes2d", boxes)
    for item in a.nets.split(","):
        arch, size = item.split(":")
        x = torch.randn(1, 3, int(size), int(size)).contiguous(memory_format=torch.channels_last)
        models = {"boxes2d": _model(arch, boxes), "pose2d": _model(arch, pose), "composite": _model(arch, both)}
        for m in models.values():
            _ms(m, x)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(a.repeats):
            for k, m in models.items():
                times[k].append(_ms(m, x))
        med = {k: statistics.median(v) for k, v in times.items()}
        pairs = [c / (b + q) for c, b, q in zip(times["composite"], times["boxes2d"], times["pose2d"])]
        print(
            f"{arch} {size}x{size}: boxes2d {med['boxes2d']:.1f} ms + pose2d {med['pose2d']:.1f} ms = "
            f"{med['boxes2d'] + med['pose2d']:.1f} ms; composite {med['composite']:.1f} ms; "
            f"composite / (boxes2d + pose2d) = {statistics.median(pairs):.2f} (median of per-repeat ratios)"
        )


if __name__ == "__main__":
    main()
