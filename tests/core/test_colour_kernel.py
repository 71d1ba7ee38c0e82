"""The one-pass colour augmentation + normalisation (``colour_kernel``) against the torch formula
it replaces in training (``colour_augment_batch`` then ``normalize_batch``)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from centerpoint_suite import colour_kernel
from centerpoint_suite.transforms import (
    augment_normalize_batch,
    colour_augment_batch,
    get_normalization,
    normalize_batch,
    sample_colour_params,
)

NORMS = ("imagenet_rgb", "original_kitti")  # RGB and BGR network channel orders


def _formula(images: torch.Tensor, params: torch.Tensor, norm) -> torch.Tensor:
    return normalize_batch(colour_augment_batch(images, params), norm)


@st.composite
def _batches(draw):
    b, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**32 - 1))
    strength = draw(st.sampled_from([0.0, 0.4, 0.9]))  # up to a factor of 0.1 or 1.9
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8))
    params = torch.from_numpy(np.stack([sample_colour_params(rng, strength) for _ in range(b)]))
    return images, params


@settings(max_examples=60, deadline=None)
@given(batch=_batches(), norm=st.sampled_from(NORMS))
def test_kernel_equals_the_torch_formula(batch, norm):
    """Every op order, factors up to 1.9 (values pushed past the clamp) and lighting shifts."""
    images, params = batch
    norm = get_normalization(norm)
    got = augment_normalize_batch(images, params, norm)
    want = _formula(images, params, norm)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=0)  # 1/200 of a grey level


def test_contrast_uses_the_mean_grey_of_the_image_as_the_ops_before_left_it():
    """Brightness first changes the mean that contrast pulls towards: the composed map tracks it."""
    rng = np.random.default_rng(5)
    images = torch.from_numpy(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    norm = get_normalization("imagenet_rgb")
    no_light = [0.0, 0.0, 0.0]
    params = torch.tensor([[0, 1, 2, 0.5, 0.3, 1.0, *no_light], [1, 0, 2, 0.5, 0.3, 1.0, *no_light]])
    got = augment_normalize_batch(images, params, norm)
    torch.testing.assert_close(got, _formula(images, params, norm), atol=2e-5, rtol=0)
    assert not torch.allclose(got[0], got[1], atol=1e-3)  # the order matters


def test_mean_colours_is_the_channel_mean():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 7, 11, 3), dtype=np.uint8)
    np.testing.assert_allclose(colour_kernel.mean_colours(images), images.mean(axis=(1, 2)), rtol=1e-12)


def test_same_bits_on_any_thread_count():
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 256, (4, 64, 48, 3), dtype=np.uint8))
    params = torch.from_numpy(np.stack([sample_colour_params(rng) for _ in range(4)]))
    norm = get_normalization("imagenet_rgb")
    before = torch.get_num_threads()
    try:  # the kernel runs on as many numba threads as torch has
        torch.set_num_threads(1)
        one = augment_normalize_batch(images, params, norm)
        assert numba.get_num_threads() == 1
        torch.set_num_threads(max(2, numba.config.NUMBA_NUM_THREADS))
        many = augment_normalize_batch(images, params, norm)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)


@pytest.mark.parametrize("norm", NORMS)
def test_other_batches_take_the_formula_and_no_params_only_normalise(norm):
    norm = get_normalization(norm)
    rng = np.random.default_rng(3)
    images = torch.from_numpy(rng.integers(0, 256, (2, 10, 12, 3), dtype=np.uint8))
    params = torch.from_numpy(np.stack([sample_colour_params(rng) for _ in range(2)]))
    strided = images[:, :, ::2]  # not contiguous
    torch.testing.assert_close(augment_normalize_batch(strided, params, norm), _formula(strided, params, norm))
    assert torch.equal(augment_normalize_batch(images, None, norm), normalize_batch(images, norm))
