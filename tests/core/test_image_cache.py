"""The in-memory image cache (``data.cache_gb``): the reader's samples, each file decoded once,
images nobody can change in place, a size limit, and a training run equal to one without it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from centerpoint_suite.datasets.kitti import KittiSource
from centerpoint_suite.datasets.synthetic_shapes import generate_shapes
from centerpoint_suite.image_cache import CachedImages
from tests.core.runs import TINY_TRAIN, run, train_cmd, weights


class CountingSource:
    """A reader that counts the images it decodes."""

    def __init__(self, base) -> None:
        self.base, self.decoded = base, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        self.decoded += 1
        return self.base[index]

    def read(self, index: int, image=None):
        self.decoded += image is None
        return self.base.read(index, image)

    def __getattr__(self, name: str):
        return getattr(self.base, name)


def test_cached_samples_equal_the_reader_and_decode_once(kitti_root):
    plain = KittiSource(kitti_root, "val")
    counting = CountingSource(KittiSource(kitti_root, "val"))
    cached = CachedImages(counting, limit_gb=1.0)
    for _ in range(3):
        for i in range(len(plain)):
            got, want = cached[i], plain[i]
            assert got.image_id == want.image_id
            assert np.array_equal(got.image, want.image)
            assert np.array_equal(got.boxes, want.boxes) and np.array_equal(got.classes, want.classes)
            assert np.array_equal(got.calib, want.calib)
            for key, value in want.objects3d.items():
                assert np.array_equal(got.objects3d[key], value), key
    assert counting.decoded == len(plain)  # three passes, one decode per frame
    assert cached.used == sum(plain[i].image.nbytes for i in range(len(plain)))
    assert cached.classes == plain.classes and cached.image_id(0) == plain.image_id(0)


def test_cached_images_are_read_only(kitti_root):
    cached = CachedImages(KittiSource(kitti_root, "val"), limit_gb=1.0)
    image = cached[0].image
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1
    assert cached[0].image is image


def test_the_limit_stops_adding_and_says_so(kitti_root, caplog):
    base = KittiSource(kitti_root, "val")
    one = base[0].image.nbytes
    counting = CountingSource(base)
    cached = CachedImages(counting, limit_gb=2.5 * one / 2**30)  # room for two frames
    with caplog.at_level(logging.INFO, logger="centerpoint_suite.image_cache"):
        for _ in range(2):
            for i in range(4):
                cached[i]
    assert len(cached.images) == 2 and cached.used == 2 * one
    assert counting.decoded == 4 + 2  # the two frames that did not fit are decoded again
    assert sum("image cache full at 2 of" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("size", [0.0, -1.0])
def test_a_cache_without_room_is_refused(kitti_root, size):
    with pytest.raises(ValueError, match="data.cache_gb"):
        CachedImages(KittiSource(kitti_root, "val"), limit_gb=size)


@pytest.mark.slow
def test_training_with_the_cache_equals_training_without(tmp_path: Path):
    """Two epochs read every image twice: the second from memory, the weights bit for bit the same."""
    data = generate_shapes(tmp_path / "shapes", num_train=8, num_val=2, image_size=(80, 80))
    args = [*TINY_TRAIN, "--data", data, "--set", "train.epochs=2", "--set", "train.batch_size=4"]
    run(train_cmd(*args, "--out", tmp_path / "plain"))
    run(train_cmd(*args, "--out", tmp_path / "cached", "--set", "data.cache_gb=0.5"))
    got, want = weights(tmp_path / "cached" / "last.pth"), weights(tmp_path / "plain" / "last.pth")
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
