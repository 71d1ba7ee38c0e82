"""Network stages of ``centerpoint bench`` on their own: forward per network and the res18 training step.

    python benchmarks/bench_networks.py [--repeats 3] [--threads N] [--nets res18,resdcn18,dla34,hourglass104]

Ours (``prepare_for_inference``: folded batch norm, fused conv + ReLU, channels_last,
gather + GEMM deformable convolution) against the original's way of running the same
network (see ``centerpoint_suite.bench_networks``); medians of interleaved runs, ratios > 1
mean ours is faster. The training row is measured when res18 is listed.
"""

from __future__ import annotations

import argparse

import torch

from centerpoint_suite.bench_networks import ARCHS, network_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nets", default=",".join(ARCHS))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = network_rows(lambda s: print(s, flush=True), args.repeats, args.nets.split(","))
    print(f"{'stage':60s} {'ours ms':>9s} {'baseline ms':>12s} {'speed-up':>9s}")
    for name, ours, base in rows:
        print(f"{name:60s} {ours:9.1f} {base:12.1f} {base / ours:8.2f}x")


if __name__ == "__main__":
    main()
