"""``centerpoint bench``: our hot paths timed side by side with the slow paths the original
CenterNet takes (re-implemented in ``bench_baselines``), in one run, reported as ratios.

A row is ``(stage name, ours_ms, baseline_ms)`` (``baseline_ms`` None when there is no
baseline); ``format_row`` prints one. Data-side stages come from ``data_stages``; the network
rows from ``bench_networks.network_rows(echo, repeat, archs)`` when that module is present.

Every data stage first checks that ours and its baseline give the same outputs (that is what
earns the baseline its place), then times them interleaved (ours, baseline, ours, baseline...)
and reports the medians: absolute times drift with the machine (2x within a day on shared
CPUs); the ratio of two timings taken in the same run is what to compare.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from . import bench_baselines as orig
from . import bench_networks
from .geometry import center_scale_affine
from .heatmap import integer_radius, splat_gaussians
from .loading import keep_freed_memory
from .transforms import EvalResize, eval_affine, get_normalization, normalize_batch, output_inverse, warp_image
from .types import BatchMeta, OutputGeometry, Sample

Row = tuple[str, float, "float | None"]
#: the least time each data stage is timed for (``--min-seconds``): a training sample's median over
#: 10 rounds moved between 2.7x and 3.9x from one run to the next on a 2-core machine
MIN_STAGE_SECONDS = 3.0
STAGE_CHOICES = ("data", "networks", "all")


@dataclass
class Stage:
    """One table row: ``ours()`` and ``baseline()`` do the same work (``per_call`` items per call,
    times are reported per item); ``agree(ours_out, baseline_out)`` says whether the outputs match."""

    name: str
    ours: Callable[[], object]
    baseline: Callable[[], object]
    agree: Callable[[object, object], bool]
    per_call: int = 1


def cpu_isa() -> str:
    """The instruction sets the two compiled paths target here: LLVM's name for this CPU (numba's
    kernels; e.g. znver4, skylake-avx512) and torch's vector capability (AVX512, AVX2, DEFAULT).
    The same model name can hide different ones (a virtual machine may mask some), and the
    speed-ups depend on them."""
    from llvmlite import binding  # numba's compiler

    llvm, capability = binding.get_host_cpu_name(), torch.backends.cpu.get_cpu_capability()
    return f"LLVM {llvm}, torch {capability}"


def machine_line(repeat: int, min_seconds: float = 0.0) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"machine: {cpu} ({cpu_isa()}) | {os.cpu_count()} cores | "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads) | "
        f"opencv {cv2.__version__} | interleaved medians of {repeat}"
        + (f" (data stages: at least {min_seconds:g} s each)" if min_seconds > 0 else "")
    )


def interleaved_ms(
    ours: Callable[[], object], baseline: Callable[[], object], repeat: int, min_seconds: float = 0.0
) -> tuple[float, float]:
    """Median milliseconds of ``ours`` and ``baseline``, timed alternately after one warm-up each:
    ``repeat`` rounds, more until the two have run ``min_seconds`` in all."""
    ms = bench_networks.interleaved_ms({"ours": ours, "baseline": baseline}, repeat, min_seconds=min_seconds)
    return ms["ours"], ms["baseline"]


def format_row(row: Row) -> str:
    name, ours, base = row
    if base is None:
        return f"{name:76s} {ours:10.2f} {'':>12s}"
    return f"{name:76s} {ours:10.2f} {base:12.2f} {base / ours:8.2f}x"


def header() -> str:
    return f"{'stage':76s} {'ours ms':>10s} {'baseline ms':>12s} {'speed-up':>9s}"


def run_stage(stage: Stage, repeat: int, strict: bool = True, min_seconds: float = 0.0) -> Row:
    """Check that ours and the baseline agree, then time them (per item; ``repeat`` rounds, more
    until they have run ``min_seconds`` together). When they differ: RuntimeError naming the
    stage (``strict``), else the row's name says so."""
    name = stage.name
    if not stage.agree(stage.ours(), stage.baseline()):
        if strict:
            raise RuntimeError(f"bench stage {stage.name!r}: ours and the baseline give different outputs")
        name += " [OUTPUTS DIFFER]"
    ours, base = interleaved_ms(stage.ours, stage.baseline, repeat, min_seconds)
    return name, ours / stage.per_call, base / stage.per_call


# ---- inputs: real COCO-mini samples when given, synthetic ones otherwise ----------------------
def load_samples(data: Path | None, kind: str, count: int) -> tuple[list[Sample], tuple[str, ...]]:
    """``count`` samples with objects (``kind``: instances / person_keypoints) and the class list."""
    if data is not None:
        from .datasets.coco import CocoSource

        src = CocoSource(data, None, kind)
        samples = [s for s in (src[i] for i in range(len(src))) if len(s)][:count]
        return samples, src.classes
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        h, w = 480, 640
        n = int(rng.integers(3, 20))
        xy = rng.uniform(0, [w - 60, h - 60], (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 200, (n, 2))], 1).clip(0, [w, h, w, h]).astype(np.float32)
        kps = None
        if kind == "person_keypoints":
            kps = np.concatenate([xy[:, None] + rng.uniform(0, 60, (n, 17, 2)), rng.integers(0, 3, (n, 17, 1))], -1)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        classes = np.zeros(n, np.int64) if kps is not None else rng.integers(0, 80, n)
        samples.append(Sample(image, i, boxes, classes, np.zeros(n, bool), keypoints=kps))
    classes = ("person",) if kind == "person_keypoints" else tuple(f"c{i}" for i in range(80))
    return samples, classes


def _same_targets(ours: list[tuple], base: list[tuple]) -> bool:
    """Inputs within 1e-5, integer targets equal, float targets within 1e-4 (the original maps
    points one at a time in float32: a few ulp at coordinate 128 are 1e-5)."""
    for (x_ours, t_ours), (x_base, t_base) in zip(ours, base):
        if not np.allclose(np.asarray(x_ours), x_base, atol=1e-5):
            return False
        for key, value in t_base.items():
            got = np.asarray(t_ours[key]).reshape(value.shape)
            exact = np.issubdtype(value.dtype, np.integer)
            if got.dtype != value.dtype or not np.allclose(got, value, rtol=0, atol=0 if exact else 1e-4):
                return False
    return len(ours) == len(base)


def sample_stages(data: Path | None, in_hw: tuple[int, int] = (512, 512), count: int = 8) -> list[Stage]:
    """Training sample (warp + targets + normalise), 2D boxes and pose, on ``count`` images."""
    from . import create_task

    stages = []
    for kind, label in (("instances", "2D boxes"), ("person_keypoints", "pose")):
        samples, classes = load_samples(data, kind, count)
        task = create_task("boxes2d", classes=classes) if kind == "instances" else create_task("pose2d")
        norm = get_normalization("original_coco")
        rng = np.random.default_rng(1)
        affines = [
            center_scale_affine((s.hw[1] / 2, s.hw[0] / 2 + rng.uniform(-20, 20)), max(s.hw), in_hw) for s in samples
        ]
        out_hw = (in_hw[0] // 4, in_hw[1] // 4)

        def ours(samples=samples, task=task, affines=affines, norm=norm, out_hw=out_hw):
            out = []
            for s, m in zip(samples, affines):
                image = warp_image(s.image, m, in_hw)
                targets = task.build_targets(s, OutputGeometry((m / 4).astype(np.float32), out_hw))
                out.append((normalize_batch(torch.from_numpy(image)[None], norm)[0], targets))
            return out

        if kind == "instances":

            def baseline(samples=samples, affines=affines, norm=norm, n=len(classes), mo=task.max_objects):
                return [orig.original_box_sample(s, m, in_hw, norm, n, mo) for s, m in zip(samples, affines)]
        else:

            def baseline(samples=samples, affines=affines, norm=norm, mo=task.max_objects):
                return [orig.original_pose_sample(s, m, in_hw, norm, 17, mo) for s, m in zip(samples, affines)]

        name = f"training sample, {label}, {in_hw[0]} (warp + targets + normalise)"
        stages.append(Stage(name, ours, baseline, _same_targets, len(samples)))
    return stages


def _by_score(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.lexsort((boxes[:, 1], boxes[:, 0], classes, -np.round(scores, 5)))
    return boxes[order], scores[order], classes[order]


def _baseline_arrays(per_class: dict[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    rows = [(a, j - 1) for j, a in per_class.items() if len(a)]
    boxes = np.concatenate([a[:, :4] for a, _ in rows]) if rows else np.zeros((0, 4), np.float32)
    scores = np.concatenate([a[:, 4] for a, _ in rows]) if rows else np.zeros(0, np.float32)
    classes = np.concatenate([np.full(len(a), j) for a, j in rows]) if rows else np.zeros(0, np.int64)
    return boxes, scores, classes


def same_detections(ours, base_per_class: dict[int, np.ndarray], atol_px: float = 1e-2, top: int | None = None) -> bool:
    """Predictions vs the baseline's {class + 1: (n, 5)}: same classes, scores (1e-5) and boxes
    (``atol_px``), compared in score order; ``top``: only the ``top`` best."""
    a = _by_score(ours.boxes, ours.scores, ours.classes)
    b = _by_score(*_baseline_arrays(base_per_class))
    n = min(len(a[1]), len(b[1])) if top else len(a[1])
    n = min(n, top) if top else n
    if not top and len(a[1]) != len(b[1]):
        return False
    return (
        np.allclose(a[1][:n], b[1][:n], atol=1e-5)
        and np.array_equal(a[2][:n], b[2][:n])
        and np.allclose(a[0][:n], b[0][:n], atol=atol_px)
    )


def decode_stages(batches: Sequence[int] = (1, 8), k: int = 100, image_hw: tuple[int, int] = (480, 640)) -> list[Stage]:
    """Decode 2D boxes of 80-class 128 x 128 maps to original pixels. Ours gets the maps in
    channels_last (what our channels_last network returns), the baseline in NCHW (the original's)."""
    from . import create_task

    task = create_task("boxes2d", classes=tuple(f"c{i}" for i in range(80)))
    m, in_hw = eval_affine(image_hw, EvalResize((512, 512)))
    c = np.array([image_hw[1] / 2, image_hw[0] / 2], np.float32)
    s = float(max(image_hw))
    stages = []
    for b in batches:
        g = torch.Generator().manual_seed(b)
        heat = torch.nn.functional.avg_pool2d(torch.randn(b, 80, 128, 128, generator=g), 3, 1, 1) * 3 - 4
        maps = {
            "heatmap": heat,
            "size": torch.rand(b, 2, 128, 128, generator=g) * 30,
            "offset": torch.rand(b, 2, 128, 128, generator=g),
        }
        cl = {name: v.contiguous(memory_format=torch.channels_last) for name, v in maps.items()}
        meta = BatchMeta(np.stack([output_inverse(m)] * b), list(range(b)), [image_hw] * b)

        def ours(cl=cl, meta=meta):
            return task.decode(cl, meta, k)

        def baseline(maps=maps, b=b):
            dets = orig.ctdet_decode(maps["heatmap"], maps["size"], maps["offset"], k).numpy()
            return orig.ctdet_post_process(dets, [c] * b, [s] * b, (128, 128), 80, [image_hw] * b)

        def agree(o, base):
            return all(same_detections(p, q) for p, q in zip(o, base))

        stages.append(Stage(f"decode 2D boxes, batch {b}, K={k}, to original pixels", ours, baseline, agree))
    return stages


@torch.no_grad()
def spread_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Deterministic weights with informative outputs (a fresh network's heads give every cell
    nearly the same score, so detections would tie): the reference's golden-weight recipe,
    convolutions N(0, 1 / fan_in), batch norms near identity, biases N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            t.copy_(1 + 0.5 * torch.rand(t.shape, generator=g))
        elif name.endswith("running_mean") or t.dim() == 1 and not name.endswith("weight"):
            t.copy_(0.1 * torch.randn(t.shape, generator=g))
        elif t.dim() == 1:
            t.copy_(1 + 0.1 * torch.randn(t.shape, generator=g))
        else:
            t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)
    return model


def prediction_stage(data: Path | None, arch: str = "res18", k: int = 100) -> Stage:
    """Whole prediction of one real photo: read, pre-process, forward, decode, post-process.
    The same weights on both sides; ours runs through ``engine.Predictor``."""
    from . import create_task
    from .datasets.images import read_image
    from .engine import Predictor
    from .models import build_network

    if data is not None:
        from .datasets.coco import CocoSource

        src = CocoSource(data, None, "instances")
        path = str(src.image_path(0))
    else:
        path = str(Path(tempfile.mkdtemp(prefix="cp_bench_")) / "photo.jpg")
        cv2.imwrite(
            path, cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (600, 1116, 3), np.uint8), (9, 9), 3)
        )
    task = create_task("boxes2d", classes=tuple(f"c{i}" for i in range(80)))
    base_model = spread_weights(build_network(arch, task.heads(), heatmap_heads=task.heatmap_heads())).eval()
    ours_model = build_network(arch, task.heads(), heatmap_heads=task.heatmap_heads())
    ours_model.load_state_dict(base_model.state_dict())
    norm = get_normalization("original_coco")
    predictor = Predictor(ours_model, task, norm, torch.device("cpu"), k)
    resize = EvalResize((512, 512))

    def ours():
        image = read_image(path)
        sample = Sample(image, 0, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool))
        return predictor.predict_samples([sample], resize)[0]

    def baseline():
        return orig.original_predict(base_model, path, resize.input_hw, norm, k)

    def agree(o, base):  # float32 vs float64 normalisation: compare the best detections, 0.05 px
        return same_detections(o, base, atol_px=0.05, top=20)

    return Stage(f"whole prediction on a real photo, {arch} (read, pre, forward, decode, post)", ours, baseline, agree)


def target_rows(repeat: int, min_seconds: float = 0.0) -> list[Row]:
    """Heatmap targets alone: one numba splat for all objects vs a python loop of fresh gaussians."""
    rng = np.random.default_rng(0)
    rows = []
    for n in (7, 50):
        xy = rng.uniform(0, 100, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(4, 28, (n, 2))], 1).astype(np.float32)
        classes = rng.integers(0, 80, n).astype(np.int64)
        radii = integer_radius(np.ceil(boxes[:, 3] - boxes[:, 1]), np.ceil(boxes[:, 2] - boxes[:, 0]), 0.7, "cornernet")
        centers = ((boxes[:, :2] + boxes[:, 2:]) / 2).astype(np.int32)

        def ours(classes=classes, centers=centers, radii=radii):
            hm = np.zeros((80, 128, 128), np.float32)
            splat_gaussians(hm, classes, centers, radii)
            return hm

        def baseline(classes=classes, centers=centers, radii=radii):
            hm = np.zeros((80, 128, 128), np.float32)
            for c, ct, r in zip(classes, centers, radii):
                orig.draw_gaussian(hm[c], ct, int(r))
            return hm

        stage = Stage(
            f"box heatmap targets, {n} objects (80x128x128)", ours, baseline, lambda a, b: np.allclose(a, b, atol=1e-6)
        )
        rows.append(run_stage(stage, repeat, min_seconds=min_seconds))
    return rows


def data_stages(data: Path | None, arch: str = "res18") -> list[Stage]:
    return [*sample_stages(data), *decode_stages(), prediction_stage(data, arch)]


def network_rows(echo: Callable[[str], None], repeat: int, archs: Sequence[str]) -> list[Row]:
    """The network rows of ``bench_networks`` when present, else channels_last vs NCHW forwards."""
    try:
        from .bench_networks import network_rows as rows_of_networks
    except ImportError:
        rows_of_networks = None
    if rows_of_networks is not None:
        rows = list(rows_of_networks(echo, repeat, archs))
        for row in rows:
            echo(format_row(row))
        return rows
    from . import create_task
    from .models import build_network

    rows = []
    task = create_task("boxes2d", classes=tuple(f"c{i}" for i in range(80)))
    for arch in archs:
        model = build_network(arch, task.heads(), heatmap_heads=task.heatmap_heads()).eval()
        model_cl = build_network(arch, task.heads(), heatmap_heads=task.heatmap_heads()).eval()
        model_cl.load_state_dict(model.state_dict())
        model_cl.to(memory_format=torch.channels_last)
        x = torch.randn(1, 3, 512, 512)
        xcl = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            cl, plain = interleaved_ms(partial(model_cl, xcl), partial(model, x), max(3, repeat // 3))
        rows.append((f"forward {arch} 512x512 batch 1 (channels_last vs NCHW)", cl, plain))
        echo(format_row(rows[-1]))
    return rows


def run_bench(
    task: str = "boxes2d",
    arch: str = "res18",
    repeat: int = 10,
    echo: Callable[[str], None] = print,
    stages: str = "all",
    data: Path | None = None,
    networks: Sequence[str] | None = None,
    min_seconds: float = MIN_STAGE_SECONDS,
) -> list[Row]:
    """Print the machine line and the table; return its rows. ``stages``: data, networks or all.
    ``data``: a COCO folder with instances and person_keypoints files (synthetic inputs when None).
    ``arch``: the whole-prediction network; ``networks``: those of the network rows (default
    ``arch``); ``min_seconds``: each data stage is timed for at least this long (its ``repeat``
    rounds, then more). ``task`` is kept for the CLI's compatibility (the data stages cover boxes2d and pose2d)."""
    if stages not in STAGE_CHOICES:
        raise ValueError(f"unknown bench stages {stages!r}; use one of {', '.join(STAGE_CHOICES)}")
    # our training and prediction processes keep freed memory for reuse (``loading.keep_freed_memory``):
    # so does the bench, from its start; the setting is process-wide, so the baselines get it too
    keep_freed_memory()
    echo(machine_line(repeat, min_seconds if stages != "networks" else 0.0))
    echo(f"inputs: {data if data is not None else 'synthetic images (pass --data DIR for real COCO images)'}")
    echo(header())
    rows: list[Row] = []
    if stages in ("data", "all"):
        for stage in data_stages(data, arch):
            rows.append(run_stage(stage, repeat, strict=False, min_seconds=min_seconds))
            echo(format_row(rows[-1]))
        for row in target_rows(repeat, min_seconds):
            rows.append(row)
            echo(format_row(row))
    if stages in ("networks", "all"):
        rows.extend(network_rows(echo, repeat, tuple(networks or (arch,))))
    return rows
