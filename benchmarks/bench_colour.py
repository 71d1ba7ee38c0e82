"""A training batch's colour augmentation + normalisation: the one-pass numba kernel
(``colour_kernel``, through ``transforms.augment_normalize_batch``) against the torch formula
(``colour_augment_batch`` then ``normalize_batch``), interleaved in one process.

    python benchmarks/bench_colour.py [--batch 16] [--size 384] [--repeat 10]

Random uint8 images and each image's own colour parameters; prints the medians in ms, the
ratio and the largest difference between the two results (normalised units).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from centerpoint_suite.bench_networks import interleaved_ms
from centerpoint_suite.loading import keep_freed_memory
from centerpoint_suite.transforms import (
    augment_normalize_batch,
    colour_augment_batch,
    get_normalization,
    normalize_batch,
    sample_colour_params,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--norm", default="imagenet_rgb")
    args = parser.parse_args()
    keep_freed_memory()  # as in a training process
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8))
    params = torch.from_numpy(np.stack([sample_colour_params(rng) for _ in range(args.batch)]))
    norm = get_normalization(args.norm)
    fns = {
        "torch formula": lambda: normalize_batch(colour_augment_batch(images, params), norm),
        "kernel": lambda: augment_normalize_batch(images, params, norm),
    }
    ms = interleaved_ms(fns, args.repeat)
    diff = (fns["kernel"]() - fns["torch formula"]()).abs().max().item()
    print(f"batch {args.batch} x {args.size}x{args.size}, {torch.get_num_threads()} threads, {args.norm}")
    for name, t in ms.items():
        print(f"  {name:14s} {t:8.2f} ms")
    print(f"  speed-up {ms['torch formula'] / ms['kernel']:.2f}x, largest difference {diff:.1e}")


if __name__ == "__main__":
    main()
