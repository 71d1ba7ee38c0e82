"""Affine maps between original image pixels, network input and output cells, and their inverses.

The CenterNet convention: a square (or rectangular) source window of width ``scale``
centred on ``center`` is mapped onto the destination of size ``(dst_w, dst_h)`` with one
uniform zoom ``dst_w / scale`` (aspect kept), optionally rotated and mirrored.
"""

from __future__ import annotations

import math

import numpy as np


def center_scale_affine(
    center: tuple[float, float] | np.ndarray,
    scale: float,
    dst_wh: tuple[int, int],
    rotation_deg: float = 0.0,
    flip_width: int | None = None,
) -> np.ndarray:
    """(2, 3) float64 matrix mapping source pixels to destination pixels.

    center:       source point (x, y) that lands at the destination centre (dst_w/2, dst_h/2).
    scale:        source window width in pixels; zoom = dst_w / scale on both axes.
    rotation_deg: counter-clockwise rotation of the window.
    flip_width:   when given, the source is first mirrored ``x -> flip_width - 1 - x``
                  (image width of the source), with ``center`` given in mirrored coordinates.
    """
    cx, cy = float(center[0]), float(center[1])
    dst_w, dst_h = dst_wh
    z = dst_w / float(scale)
    a = math.radians(rotation_deg)
    cos, sin = math.cos(a) * z, math.sin(a) * z
    # x' = R (x - c) + d, with R = z * [[cos, sin], [-sin, cos]] (image y points down)
    m = np.array(
        [[cos, sin, dst_w / 2.0 - cos * cx - sin * cy], [-sin, cos, dst_h / 2.0 + sin * cx - cos * cy]],
        dtype=np.float64,
    )
    if flip_width is not None:
        mirror = np.array([[-1.0, 0.0, flip_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        m = m @ mirror
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix (or a stack (..., 2, 3))."""
    m = np.asarray(m, dtype=np.float64)
    a = m[..., :2, :2]
    t = m[..., :2, 2:]
    ai = np.linalg.inv(a)
    return np.concatenate([ai, -ai @ t], axis=-1)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer o inner for (2, 3) matrices (apply ``inner`` first)."""
    o3 = np.vstack([outer, [0.0, 0.0, 1.0]])
    i3 = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (o3 @ i3)[:2]


def scale_affine(m: np.ndarray, factor: float) -> np.ndarray:
    """The map followed by a uniform zoom ``factor`` (input pixels -> output cells uses 1/stride)."""
    return np.asarray(m, dtype=np.float64) * factor


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) matrix to points (..., 2) -> (..., 2), float64 math, input dtype kept."""
    p = np.asarray(points)
    out = p @ m[:, :2].T.astype(np.float64) + m[:, 2]
    return out.astype(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64)


def affine_boxes(m: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Map axis-aligned boxes (N, 4) x1 y1 x2 y2 through an affine without rotation.

    A mirror swaps x1/x2; the result is re-ordered so that x1 <= x2 and y1 <= y2.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2)
    p = b @ m[:, :2].T + m[:, 2]
    lo = p.min(axis=1)
    hi = p.max(axis=1)
    return np.concatenate([lo, hi], axis=1).astype(np.float32)


def batch_apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per-image affine: m (B, 2, 3), points (B, K, ..., 2) -> same shape."""
    b = m.shape[0]
    flat = points.reshape(b, -1, 2).astype(np.float64)
    out = np.einsum("bij,bkj->bki", m[:, :, :2], flat) + m[:, None, :, 2]
    return out.reshape(points.shape).astype(np.float32)
