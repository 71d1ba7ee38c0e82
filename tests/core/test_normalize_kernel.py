"""The per-byte normalisation (``centerpoint_suite.normalize_kernel``): bit for bit the table
look-up it replaces for every preset, the kernel equal to its plain-numpy twin in both float32
arithmetics, the fused multiply-add rounding once, and a table that neither arithmetic gives
detected (the look-up then stays)."""

from __future__ import annotations

import cv2
import numba
import numpy as np
import pytest

from centerpoint_suite.normalize_kernel import fma32, normalize_u8, table_arithmetic
from centerpoint_suite.transforms import NORMALIZATIONS, normalization_lut, normalize_image


# ---- plain-numpy twins (tests only) ----------------------------------------------------------
def fma32_twin(a, b, c) -> np.ndarray:
    """float32 ``a * b + c`` with one rounding: the exact sum as a double pair (TwoSum), then
    rounded once (a double exactly halfway between two float32 is moved towards the remainder)."""
    a, b, c = (np.asarray(v, np.float32).astype(np.float64) for v in (a, b, c))
    p = a * b  # exact: 24 + 24 significant bits
    s = np.asarray(p + c)
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    bits = s.view(np.int64)
    halfway = ((bits & (2**29 - 1)) == 2**28) & (err != 0)
    bits = np.where(halfway, bits + np.where((err > 0) == (s > 0), 1, -1), bits)
    return bits.view(np.float64).astype(np.float32)


def normalize_twin(image: np.ndarray, scale: np.ndarray, bias: np.ndarray, fused: bool) -> np.ndarray:
    v = image.astype(np.float32)
    return fma32_twin(v, scale, bias) if fused else v * scale + bias


# ---- the kernels ---------------------------------------------------------------------------
@numba.njit(cache=False)
def _fma(a, b, c):
    return fma32(a, b, c)


def test_fma_rounds_once():
    """a * b + c = 1 + 2^-23 + 2^-24 - 2^-70: rounded once it is 1 + 2^-23; rounded to double
    first it becomes the float32 midpoint 1 + 2^-23 + 2^-24, then (ties to even) 1 + 2^-22."""
    a, b, c = np.float32(2**-12 * (1 + 2**-23)), np.float32(2**-12 * (1 - 2**-23)), np.float32(1 + 2**-23)
    once, twice = np.float32(1 + 2**-23), np.float32(1 + 2**-22)
    assert np.float32(np.float64(a) * np.float64(b) + np.float64(c)) == twice
    assert fma32_twin(a, b, c) == once
    assert _fma(a, b, c) == once  # the kernel's fused multiply-add


# ---- the normalisation -----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NORMALIZATIONS))
def test_normalise_equals_the_table_bit_for_bit(name):
    norm = NORMALIZATIONS[name]
    image = np.random.default_rng(1).integers(0, 256, (33, 70, 3), dtype=np.uint8)
    lut = normalization_lut(norm)
    src = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if norm.order == "rgb" else image
    want = cv2.LUT(src, lut)
    got = normalize_image(image, norm)
    assert got.dtype == np.float32 and got.shape == (33, 70, 3)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    out = np.empty((33, 70, 3), np.float32)
    assert normalize_image(image, norm, out) is out
    np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("fused", [False, True])
def test_normalise_kernel_equals_twin(fused):
    rng = np.random.default_rng(int(fused))
    image = rng.integers(0, 256, (17, 29, 3), dtype=np.uint8)
    scale = rng.uniform(0.001, 0.05, 3).astype(np.float32)
    bias = rng.uniform(-3, 3, 3).astype(np.float32)
    got = normalize_u8(image, scale, bias, fused)
    np.testing.assert_array_equal(got.view(np.int32), normalize_twin(image, scale, bias, fused).view(np.int32))
    values = np.arange(256, dtype=np.uint8)[:, None, None].repeat(3, 2)
    table = normalize_twin(values, scale, bias, fused).reshape(256, 1, 3)
    found = table_arithmetic(table, scale, bias)
    assert found is not None and np.array_equal(normalize_twin(values, scale, bias, found), table.reshape(256, 1, 3))
    table[7, 0, 1] = np.nextafter(table[7, 0, 1], np.float32(9))  # one entry off by one ulp: look it up
    assert table_arithmetic(table, scale, bias) is None
