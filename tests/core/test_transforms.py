"""Normalisation presets, colour augmentation and the train-time affine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centerpoint_suite.geometry import apply_affine
from centerpoint_suite.transforms import (
    AugmentConfig,
    colour_augment_batch,
    get_normalization,
    normalize_batch,
    sample_colour_params,
    sample_train_affine,
)


@pytest.mark.parametrize("name", ["imagenet_rgb", "original_coco", "original_kitti"])
def test_normalize_matches_per_pixel_formula(name):
    img = torch.randint(0, 256, (2, 5, 7, 3), dtype=torch.uint8)
    n = get_normalization(name)
    x = normalize_batch(img, n)
    a = img.numpy().astype(np.float64) / 255
    if n.order == "rgb":
        a = a[..., ::-1]
    ref = ((a - np.array(n.mean)) / np.array(n.std)).transpose(0, 3, 1, 2)
    assert x.shape == (2, 3, 5, 7)
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-5)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_original_kitti_uses_imagenet_rgb_stats_on_bgr():
    k, i = get_normalization("original_kitti"), get_normalization("imagenet_rgb")
    assert k.mean == i.mean and k.order == "bgr" and i.order == "rgb"


def _params(seed: int) -> torch.Tensor:
    return torch.from_numpy(sample_colour_params(np.random.default_rng(seed)))


def test_colour_augment_is_per_image_seeded_and_bounded():
    img = torch.randint(0, 256, (3, 8, 8, 3), dtype=torch.uint8)
    params = torch.stack([_params(s) for s in (1, 2, 3)])
    a = colour_augment_batch(img, params)
    assert a.min() >= 0 and a.max() <= 255 and not torch.allclose(a, img.float())
    # an image's result depends only on its own parameters, not on its batch neighbours
    alone = colour_augment_batch(img[1:2], params[1:2])
    torch.testing.assert_close(a[1:2], alone)


@pytest.mark.parametrize("op", [0, 1, 2])
def test_colour_ops_match_their_formulas(op):
    """Each op alone (the others with factor 1) against its per-pixel formula on BGR floats."""
    img = torch.randint(0, 256, (1, 4, 5, 3), dtype=torch.uint8)
    f = 1.3
    params = torch.tensor([[op, (op + 1) % 3, (op + 2) % 3, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    params[0, 3 + op] = f
    x = img.double() / 255
    gray = (x * torch.tensor([0.114, 0.587, 0.299], dtype=torch.float64)).sum(-1, keepdim=True)
    base = {0: torch.zeros_like(gray), 1: gray.mean().expand_as(gray), 2: gray}[op]
    ref = ((x * f + base * (1 - f)).clamp(0, 1) * 255).float()
    torch.testing.assert_close(colour_augment_batch(img, params), ref, atol=1e-3, rtol=0)


@pytest.mark.parametrize("crop", [True, False])
def test_train_affine_is_uniform_zoom_and_flip_mirrors(crop):
    rng = np.random.default_rng(3)
    aug = AugmentConfig(random_crop=crop, flip=1.0)
    m, flipped = sample_train_affine(rng, (300, 500), (256, 256), aug, can_flip=True)
    assert flipped and m[0, 0] < 0 < m[1, 1]
    assert abs(abs(m[0, 0]) - m[1, 1]) < 1e-9
    m2, flipped2 = sample_train_affine(rng, (300, 500), (256, 256), aug, can_flip=False)
    assert not flipped2 and m2[0, 0] > 0
    left, right = apply_affine(m, np.array([[10.0, 150.0], [400.0, 150.0]]))
    assert left[0] > right[0]
