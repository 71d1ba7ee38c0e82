"""Winograd F(4x4, 3x3) against oneDNN's direct 3x3 convolution, layer by layer.

    python benchmarks/bench_winograd.py [--repeat 9] [--blocks | --transposed]

For each (channels, map side): the fused oneDNN convolution + bias + ReLU with weights
pre-packed for that input shape (``FusedConv``'s direct path) against
``winograd.conv3x3``; interleaved medians, batch 1, channels_last, the threads torch uses.
Prints the ratio (direct / Winograd, > 1: Winograd faster) and each one's error against
a float64 convolution, relative to the output's largest value. The shape rule in
``centerpoint_suite/models/winograd.py`` (``MIN_CHANNELS``, ``MIN_SIDE``) comes from this table.

``--blocks``: instead, the Winograd path alone with 128, 256, 512 and 1024 tiles per block
(``winograd.block_tiles``'s rule), interleaved, ms per layer (the outputs are the same).

``--transposed``: the 4x4 stride-2 transposed convolutions of the upsampling necks instead,
oneDNN's packed call (``FusedConvTranspose``'s other path) against ``winograd.conv_transpose4x4s2``
(``MIN_SIDE_TRANSPOSED`` and ``MIN_CHANNELS_TRANSPOSED`` come from that table).
"""

from __future__ import annotations

import argparse
import functools
import math

import torch
import torch.nn.functional as F

from centerpoint_suite.bench_networks import interleaved_ms
from centerpoint_suite.models import winograd
from centerpoint_suite.models.optimize import FusedConv, FusedConvTranspose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--blocks", action="store_true", help="time tiles per block instead of oneDNN vs Winograd")
    ap.add_argument("--transposed", action="store_true", help="the transposed 4x4 stride-2 convolutions instead")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.blocks:
        blocks(args.repeat)
        return
    if args.transposed:
        transposed(args.repeat)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("cin  cout  side | direct ms  winograd ms  ratio | err direct  err winograd")
    shapes = [(c, c, s) for c in (64, 128, 256, 384, 512) for s in (8, 16, 32, 64, 128) if c * s <= 256 * 128]
    shapes.append((256, 64, 128))
    for cin, cout, side in shapes:
        conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
        with torch.no_grad():
            conv.weight.normal_(0, 1 / math.sqrt(cin * 9))
        fused = FusedConv(conv, None, True, winograd_ok=False)
        x = torch.randn(1, cin, side, side).contiguous(memory_format=torch.channels_last)
        u = winograd.transform_weight(conv.weight)
        with torch.inference_mode():
            ref = F.relu(F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1))
            scale = ref.abs().max().item()
            direct = functools.partial(fused, x)
            wino = functools.partial(winograd.conv3x3, x, u, conv.bias, True)
            e_d = (direct().double() - ref).abs().max().item() / scale
            e_w = (wino().double() - ref).abs().max().item() / scale
            ms = interleaved_ms({"direct": direct, "winograd": wino}, args.repeat)
            td, tw = ms["direct"], ms["winograd"]
        print(f"{cin:4d} {cout:5d} {side:5d} | {td:9.2f} {tw:12.2f} {td / tw:6.2f}x | {e_d:10.1e} {e_w:12.1e}")


def blocks(repeat: int) -> None:
    """Per layer: ms of ``winograd.conv3x3`` with each block size, and the one ``block_tiles`` picks."""
    sizes = (128, 256, 512, 1024)
    rule = winograd.block_tiles
    print("cin  cout  side | " + "  ".join(f"{b:>7d}" for b in sizes) + " | rule")
    for cin, cout, side in (
        (64, 64, 128),
        (256, 64, 128),
        (64, 256, 128),
        (128, 128, 64),
        (256, 256, 32),
        (512, 512, 16),
    ):
        u = winograd.transform_weight(torch.randn(cout, cin, 3, 3) / math.sqrt(cin * 9))
        x = torch.randn(1, cin, side, side).contiguous(memory_format=torch.channels_last)

        def run(b: int, x=x, u=u):
            winograd.block_tiles = lambda cin, cout: b
            try:
                with torch.inference_mode():
                    return winograd.conv3x3(x, u, None, True)
            finally:
                winograd.block_tiles = rule

        ms = interleaved_ms({b: functools.partial(run, b) for b in sizes}, repeat, warmup=2)
        print(f"{cin:4d} {cout:5d} {side:5d} | " + "  ".join(f"{ms[b]:7.2f}" for b in sizes) + f" | {rule(cin, cout)}")


def transposed(repeat: int) -> None:
    """Per (cin, cout, input side): oneDNN's packed transposed convolution + ReLU against the
    phase-wise Winograd path, batch 1, and the rule's choice."""
    print("cin  cout  side | onednn ms  winograd ms  ratio | rule")
    shapes = [(512, 256, 16), (256, 256, 16), (256, 256, 32), (256, 256, 64), (128, 128, 32), (128, 128, 64)]
    shapes += [(64, 64, 64), (64, 64, 128)]
    for cin, cout, side in shapes:
        deconv = torch.nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        fused = FusedConvTranspose(deconv, None, True)
        x = torch.randn(1, cin, side, side).contiguous(memory_format=torch.channels_last)
        u = winograd.transform_transposed_weight(fused.weight)
        rule = winograd.transposed_eligible(fused.weight, fused.stride, fused.padding, [0, 0], [1, 1], 1, x)
        sides = winograd.MIN_SIDE_TRANSPOSED

        def onednn(x=x, fused=fused, sides=sides):
            winograd.MIN_SIDE_TRANSPOSED = 1 << 30  # FusedConvTranspose's oneDNN path
            try:
                return fused(x)
            finally:
                winograd.MIN_SIDE_TRANSPOSED = sides

        with torch.inference_mode():
            torch.testing.assert_close(
                onednn(), winograd.conv_transpose4x4s2(x, u, fused.bias, True), rtol=1e-4, atol=1e-3
            )
            ms = interleaved_ms(
                {"onednn": onednn, "winograd": functools.partial(winograd.conv_transpose4x4s2, x, u, fused.bias, True)},
                repeat,
            )
        td, tw = ms["onednn"], ms["winograd"]
        print(
            f"{cin:4d} {cout:5d} {side:5d} | {td:9.2f} {tw:12.2f} {td / tw:6.2f}x | {'winograd' if rule else 'onednn'}"
        )


if __name__ == "__main__":
    main()
