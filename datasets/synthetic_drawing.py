"""Pixels shared by the built-in synthetic generators: random textured backgrounds, colours that
stand out from them, and drawn masks turned into COCO boxes and polygons.

Image arrays are (H, W, 3) uint8 in BGR channel order (what ``cv2.imwrite`` expects);
coordinates are original image pixels, x right, y down, pixel centres at integers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from centerpoint_suite.errors import UserError

# ----------------------------------------------------------------------------- backgrounds


def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W) float32 coordinate along a random direction, normalised to about -0.5..0.5."""
    theta = rng.uniform(0.0, np.pi)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    ys = np.arange(h, dtype=np.float32)[:, None] - h / 2
    xs = np.arange(w, dtype=np.float32)[None, :] - w / 2
    return (xs * c + ys * s) / np.float32(max(h, w))


def _gradient(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    return _ramp(rng, h, w)[..., None] * rng.normal(0.0, amp, 3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    cells = int(rng.integers(3, 17))
    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    grid = rng.normal(0.0, amp * 0.6, (gh, gw, 3)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _stripes(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    period = rng.uniform(6.0, 48.0) / max(h, w)
    wave = np.sin(_ramp(rng, h, w) * np.float32(2 * np.pi / period) + np.float32(rng.uniform(0, 2 * np.pi)))
    if rng.random() < 0.5:  # hard-edged stripes, softened by a pixel
        wave = cv2.GaussianBlur(np.sign(wave).astype(np.float32), (0, 0), 0.8)
    return wave[..., None] * rng.normal(0.0, amp * 0.5, 3).astype(np.float32)


def _blobs(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    # drawn and blurred at quarter resolution, then enlarged (smooth anyway, 10x cheaper)
    sh, sw = max(4, h // 4), max(4, w // 4)
    layer = np.zeros((sh, sw, 3), np.float32)
    n = int(rng.integers(3, 13))
    centres = rng.uniform((0, 0), (sw, sh), (n, 2))
    radii = rng.uniform(0.04, 0.2, n) * min(sh, sw)
    colours = rng.normal(0.0, amp, (n, 3))
    for (x, y), r, col in zip(centres, radii, colours):
        cv2.circle(layer, (int(x), int(y)), max(1, int(r)), col.tolist(), -1)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.03 * min(sh, sw) + 0.3)
    return cv2.resize(layer, (w, h), interpolation=cv2.INTER_LINEAR)


def _checker(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    cell = rng.uniform(8.0, 40.0)
    ys = (np.arange(h) // cell).astype(np.int32)[:, None]
    xs = (np.arange(w) // cell).astype(np.int32)[None, :]
    sign = (((xs + ys) & 1) * 2 - 1).astype(np.float32)
    sign = cv2.GaussianBlur(sign, (0, 0), 1.0)
    return sign[..., None] * rng.normal(0.0, amp * 0.35, 3).astype(np.float32)


TEXTURES: dict[str, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    "gradient": _gradient,
    "noise": _smooth_noise,
    "stripes": _stripes,
    "blobs": _blobs,
    "checker": _checker,
}


def textured_background(
    rng: np.random.Generator,
    height: int,
    width: int,
    contrast: float = 1.0,
    kinds: Sequence[str] | None = None,
) -> np.ndarray:
    """A random textured background, (height, width, 3) uint8 BGR.

    A base colour plus one to three layers picked from ``kinds`` (default: all of
    ``TEXTURES``: gradient, smooth noise, stripes, blurred blobs, checker) and a fine grain.
    ``contrast`` scales the texture amplitude (1.0: roughly +-40 grey levels), so objects
    drawn with ``contrasting_colour`` stay clearly visible.
    """
    names = list(kinds) if kinds is not None else list(TEXTURES)
    unknown = [k for k in names if k not in TEXTURES]
    if unknown:
        raise UserError(f"unknown background texture(s) {unknown}; choose from {sorted(TEXTURES)}")
    h, w = int(height), int(width)
    amp = 40.0 * float(contrast)
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.uniform(35.0, 220.0, 3).astype(np.float32)
    n_layers = int(rng.integers(1, min(3, len(names)) + 1))
    for k in rng.choice(len(names), n_layers, replace=False):
        img += TEXTURES[names[int(k)]](rng, h, w, amp)
    # fine grain: uniform noise of std 3 * contrast from random bytes (cheaper than normals)
    grain = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w, 1).astype(np.float32)
    img += (grain - np.float32(127.5)) * np.float32(3.0 * contrast / 73.9)
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- colours


def contrasting_colour(
    rng: np.random.Generator, avoid: np.ndarray | Sequence[Sequence[float]], candidates: int = 24
) -> np.ndarray:
    """A random colour far from every colour in ``avoid``.

    avoid: (K, 3) colours (same channel order as the image; K may be 0).
    Returns (3,) uint8: the one of ``candidates`` uniform random colours whose smallest
    Euclidean distance to ``avoid`` is largest.
    """
    cand = rng.integers(0, 256, (candidates, 3)).astype(np.float32)
    ref = np.asarray(avoid, np.float32).reshape(-1, 3)
    if len(ref) == 0:
        return cand[0].astype(np.uint8)
    dist = np.linalg.norm(cand[:, None, :] - ref[None, :, :], axis=2).min(axis=1)
    return cand[int(np.argmax(dist))].astype(np.uint8)


def shade(colour: np.ndarray | Sequence[float], factor: float) -> np.ndarray:
    """``colour`` scaled by ``factor`` (darker < 1 < lighter), (3,) uint8."""
    return np.clip(np.asarray(colour, np.float32) * factor, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- masks -> COCO fields


def mask_bbox(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[float] | None:
    """COCO ``[x, y, w, h]`` of the nonzero pixels of ``mask`` (placed at offset x0, y0).

    As pycocotools does for masks: a box covering pixel columns x..x+w-1; None when empty.
    """
    if not mask.any():
        return None
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return [float(x + x0), float(y + y0), float(w), float(h)]


def mask_polygons(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[list[float]]:
    """COCO polygon segmentation (outer contours only) of a binary mask placed at (x0, y0)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append((c.reshape(-1, 2) + (x0, y0)).reshape(-1).astype(np.float64).tolist())
    return polys
