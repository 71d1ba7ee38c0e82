"""Image files: odd but readable ones are read correctly as 8-bit BGR, broken ones are named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from centerpoint_suite.datasets.coco import CocoSource
from centerpoint_suite.datasets.images import read_image

RNG = np.random.default_rng(1)
BGR = RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8)


def _png_named_jpg(path: Path) -> np.ndarray:
    ok, data = cv2.imencode(".png", BGR)
    path.write_bytes(data.tobytes())
    return BGR


def _sixteen_bit(path: Path) -> np.ndarray:
    deep = BGR.astype(np.uint16) * 257 + RNG.integers(0, 257, BGR.shape).astype(np.uint16)
    ok, data = cv2.imencode(".png", deep)
    path.write_bytes(data.tobytes())
    return (deep >> 8).astype(np.uint8)


def _grayscale(path: Path) -> np.ndarray:
    gray = BGR[..., 1].copy()
    ok, data = cv2.imencode(".png", gray)
    path.write_bytes(data.tobytes())
    return np.repeat(gray[..., None], 3, axis=2)


def _four_channel(path: Path) -> np.ndarray:
    bgra = np.concatenate([BGR, RNG.integers(0, 256, (32, 48, 1), dtype=np.uint8)], axis=2)
    ok, data = cv2.imencode(".png", bgra)
    path.write_bytes(data.tobytes())
    return BGR


@pytest.mark.parametrize("make", [_png_named_jpg, _sixteen_bit, _grayscale, _four_channel])
def test_readable_image_types_come_out_as_8bit_bgr(coco, make) -> None:
    ann = coco()
    expected = make(ann.parents[1] / "val" / "0.jpg")  # a dataset image of the wrong type
    sample = CocoSource(ann.parents[1], "val")[0]
    assert sample.image.dtype == np.uint8 and sample.image.shape == (32, 48, 3)
    np.testing.assert_array_equal(sample.image, expected)


def _jpeg_bytes() -> bytes:
    return cv2.imencode(".jpg", BGR)[1].tobytes()


BROKEN = {
    "zero-byte": (lambda: b"", "empty image file (0 bytes)"),
    "corrupt": (lambda: b"\x00garbage" * 50, "not a decodable image"),
    "truncated-jpeg": (lambda: _jpeg_bytes()[: len(_jpeg_bytes()) * 2 // 3], "truncated JPEG"),
    "truncated-png": (lambda: cv2.imencode(".png", BGR)[1].tobytes()[:-40], "truncated PNG"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_dataset_image_is_named(coco, cli, case) -> None:
    ann = coco()
    make, message = BROKEN[case]
    victim = ann.parents[1] / "val" / "1.jpg"
    victim.write_bytes(make())
    res = cli("oracle", "--task", "boxes2d", "--data", ann.parents[1], "--split", "val")
    assert res.error.startswith(f"{victim}: {message}")


def test_missing_dataset_image_is_named(coco, cli) -> None:
    ann = coco()
    (ann.parents[1] / "val" / "1.jpg").unlink()
    res = cli("oracle", "--task", "boxes2d", "--data", ann.parents[1], "--split", "val")
    assert "1 image(s) listed in instances_val.json are missing, e.g. 1.jpg" in res.error


def test_reader_errors_on_missing_and_folder(tmp_path: Path) -> None:
    from centerpoint_suite.errors import DataError

    with pytest.raises(DataError, match=r"nope\.jpg: image file not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(DataError, match="cannot read image"):
        read_image(tmp_path)


def test_jpeg_with_thumbnail_eoi_is_not_called_truncated(tmp_path: Path) -> None:
    # an EOI marker before the main scan (as an EXIF thumbnail has) must not hide or fake truncation
    data = _jpeg_bytes()
    fake = data[:2] + b"\xff\xe1\x00\x06ab\xff\xd9" + data[2:]
    (tmp_path / "t.jpg").write_bytes(fake)
    assert read_image(tmp_path / "t.jpg").shape == (32, 48, 3)
    (tmp_path / "c.jpg").write_bytes(fake[: len(fake) - 200])
    with pytest.raises(Exception, match="truncated JPEG"):
        read_image(tmp_path / "c.jpg")
