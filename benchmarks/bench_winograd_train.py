"""Training convolutions: Winograd F(4x4, 3x3) against oneDNN, pass by pass, layer by layer.

    python benchmarks/bench_winograd_train.py [--batch 4] [--repeat 5]

For each (input channels, output channels, map side) of res18 at 512x512 input: the forward,
the input gradient and the weight gradient, oneDNN's (``aten.convolution`` /
``aten.convolution_backward``) against ``winograd_train``'s (per-step weight transforms
included), channels_last, interleaved medians in milliseconds; then the same for the neck's
4x4 stride-2 transposed convolutions. The ratio is oneDNN / Winograd
(> 1: Winograd faster). ``winograd_train.MIN_SIDE_TRAIN`` comes from this table.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from centerpoint_suite.bench_networks import interleaved_ms
from centerpoint_suite.loading import keep_freed_memory
from centerpoint_suite.models import winograd, winograd_train

SHAPES = ((256, 64, 128), (64, 64, 128), (128, 128, 64), (256, 256, 32), (512, 512, 16))
#: the neck's transposed 4x4 stride-2 convolutions: (input channels, output channels, input side)
TRANSPOSED = ((512, 256, 16), (256, 256, 32), (256, 256, 64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    cl = torch.channels_last
    back = torch.ops.aten.convolution_backward
    print(f"batch {args.batch}, {torch.get_num_threads()} threads; ms oneDNN / Winograd per pass")
    for cin, cout, side in SHAPES:
        x = torch.randn(args.batch, cin, side, side).contiguous(memory_format=cl)
        w = torch.randn(cout, cin, 3, 3) * 0.02
        g = torch.randn(args.batch, cout, side, side).contiguous(memory_format=cl)

        def grad_(mask, g=g, x=x, w=w):
            return back(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

        ms = interleaved_ms(
            {
                "fwd": lambda x=x, w=w: F.conv2d(x, w, padding=1),
                "fwd_w": lambda x=x, w=w: winograd.conv3x3(x, winograd_train.transform_weight_f32(w), None, False),
                "gin": lambda: grad_([True, False, False]),
                "gin_w": lambda g=g, w=w: winograd.conv3x3(
                    g, winograd_train.transform_weight_f32(w, True), None, False
                ),
                "gw": lambda: grad_([False, True, False]),
                "gw_w": lambda x=x, g=g: winograd_train.weight_grad(x, g),
            },
            args.repeat,
        )
        one = ms["fwd"] + ms["gin"] + ms["gw"]
        wino = ms["fwd_w"] + ms["gin_w"] + ms["gw_w"]
        cells = "  ".join(f"{p} {ms[p]:.1f}/{ms[p + '_w']:.1f}" for p in ("fwd", "gin", "gw"))
        print(f"{cin:>3} -> {cout:>3} on {side:>3}x{side:<3}  {cells}  all three {one / wino:.2f}x")

    for cin, cout, side in TRANSPOSED:
        x = torch.randn(args.batch, cin, side, side).contiguous(memory_format=cl)
        w = torch.randn(cin, cout, 4, 4) * 0.02
        g = torch.randn(args.batch, cout, 2 * side, 2 * side).contiguous(memory_format=cl)

        def tgrad_(mask, g=g, x=x, w=w):
            return back(g, x, w, None, [2, 2], [1, 1], [1, 1], True, [0, 0], 1, mask)

        ms = interleaved_ms(
            {
                "fwd": lambda x=x, w=w: F.conv_transpose2d(x, w, stride=2, padding=1),
                "fwd_w": lambda x=x, w=w: winograd.conv_transpose4x4s2(
                    x, winograd_train.transform_transposed_weight_f32(w), None, False
                ),
                "gin": lambda: tgrad_([True, False, False]),
                "gin_w": lambda g=g, w=w: winograd_train.transposed_input_grad(g, w),
                "gw": lambda: tgrad_([False, True, False]),
                "gw_w": lambda x=x, g=g: winograd_train.transposed_weight_grad(x, g),
            },
            args.repeat,
        )
        one = ms["fwd"] + ms["gin"] + ms["gw"]
        wino = ms["fwd_w"] + ms["gin_w"] + ms["gw_w"]
        cells = "  ".join(f"{p} {ms[p]:.1f}/{ms[p + '_w']:.1f}" for p in ("fwd", "gin", "gw"))
        print(f"transposed {cin:>3} -> {cout:>3} from {side:>3}x{side:<3}  {cells}  all three {one / wino:.2f}x")


if __name__ == "__main__":
    main()
