"""Batch norm + ReLU in training: the numba layer (``models/bn_relu.py``) against torch's two
modules, forward + backward, map by map, and the error of each against float64.

    python benchmarks/bench_bn_relu.py [--batch 4] [--repeat 10]

Maps: the res18 512x512 ones that a ReLU follows directly (stem, the blocks' first batch norm,
the neck), channels_last as the training network's. Each line: interleaved medians in
milliseconds of one forward and backward (torch: ``batch_norm`` then in-place ``relu``), the
ratio torch / ours, and the largest error of the output and of the input gradient against
float64 autograd, relative to the largest value.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from centerpoint_suite.bench_networks import interleaved_ms
from centerpoint_suite.loading import keep_freed_memory
from centerpoint_suite.models import bn_relu

#: (channels, map side)
SHAPES = ((64, 256), (64, 128), (128, 64), (256, 32), (512, 16), (256, 64), (256, 128))


def _layers(c: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(c)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_(0, 0.1)
    plain = nn.Sequential(bn, nn.ReLU(inplace=True))
    fused = copy.deepcopy(plain)
    bn_relu.enable(fused)
    return plain, fused


def _step(layer: nn.Module, x: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_()
    y = layer(x)
    y.backward(dy)
    return y.detach(), x.grad


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).abs().max() / ref.abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    keep_freed_memory()  # as a training process
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, medians of {args.repeat}")
    errors = f"{'err y torch/ours':>18s}  {'err dx torch/ours':>18s}"
    print(f"{'map':>22s} {'torch ms':>9s} {'ours ms':>8s} {'ratio':>6s}  {errors}")
    for c, side in SHAPES:
        plain, fused = _layers(c)
        gen = torch.Generator().manual_seed(c + side)
        shape = (args.batch, c, side, side)
        x = (torch.randn(shape, generator=gen) * 2 + 0.5).contiguous(memory_format=torch.channels_last)
        dy = torch.randn(shape, generator=gen).contiguous(memory_format=torch.channels_last)
        ref = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU()).double()
        ref.load_state_dict(plain.state_dict())
        y64, dx64 = _step(ref, x.double(), dy.double())
        errs = [(_rel(y, y64), _rel(dx, dx64)) for y, dx in (_step(plain, x, dy), _step(fused, x, dy))]
        fns = {
            "torch": lambda p=plain, x=x, dy=dy: _step(p, x, dy),
            "ours": lambda f=fused, x=x, dy=dy: _step(f, x, dy),
        }
        ms = interleaved_ms(fns, args.repeat)
        print(
            f"{str(shape):>22s} {ms['torch']:9.1f} {ms['ours']:8.1f} {ms['torch'] / ms['ours']:5.2f}x"
            f"  {errs[0][0]:8.1e} / {errs[1][0]:7.1e}  {errs[0][1]:8.1e} / {errs[1][1]:7.1e}"
        )


if __name__ == "__main__":
    main()
