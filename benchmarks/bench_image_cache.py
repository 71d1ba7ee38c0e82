"""A training batch's preparation with and without the in-memory image cache (``data.cache_gb``),
interleaved in one process, on the built-in mono3d data (or a task's data given with --data).

    python benchmarks/bench_image_cache.py [--task mono3d] [--data DIR] [--batches 25] [--repeat 3]

Prints the median ms per batch of the in-process loader (decode or cached image, affine warp,
targets, collate) for both, and their ratio; the cached source is filled before timing, as it
is from the second epoch of a run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from centerpoint_suite.config import default_config
from centerpoint_suite.data import TrainDataset, collate
from centerpoint_suite.engine import cache_dir
from centerpoint_suite.image_cache import CachedImages
from centerpoint_suite.trainer import for_source


def batch_times(ds: TrainDataset, epoch: int, batch: int, batches: int) -> list[float]:
    times = []
    for b in range(batches):
        t0 = time.perf_counter()
        collate([ds[(epoch, (b * batch + i) % len(ds))] for i in range(batch)])
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mono3d")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--batches", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    exp = default_config(args.task, args.data is not None)
    root = args.data or exp.task.default_data(cache_dir())
    source = exp.task.open_dataset(root, exp.data.train_split)
    exp = for_source(exp, source)
    batch, count = exp.train.batch_size, args.batches * exp.train.batch_size
    cached = CachedImages(source, 64.0)
    for i in range(min(count, len(source))):
        cached[i]  # filled, as after the first epoch
    plain_ds, cached_ds = (TrainDataset(s, exp.task, exp.data.input_hw, exp.data.augment) for s in (source, cached))
    results: dict[str, list[float]] = {"decoded": [], "cached": []}
    for r in range(args.repeat):
        results["decoded"] += batch_times(plain_ds, r, batch, args.batches)
        results["cached"] += batch_times(cached_ds, r, batch, args.batches)
    med = {k: 1000 * float(np.median(v)) for k, v in results.items()}
    print(f"{args.task} batch of {batch} at {exp.data.input_hw}: {len(cached.images)} images cached")
    ratio = med["decoded"] / med["cached"]
    print(f"decoded {med['decoded']:.1f} ms, cached {med['cached']:.1f} ms per batch: {ratio:.2f}x")


if __name__ == "__main__":
    main()
