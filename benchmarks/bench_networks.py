"""CPU forward time of every original CenterNet network (batch 1, eval, no grad).

    python benchmarks/bench_networks.py [--size 512] [--repeats 3] [--threads N] [--nets res18,dla34]

For each network: default (NCHW) time, channels_last time and their ratio; for networks with
deformable convolutions also the time with torchvision's ``deform_conv2d`` and the ratio
ours / torchvision. Variants are interleaved within each repeat (the shared machine's speed
drifts) and the median is reported. Heads are the COCO 2D-box set (80 + 2 + 2 channels).
``--cpu-time`` reports process CPU time instead of wall time: with ``--threads 1`` that is the
work done, independent of other processes competing for the cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from centerpoint_suite.models import build_network
from centerpoint_suite.models.dcn import ModulatedDeformConv, set_deform_impl

NETS = ["res18", "res34", "res50", "res101", "resdcn18", "resdcn34", "resdcn50", "resdcn101", "dla34", "hourglass104"]
HEADS = {"heatmap": 80, "size": 2, "offset": 2}


CLOCK = time.perf_counter


def _time(model: torch.nn.Module, x: torch.Tensor) -> float:
    t = CLOCK()
    with torch.no_grad():
        model(x)
    return (CLOCK() - t) * 1e3


def bench(arch: str, size: int, repeats: int) -> dict[str, float]:
    model = build_network(arch, HEADS).eval()
    has_dcn = any(isinstance(m, ModulatedDeformConv) for m in model.modules())
    x = torch.randn(1, 3, size, size)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    model_cl = build_network(arch, HEADS).eval().to(memory_format=torch.channels_last)
    model_cl.load_state_dict(model.state_dict())

    def tv(m, inp):
        set_deform_impl(m, "torchvision")
        try:
            return _time(m, inp)
        finally:
            set_deform_impl(m, "auto")

    variants = {"default": lambda: _time(model, x), "channels_last": lambda: _time(model_cl, x_cl)}
    if has_dcn:
        variants["torchvision_dcn"] = lambda: tv(model, x)
    for f in variants.values():  # warm-up (oneDNN primitive creation)
        f()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, f in variants.items():
            times[k].append(f())
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time")
    args = ap.parse_args()
    global CLOCK
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        CLOCK = time.process_time
    clock = "CPU time" if args.cpu_time else "wall time"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x3x{args.size}x{args.size}, "
        f"median of {args.repeats} ({clock})"
    )
    print(f"{'network':<14}{'default ms':>12}{'ch_last ms':>12}{'cl/def':>8}{'tv-dcn ms':>12}{'ours/tv':>9}")
    for arch in args.nets.split(","):
        r = bench(arch, args.size, args.repeats)
        d, cl = r["default"], r["channels_last"]
        tv = r.get("torchvision_dcn")
        tv_s = f"{tv:12.0f}{d / tv:9.2f}" if tv else f"{'-':>12}{'-':>9}"
        print(f"{arch:<14}{d:12.0f}{cl:12.0f}{cl / d:8.2f}{tv_s}", flush=True)


if __name__ == "__main__":
    main()
