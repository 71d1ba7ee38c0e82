"""Reading image files for every reader and command: (H, W, 3) uint8 BGR or a DataError naming the file.

What a user expects from an image file, decided case by case:

- a PNG named ``.jpg`` (or any other mismatch): read by its content, not its name;
- grayscale: the grey value in all three channels; 4-channel (BGRA): the colour channels,
  alpha dropped; 16-bit: scaled to 8 bits (the high byte, ``v >> 8``); all as OpenCV's
  ``IMREAD_COLOR`` does, EXIF orientation applied;
- missing, a folder, zero bytes, undecodable bytes, a JPEG cut short (no end-of-image marker
  after its last scan: OpenCV would silently return grey for the missing part) or a PNG cut
  short: ``DataError`` naming the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from centerpoint_suite.errors import DataError

_JPEG_SOI, _JPEG_EOI, _JPEG_SOS = b"\xff\xd8", b"\xff\xd9", b"\xff\xda"
_PNG_SIGNATURE, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND"


def check_image_bytes(path: Path | str, data: bytes) -> None:
    """DataError naming ``path`` when ``data`` is empty or a visibly truncated JPEG / PNG."""
    if not data:
        raise DataError(f"{path}: empty image file (0 bytes)")
    if data[:2] == _JPEG_SOI and data.rfind(_JPEG_EOI) < data.rfind(_JPEG_SOS):
        # entropy-coded data stuffs every 0xff byte, so markers found are real markers;
        # an EOI before the last SOS belongs to an embedded thumbnail
        raise DataError(f"{path}: truncated JPEG (the file ends inside the image data)")
    if data[:8] == _PNG_SIGNATURE and _PNG_IEND not in data[-64:]:
        raise DataError(f"{path}: truncated PNG (no IEND chunk at the end)")


def read_image(path: Path | str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 BGR (see the module docstring for the conversions).

    Raises DataError naming ``path`` for a missing, empty, truncated or undecodable file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read image ({e.strerror or e})") from None
    check_image_bytes(path, data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: not a decodable image (corrupt, or a format OpenCV cannot read)")
    return image
