"""KITTI object calibration files (``training/calib/<id>.txt``): every matrix, and the left
colour camera's projection P2 that the mono3d task uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from centerpoint_suite.errors import DataError

from .kitti_labels import read_text_file


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a KITTI object calibration file ``KEY: v1 v2 ...`` into float64 arrays.

    12 values become (3, 4) (P0..P3, Tr_velo_to_cam, Tr_imu_to_velo), 9 values (3, 3)
    (R0_rect); other counts stay 1-D.  Blank lines are skipped; a line without ``:`` or with a
    non-numeric value raises ``DataError`` naming file and line.
    """
    path = Path(path)
    text = read_text_file(path, "calibration file")
    calib: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        if not sep or not key.strip():
            raise DataError(f"{path}:{lineno}: expected 'KEY: values' in a calibration file")
        try:
            values = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: malformed calibration value ({exc})") from None
        if not np.isfinite(values).all():
            raise DataError(f"{path}:{lineno}: non-finite calibration value")
        if values.size == 12:
            values = values.reshape(3, 4)
        elif values.size == 9:
            values = values.reshape(3, 3)
        calib[key.strip()] = values
    return calib


def read_p2(path: str | Path) -> np.ndarray:
    """(3, 4) float32 projection matrix P2 (left colour camera, rectified frame -> pixels)."""
    calib = read_calib_file(path)
    p2 = calib.get("P2")
    if p2 is None:
        raise DataError(f"{path}: no 'P2' line in the calibration file")
    if p2.shape != (3, 4):
        raise DataError(f"{path}: P2 must have 12 values, got {p2.size}")
    return p2.astype(np.float32)
