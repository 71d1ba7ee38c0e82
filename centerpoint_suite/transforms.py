"""Image transforms: the train-time random affine, the test-time affine, normalisation presets
and colour augmentation.

Workers only warp uint8 images (one ``cv2.warpAffine`` down to the image's last row, no float
copy). Normalisation runs once per batch: uint8 images by a per-byte multiply-add that
reproduces a 256-entry table per channel bit for bit (one pass, bitwise the float multiply-add),
float images (after colour jitter) as one fused torch multiply-add in ``normalize_batch``; colour
jitter and PCA lighting in ``colour_augment_batch``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from . import colour_kernel
from .geometry import center_scale_affine, invert_affine
from .heatmap import graph_capture
from .models.winograd import use_torch_threads
from .normalize_kernel import normalize_u8, table_arithmetic

STRIDE = 4


@dataclass(frozen=True)
class Normalization:
    """Per-channel statistics (0..1 scale) in the channel order the network expects.

    order: "rgb" or "bgr" -- the channel order fed to the network (images are read BGR).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    order: str = "rgb"


NORMALIZATIONS: dict[str, Normalization] = {
    # ours: ImageNet statistics, RGB order (matches torchvision's ImageNet weights)
    "imagenet_rgb": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "rgb"),
    # original CenterNet COCO models: BGR images with the COCO statistics listed in BGR order
    "original_coco": Normalization((0.408, 0.447, 0.470), (0.289, 0.274, 0.278), "bgr"),
    # original CenterNet KITTI models: BGR images normalised with ImageNet RGB statistics (sic)
    "original_kitti": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bgr"),
}


def get_normalization(name: str) -> Normalization:
    try:
        return NORMALIZATIONS[name]
    except KeyError:
        raise ValueError(f"unknown normalization {name!r}; known: {', '.join(NORMALIZATIONS)}") from None


@dataclass(frozen=True)
class AugmentConfig:
    """Train-time geometry and colour augmentation.

    random_crop: CenterNet's crop: window width x [0.6, 1.4), centre anywhere inside the image
                 at least ``border`` px (shrunk for small images) from the edges.
    scale/shift: used when random_crop is False: window width x (1 +- scale), centre +- shift x size.
    flip:        probability of a horizontal mirror (ignored when the task cannot flip).
    colour:      brightness/contrast/saturation jitter (0.4) and PCA lighting (std 0.1).
    """

    random_crop: bool = True
    scale: float = 0.4
    shift: float = 0.1
    flip: float = 0.5
    colour: bool = True
    border: int = 128


def _border(border: int, size: int) -> int:
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def sample_train_affine(
    rng: np.random.Generator, image_hw: tuple[int, int], input_hw: tuple[int, int], aug: AugmentConfig, can_flip: bool
) -> tuple[np.ndarray, bool]:
    """Random (2, 3) map original pixels -> input pixels, and whether it mirrors."""
    h, w = image_hw
    in_h, in_w = input_hw
    # keep the input aspect: the window covers the longer image side (scaled to the input width)
    s = max(h * in_w / in_h, w)
    c = np.array([w / 2.0, h / 2.0])
    if aug.random_crop:
        s *= rng.choice(np.arange(0.6, 1.4, 0.1))
        bw, bh = _border(aug.border, w), _border(aug.border, h)
        c = np.array([rng.integers(bw, max(w - bw, bw + 1)), rng.integers(bh, max(h - bh, bh + 1))], float)
    else:
        c = c + np.array([w, h]) * rng.uniform(-aug.shift, aug.shift, 2)
        s *= rng.uniform(1 - aug.scale, 1 + aug.scale)
    flipped = bool(can_flip and rng.random() < aug.flip)
    if flipped:
        c[0] = w - 1 - c[0]
    return center_scale_affine(c, s, (in_w, in_h), flip_width=w if flipped else None), flipped


@dataclass(frozen=True)
class EvalResize:
    """Test-time input geometry.

    mode "fixed": letterbox the whole image into input_hw (aspect kept, centred), so a batch
    has one size. mode "keep_res": keep the original resolution, padded up to a multiple of
    ``pad + 1`` (original ``--keep_res``: (h | 31) + 1), image centred at (w // 2, h // 2).
    """

    input_hw: tuple[int, int] = (512, 512)
    mode: str = "fixed"
    pad: int = 31


def eval_affine(image_hw: tuple[int, int], resize: EvalResize) -> tuple[np.ndarray, tuple[int, int]]:
    """(2, 3) map original pixels -> input pixels, and the input (h, w)."""
    h, w = image_hw
    if resize.mode == "keep_res":
        in_h, in_w = (h | resize.pad) + 1, (w | resize.pad) + 1
        c = np.array([w // 2, h // 2], float)
        return center_scale_affine(c, in_w, (in_w, in_h)), (in_h, in_w)
    if resize.mode != "fixed":
        raise ValueError(f"unknown test resize mode {resize.mode!r}; use 'fixed' or 'keep_res'")
    in_h, in_w = resize.input_hw
    s = max(h * in_w / in_h, w)
    return center_scale_affine((w / 2.0, h / 2.0), s, (in_w, in_h)), (in_h, in_w)


def rows_reaching_image(m: np.ndarray, image_h: int, out_h: int) -> int:
    """Output rows [0, n) that may read the image under ``m`` (original -> output pixels); the
    rows below lie more than one source row past its bottom edge (black). ``out_h`` when ``m``
    rotates or flips vertically."""
    if float(m[0, 1]) != 0.0 or float(m[1, 0]) != 0.0 or not float(m[1, 1]) > 0.0:
        return out_h
    end = math.ceil(float(m[1, 1]) * (image_h + 1) + float(m[1, 2])) + 1  # a row of margin
    return int(min(max(end, 0), out_h))


def warp_image(image: np.ndarray, m: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (out_h, out_w, 3), bilinear, black outside: ``cv2.warpAffine``
    (INTER_LINEAR, constant 0) pixel for pixel, but rows below the image (``rows_reaching_image``)
    are filled with 0 rather than computed: OpenCV gives them 0, and the rows above keep the same
    map and row indices, hence the same pixels (OpenCV's border pixels are its slow ones)."""
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    rows = rows_reaching_image(m, image.shape[0], out_h)
    if rows == out_h:
        return cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LINEAR)
    out = np.empty((out_h, out_w, *image.shape[2:]), image.dtype)
    out[rows:] = 0
    if rows:
        top = cv2.warpAffine(image, m, (out_w, rows), dst=out[:rows], flags=cv2.INTER_LINEAR)
        if not np.shares_memory(top, out):  # OpenCV wrote elsewhere
            out[:rows] = top
    return out


def output_inverse(m_input: np.ndarray) -> np.ndarray:
    """Inverse of (original -> output cells), given original -> input pixels."""
    return invert_affine(m_input / STRIDE).astype(np.float32)


def _scale_bias(norm: Normalization, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Per network channel: ``x * scale + bias`` maps 0..255 to the normalised value (float32)."""
    std = torch.tensor(norm.std, device=device)
    return 1.0 / (std * 255.0), -torch.tensor(norm.mean, device=device) / std


@functools.lru_cache(maxsize=16)
def normalization_lut(norm: Normalization) -> np.ndarray:
    """(256, 1, 3) float32 table for ``cv2.LUT``: entry [v, 0, ch] is the normalised value of
    byte v in channel ch of the network's channel order, computed by the same float32 multiply-add
    as the torch path of ``normalize_batch`` (so both give the same numbers)."""
    scale, bias = _scale_bias(norm)
    values = torch.arange(256, dtype=torch.float32)[:, None].expand(256, 3).contiguous()
    lut = torch.addcmul(bias, values, scale).numpy().reshape(256, 1, 3)
    lut.flags.writeable = False  # cached: shared by every caller
    return lut


@functools.lru_cache(maxsize=16)
def _normalizer(norm: Normalization) -> tuple[np.ndarray, np.ndarray, bool | None]:
    """(3,) float32 scale and bias and the arithmetic that gives ``normalization_lut`` exactly."""
    scale, bias = (t.numpy() for t in _scale_bias(norm))
    return scale, bias, table_arithmetic(normalization_lut(norm), scale, bias)


def normalize_image(image: np.ndarray, norm: Normalization, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) BGR -> float32 (H, W, 3) normalised, channels in ``norm.order``: the
    table ``normalization_lut`` per byte, computed as one multiply-add per byte in the arithmetic
    that reproduces the table bit for bit (``normalize_kernel.normalize_u8``; ``cv2.LUT`` if none does);
    written into ``out`` (C-contiguous) when given."""
    if norm.order == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    scale, bias, fused = _normalizer(norm)
    if fused is None or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return cv2.LUT(image, normalization_lut(norm), dst=out)
    return normalize_u8(image, scale, bias, fused, out)


def warp_normalized(image: np.ndarray, m: np.ndarray, out_hw: tuple[int, int], norm: Normalization) -> np.ndarray:
    """``warp_image`` then ``normalize_image``: uint8 (H, W, 3) BGR -> float32 (out_h, out_w, 3)."""
    return normalize_image(warp_image(image, m, out_hw), norm)


def _cpu_uint8_batch(images: Tensor) -> bool:
    """A real (not graph-captured) uint8 (B, H, W, 3) batch on the CPU: numpy / numba may take it."""
    return (
        images.dtype == torch.uint8
        and images.device.type == "cpu"
        and images.dim() == 4
        and images.shape[-1] == 3
        and not graph_capture(images)
    )


def normalize_batch(images: Tensor, norm: Normalization) -> Tensor:
    """uint8 or float 0..255 (B, H, W, 3) BGR -> float32 (B, 3, H, W) normalised in ``norm.order``.

    uint8 on the CPU, eager: one table look-up per byte (``normalize_image``); otherwise (and in
    an exported graph) one fused multiply-add over the contiguous NHWC data. Either way the
    result is a (B, 3, H, W) view in channels_last memory order, which is what the CPU
    convolutions prefer (no extra copy).
    """
    if _cpu_uint8_batch(images):
        src = images.numpy()
        out = np.empty(src.shape, np.float32)
        for i in range(src.shape[0]):
            normalize_image(src[i], norm, out[i])
        return torch.from_numpy(out).permute(0, 3, 1, 2)
    if norm.order == "rgb":
        images = images.flip(-1)
    scale, bias = _scale_bias(norm, images.device)
    x = torch.addcmul(bias, images.to(torch.float32), scale)
    return x.permute(0, 3, 1, 2)


# PCA lighting of ImageNet RGB (AlexNet); eigvecs rows in RGB
_EIGVAL = (0.2141788, 0.01817699, 0.00629517)
_EIGVEC = (
    (-0.58752847, -0.69563484, 0.41340352),
    (-0.5832747, 0.00994535, -0.81221408),
    (-0.56089297, 0.71832671, 0.44567518),
)


COLOUR_PARAMS = 9  # per image: order of the 3 jitter ops, their 3 factors, 3 PCA lighting alphas


def sample_colour_params(rng: np.random.Generator, strength: float = 0.4) -> np.ndarray:
    """One image's colour augmentation, drawn from its own generator: (9,) float32 =
    op order (a permutation of 0 brightness, 1 contrast, 2 saturation), the factor of each op
    (U(1 +- strength), indexed by op) and the PCA lighting alphas (N(0, 0.1), RGB)."""
    order = rng.permutation(3)
    factors = 1 + strength * (2 * rng.random(3) - 1)
    alpha = rng.normal(0.0, 0.1, 3)
    return np.concatenate([order, factors, alpha]).astype(np.float32)


def colour_augment_batch(images: Tensor, params: Tensor) -> Tensor:
    """Brightness, contrast and saturation jitter in each image's own random order, then PCA
    lighting: uint8 (B, H, W, 3) BGR and ``params`` (B, 9) from ``sample_colour_params`` ->
    float32 0..255, same shape.

    Each op blends the image with a base: black (brightness), the mean grey level (contrast) or
    the per-pixel grey (saturation): ``x * f + base * (1 - f)``.
    """
    b = images.shape[0]
    dev = images.device
    params = params.to(dev, torch.float32)
    order, factors, alpha = params[:, :3].long(), params[:, 3:6], params[:, 6:9]
    x = images.float() / 255.0
    gray_w = torch.tensor(colour_kernel.GRAY_BGR, dtype=torch.float32, device=dev)  # BGR luma weights
    for step in range(3):
        op = order[:, step].view(b, 1, 1, 1)
        f = factors.gather(1, order[:, step : step + 1]).view(b, 1, 1, 1)
        gray = (x * gray_w).sum(-1, keepdim=True)
        base = torch.where(op == 2, gray, torch.where(op == 1, gray.mean(dim=(1, 2, 3), keepdim=True), 0.0))
        x = x * f + base * (1 - f)
    eigval = torch.tensor(_EIGVAL, device=dev)
    eigvec = torch.tensor(_EIGVEC, device=dev)
    rgb_shift = (eigvec @ (alpha * eigval).t()).t()  # (B, 3) RGB
    x = x + rgb_shift.flip(1).view(b, 1, 1, 3)
    return x.clamp(0, 1) * 255.0


def augment_normalize_batch(images: Tensor, params: Tensor | None, norm: Normalization) -> Tensor:
    """``normalize_batch(colour_augment_batch(images, params), norm)`` (just ``normalize_batch``
    when ``params`` is None): uint8 (B, H, W, 3) BGR -> float32 (B, 3, H, W) channels_last view.

    A contiguous uint8 batch on the CPU takes one numba pass (``colour_kernel``: the jitter as
    one affine colour map per image, clamp and normalisation per pixel), equal to the torch
    formula up to float rounding; other batches (a GPU, a graph capture) take the formula."""
    if params is None:
        return normalize_batch(images, norm)
    if not (_cpu_uint8_batch(images) and images.is_contiguous()):
        return normalize_batch(colour_augment_batch(images, params), norm)
    use_torch_threads()
    scale, bias, _ = _normalizer(norm)
    out = colour_kernel.colour_normalize(
        images.numpy(), params.detach().cpu().numpy(), np.array(_EIGVEC), np.array(_EIGVAL), scale, bias,
        rgb=norm.order == "rgb",
    )  # fmt: skip
    return torch.from_numpy(out).permute(0, 3, 1, 2)
