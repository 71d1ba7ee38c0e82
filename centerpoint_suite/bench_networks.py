"""Network rows of ``centerpoint bench``: forward and training step, ours against the original's way.

Baselines run the networks the way the original CenterNet code does: NCHW, eager, batch
norm unfolded, under ``torch.no_grad``, deformable convolutions by
``torchvision.ops.deform_conv2d`` on NCHW tensors (the closest CPU stand-in for its compiled
DCNv2); the training step NCHW, plain (per-parameter) Adam with zeroed (not freed) gradients
and the original's loss (clamped sigmoid, focal loss, gathered L1 with a transpose copy).
Ours: ``prepare_for_inference`` (folded batch norm, fused conv + ReLU, channels_last,
gather + GEMM deformable convolution) under ``torch.inference_mode``; the training step as
the trainer runs it (``train_channels_last``'s memory format, ``make_optimizer``'s fused Adam,
gradients set to None, the task loss).

Also printed: the machine's matrix-product rate in the same run (2048 x 2048 float32
``torch.mm``) and each network's achieved GFLOP/s, FLOPs counted once per network by
``torch.utils.flop_counter.FlopCounterMode`` (convolutions, transposed convolutions and
matrix products, a multiply-add counted as 2 FLOPs; element-wise ops and the bilinear
sampling of deformable convolutions not counted).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .heatmap import splat_gaussians
from .models import bn_relu, build_network, winograd_train
from .models.dcn import set_deform_impl
from .models.optimize import make_optimizer, prepare_for_inference, train_channels_last

HEADS = {"heatmap": 80, "size": 2, "offset": 2}
ARCHS = ("res18", "resdcn18", "dla34", "hourglass104")
SIZE = 512


#: the most rounds ``interleaved_ms`` runs to reach its ``min_seconds``
MAX_ROUNDS = 1000


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleaved_ms(
    fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 1, min_seconds: float = 0.0
) -> dict[str, float]:
    """Median wall ms of each function, timed alternately (the machine's speed drifts), after
    ``warmup`` calls of each: ``repeat`` rounds, and more (up to ``MAX_ROUNDS``) until the rounds
    have taken ``min_seconds`` in all, so that the medians of cheap calls rest on enough samples
    (a few rounds of them are at the mercy of one slow moment of the machine)."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    rounds = 0
    while rounds < repeat or (rounds < MAX_ROUNDS and sum(map(sum, times.values())) < 1e3 * min_seconds):
        for k, f in fns.items():
            times[k].append(_timed(f))
        rounds += 1
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_gflops(repeat: int = 5, n: int = 2048) -> float:
    """GFLOP/s of an n x n float32 matrix product (2 n^3 FLOPs), median of ``repeat``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = interleaved_ms({"mm": lambda: torch.mm(a, b)}, repeat)["mm"]
    return 2 * n**3 / (ms * 1e-3) / 1e9


def count_gflop(net: nn.Module, x: Tensor) -> float:
    """FLOPs of one forward (multiply-add = 2), in GFLOP; deformable convs counted by their GEMM."""
    set_deform_impl(net, "gather")
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        set_deform_impl(net, "auto")
    return counter.get_total_flops() / 1e9


def _max_rel_diff(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12)) for k in b)


def forward_row(arch: str, repeat: int, echo: Callable[[str], None], mm_rate: float) -> tuple[str, float, float]:
    """``forward <arch> 512x512``: (name, ours ms, baseline ms); echoes GFLOP/s and the output difference."""
    torch.manual_seed(0)
    net = build_network(arch, HEADS).eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    gflop = count_gflop(net, x)
    fast = prepare_for_inference(net, channels_last=True)  # a copy: deformable convs stay "auto" (gather)
    base_net = set_deform_impl(net, "torchvision")
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def baseline():
        with torch.no_grad():
            return base_net(x)

    def ours():
        with torch.inference_mode():
            return fast(x_cl)

    diff = _max_rel_diff(ours(), baseline())
    ms = interleaved_ms({"base": baseline, "ours": ours}, repeat)
    name = f"forward {arch} {SIZE}x{SIZE} ({gflop:.1f} GFLOP)"
    echo(
        f"  {arch}: ours {gflop / ms['ours'] * 1e3:.0f} GFLOP/s, baseline {gflop / ms['base'] * 1e3:.0f} GFLOP/s "
        f"(matrix product {mm_rate:.0f}); outputs differ by {diff:.1e} relative"
    )
    return name, ms["ours"], ms["base"]


# ---- the training step -------------------------------------------------------------------
def original_loss(out: dict[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
    """The original CenterNet ctdet loss: clamped sigmoid, focal loss, L1 at gathered cells (weights 1, 0.1, 1)."""
    pred = torch.clamp(out["heatmap"].sigmoid(), 1e-4, 1 - 1e-4)
    gt = batch["heatmap"]
    pos = gt.eq(1).float()
    neg = gt.lt(1).float()
    pos_loss = (torch.log(pred) * torch.pow(1 - pred, 2) * pos).sum()
    neg_loss = (torch.log(1 - pred) * torch.pow(pred, 2) * torch.pow(1 - gt, 4) * neg).sum()
    num_pos = pos.sum()
    hm = -neg_loss if num_pos == 0 else -(pos_loss + neg_loss) / num_pos

    def reg_l1(feat: Tensor, target: Tensor) -> Tensor:
        b, c = feat.shape[:2]
        flat = feat.permute(0, 2, 3, 1).contiguous().view(b, -1, c)
        ind = batch["indices"].unsqueeze(2).expand(-1, -1, c)
        got = flat.gather(1, ind)
        mask = batch["mask"].unsqueeze(2).expand_as(got).float()
        return F.l1_loss(got * mask, target * mask, reduction="sum") / (mask.sum() + 1e-4)

    return hm + 0.1 * reg_l1(out["size"], batch["size"]) + reg_l1(out["offset"], batch["offset"])


def box_batch(batch: int, hw: tuple[int, int], objects: int = 8, seed: int = 0) -> dict[str, Tensor]:
    """Random 2D-box targets for ``batch`` images (80 classes, ``objects`` boxes each) at output size ``hw``."""
    rng = np.random.default_rng(seed)
    h, w = hw
    heat = np.zeros((batch, 80, h, w), np.float32)
    inds = np.zeros((batch, 128), np.int64)
    mask = np.zeros((batch, 128), np.uint8)
    for i in range(batch):
        centers = np.stack([rng.integers(0, w, objects), rng.integers(0, h, objects)], 1).astype(np.int32)
        splat_gaussians(heat[i], rng.integers(0, 80, objects), centers, rng.integers(1, 8, objects).astype(np.int32))
        inds[i, :objects] = centers[:, 1] * w + centers[:, 0]
        mask[i, :objects] = 1
    return {
        "heatmap": torch.from_numpy(heat),
        "heatmap_ignore": torch.zeros(batch, 80, h, w, dtype=torch.uint8),
        "indices": torch.from_numpy(inds),
        "mask": torch.from_numpy(mask),
        "size": torch.from_numpy(rng.uniform(2, 40, (batch, 128, 2)).astype(np.float32)),
        "offset": torch.from_numpy(rng.uniform(0, 1, (batch, 128, 2)).astype(np.float32)),
    }


#: untimed training steps of each side before the timed ones: the first steps of a process fault
#: in their memory (res18 512 batch 4: ours 261k, 127k, 29k page faults in steps 1-3, the
#: baseline 348k, 119k in steps 1-2, then none), which a training run pays once
TRAIN_WARMUP = 3


def train_row(arch: str, batch: int, repeat: int) -> tuple[str, float, float]:
    """``training step <arch> 512 batch <batch>``: forward + loss + backward + Adam, (name, ours, baseline).

    The process first keeps freed memory for reuse, as a training process does
    (``loading.keep_freed_memory``; process-wide, so the baseline gets it too): without it, ours
    re-allocates its gradients every step (set_to_none) and measured 0.96x instead of 1.01x.
    """
    from . import create_task
    from .loading import keep_freed_memory
    from .loss_model import LossModel

    keep_freed_memory()

    task = create_task("boxes2d", classes=tuple(f"c{i}" for i in range(80)))
    targets = box_batch(batch, (SIZE // 4, SIZE // 4))
    x = torch.randn(batch, 3, SIZE, SIZE)
    torch.manual_seed(0)
    base_net = set_deform_impl(build_network(arch, HEADS).train(), "torchvision")
    base_opt = torch.optim.Adam(base_net.parameters(), lr=1e-5, foreach=False)
    torch.manual_seed(0)
    net = build_network(arch, task.heads(), heatmap_heads=task.heatmap_heads()).train()
    fmt = torch.channels_last if train_channels_last(True, x.device) else torch.contiguous_format
    net.to(memory_format=fmt)
    winograd_train.enable(net)  # as the trainer does on CPU (model.winograd)
    bn_relu.enable(net)  # and model.bn_relu_kernel
    model = LossModel(net, task)
    opt = make_optimizer(model.parameters(), lr=1e-5)
    x_cl = x.contiguous(memory_format=fmt)

    def baseline():
        loss = original_loss(base_net(x), targets)
        base_opt.zero_grad(set_to_none=False)
        loss.backward()
        base_opt.step()

    def ours():
        loss = model(x_cl, targets)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    ms = interleaved_ms({"base": baseline, "ours": ours}, repeat, warmup=TRAIN_WARMUP)
    return f"training step {arch} {SIZE} batch {batch} (fwd + loss + bwd + Adam)", ms["ours"], ms["base"]


def network_rows(
    echo: Callable[[str], None] = print, repeat: int = 3, archs: tuple[str, ...] | list[str] = ARCHS
) -> list[tuple[str, float, float]]:
    """The network stages of the speed table: one forward row per arch, then the res18 training step.

    Returns (stage name, ours ms, baseline ms) per row; echoes the matrix-product rate and each
    network's GFLOP/s. The training row is measured when ``res18`` is among ``archs``.
    """
    from .loading import keep_freed_memory

    keep_freed_memory()  # as our prediction and training processes do (process-wide: the baseline gets it too)
    mm = matmul_gflops(max(3, repeat))
    echo(f"matrix product 2048x2048 float32: {mm:.0f} GFLOP/s ({torch.get_num_threads()} threads)")
    rows = []
    for arch in archs:
        rows.append(forward_row(arch, repeat, echo, mm))
    if "res18" in archs:
        rows.append(train_row("res18", 4, max(3, repeat // 2)))
    return rows
