"""The uint8 -> float32 normalisation of network inputs as a per-byte multiply-add that
reproduces the 256-entry normalisation table (``transforms.normalization_lut``) bit for bit.

A contiguous multiply-add vectorises; a table look-up per byte (``cv2.LUT``) does not. Before
it is used, ``table_arithmetic`` checks on all 256 values of every channel which float32
arithmetic gives the table exactly: ``v * scale`` then ``+ bias`` (two roundings) or one fused
multiply-add (``fma32``, LLVM's ``llvm.fma``); when neither does, the table look-up stays.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def fma32(typingctx, a, b, c):
    """``a * b + c`` on float32 with one rounding (LLVM ``llvm.fma.f32``)."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fn, args)

    return sig, codegen


@numba.njit(cache=True, nogil=True)
def _normalize_kernel(src, out, scale, bias, fused):
    """src (N, 3C) uint8 rows, out (N, 3C) float32: ``x * scale + bias`` per element, ``scale``
    and ``bias`` (3C,) float32 repeating the 3 channels; two roundings or one (``fused``)."""
    for i in range(src.shape[0]):
        s = src[i]
        o = out[i]
        if fused:
            for j in range(s.shape[0]):
                o[j] = fma32(np.float32(s[j]), scale[j], bias[j])
        else:
            for j in range(s.shape[0]):
                o[j] = np.float32(np.float32(s[j]) * scale[j]) + bias[j]


def table_arithmetic(lut: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> bool | None:
    """Which arithmetic of ``_normalize_kernel`` gives the (256, 1, 3) float32 table ``lut``
    exactly (bit for bit, all 256 values of every channel): False = ``v * scale`` then ``+ bias``
    (two roundings), True = one fused multiply-add, None = neither (keep looking up)."""
    values = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
    want = np.ascontiguousarray(lut, np.float32).reshape(256, 3).view(np.int32)
    scale = np.ascontiguousarray(scale, np.float32)
    bias = np.ascontiguousarray(bias, np.float32)
    for fused in (False, True):
        table = np.empty((256, 3), np.float32)
        _normalize_kernel(values, table, scale, bias, fused)
        if np.array_equal(table.view(np.int32), want):
            return fused
    return None


def normalize_u8(
    image: np.ndarray, scale: np.ndarray, bias: np.ndarray, fused: bool, out: np.ndarray | None = None
) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (H, W, 3) = ``v * scale[c] + bias[c]`` per byte v of channel
    c (scale, bias: (3,) float32), in the arithmetic ``table_arithmetic`` found; into ``out``
    (float32, same shape, C-contiguous) when given."""
    h, w = image.shape[:2]
    if out is None:
        out = np.empty((h, w, 3), np.float32)
    src = np.ascontiguousarray(image).reshape(h, w * 3)
    scale_row = np.tile(np.asarray(scale, np.float32), w)
    bias_row = np.tile(np.asarray(bias, np.float32), w)
    _normalize_kernel(src, out.reshape(h, w * 3), scale_row, bias_row, bool(fused))
    return out
