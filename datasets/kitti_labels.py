"""KITTI label and result files: ``KittiObjects`` (one row per line), reading and writing them,
and the result rows of a network's ``Predictions``.

Label line fields: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]``
-- truncated 0..1 (float), occluded 0/1/2/3 (int), alpha and rotation_y radians, the 2D box in
image pixels, dimensions in metres, location = bottom centre of the box in the rectified
camera frame (x right, y down, z forward), metres.  Unknown 3D values are written as the
devkit does (dimensions -1, location -1000, alpha/rotation_y -10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerpoint_suite.errors import DataError
from centerpoint_suite.types import Predictions


def read_text_file(path: Path, kind: str) -> str:
    """The text of one KITTI text file (label, calibration, split), or a DataError naming it as ``kind``."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise DataError(f"{kind} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {kind} {path}: {exc}") from None


@dataclass
class KittiObjects:
    """The objects of one KITTI label (or result) file, one row per line.

    type:       (N,) str, e.g. "Car", "DontCare".
    truncated:  (N,) float64, 0 (fully visible) .. 1 (leaving the image); -1 for DontCare.
    occluded:   (N,) int64, 0 fully visible, 1 partly, 2 largely, 3 unknown; -1 for DontCare.
    alpha:      (N,) float64 observation angle, radians in [-pi, pi]; -10 unknown.
    bbox:       (N, 4) float64 x1, y1, x2, y2 image pixels.
    dimensions: (N, 3) float64 h, w, l metres.
    location:   (N, 3) float64 x, y, z metres, camera frame, bottom centre of the box.
    rotation_y: (N,) float64 yaw about the camera y axis, radians in [-pi, pi].
    score:      (N,) float64 detection confidence (16th field), or None for ground truth.
    """

    type: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    score: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.bbox.shape[0])

    @classmethod
    def empty(cls, with_score: bool = False) -> KittiObjects:
        return cls(
            type=np.zeros((0,), dtype="<U16"),
            truncated=np.zeros((0,)),
            occluded=np.zeros((0,), np.int64),
            alpha=np.zeros((0,)),
            bbox=np.zeros((0, 4)),
            dimensions=np.zeros((0, 3)),
            location=np.zeros((0, 3)),
            rotation_y=np.zeros((0,)),
            score=np.zeros((0,)) if with_score else None,
        )

    def select(self, keep: np.ndarray) -> KittiObjects:
        """Subset by boolean mask or index array."""
        return KittiObjects(
            self.type[keep],
            self.truncated[keep],
            self.occluded[keep],
            self.alpha[keep],
            self.bbox[keep],
            self.dimensions[keep],
            self.location[keep],
            self.rotation_y[keep],
            None if self.score is None else self.score[keep],
        )

    @property
    def boxes3d(self) -> np.ndarray:
        """(N, 7) float64 ``x, y, z, h, w, l, ry`` (location, dimensions, rotation_y)."""
        return np.concatenate([self.location, self.dimensions, self.rotation_y[:, None]], axis=1)


def _parse_label_line(fields: list[str], path: Path, lineno: int) -> list[float]:
    try:
        values = [float(v) for v in fields[1:]]
    except ValueError as exc:
        raise DataError(f"{path}:{lineno}: malformed KITTI label line ({exc})") from None
    if not np.isfinite(values).all():  # float() reads "nan" / "inf"
        bad = next(f for f, v in zip(fields[1:], values) if not np.isfinite(v))
        raise DataError(f"{path}:{lineno}: non-finite value {bad!r} in a KITTI label line")
    return values


def read_label_file(path: str | Path) -> KittiObjects:
    """Read a KITTI label or result file (15 fields per line, 16 with a score).

    Blank lines are skipped.  A missing file, a line with another field count, a
    non-numeric value or a file mixing 15- and 16-field lines raises ``DataError``
    naming the file and line.
    """
    path = Path(path)
    text = read_text_file(path, "label file")
    names: list[str] = []
    rows: list[list[float]] = []
    n_fields = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (15, 16):
            raise DataError(
                f"{path}:{lineno}: expected 15 fields (16 with a score) in a KITTI label line, got {len(fields)}"
            )
        if n_fields and len(fields) != n_fields:
            raise DataError(f"{path}:{lineno}: {len(fields)} fields, but earlier lines have {n_fields}")
        n_fields = len(fields)
        values = _parse_label_line(fields, path, lineno)
        if not (np.isfinite(values[1]) and values[1] == int(values[1])):
            raise DataError(f"{path}:{lineno}: occluded must be an integer, got {fields[2]!r}")
        names.append(fields[0])
        rows.append(values)
    if not rows:
        return KittiObjects.empty()
    arr = np.asarray(rows, dtype=np.float64)
    return KittiObjects(
        type=np.asarray(names, dtype=str),
        truncated=arr[:, 0].copy(),
        occluded=arr[:, 1].astype(np.int64),
        alpha=arr[:, 2].copy(),
        bbox=arr[:, 3:7].copy(),
        dimensions=arr[:, 7:10].copy(),
        location=arr[:, 10:13].copy(),
        rotation_y=arr[:, 13].copy(),
        score=arr[:, 14].copy() if n_fields == 16 else None,
    )


def format_label_lines(objects: KittiObjects, score_decimals: int = 4) -> list[str]:
    """KITTI text lines for ``objects``: every float with 2 decimals (as the KITTI labels are),
    occluded as an integer and, when ``objects.score`` is set, the score with ``score_decimals``."""
    n = len(objects)
    if n == 0:
        return []
    values = np.concatenate(
        [
            objects.alpha[:, None],
            objects.bbox,
            objects.dimensions,
            objects.location,
            objects.rotation_y[:, None],
        ],
        axis=1,
    ).astype(np.float64)
    fmt = " ".join(["%.2f"] * values.shape[1])
    lines = []
    for i in range(n):
        line = f"{objects.type[i]} {float(objects.truncated[i]):.2f} {int(objects.occluded[i])} " + (
            fmt % tuple(values[i])
        )
        if objects.score is not None:
            line += f" {float(objects.score[i]):.{score_decimals}f}"
        lines.append(line)
    return lines


def write_label_file(path: str | Path, objects: KittiObjects, score_decimals: int = 4) -> None:
    """Write ``objects`` as a KITTI label file (a result file when ``objects.score`` is set).

    Values are printed with 2 decimals like the KITTI labels (scores with ``score_decimals``),
    so ``read_label_file(write_label_file(x))`` equals ``x`` rounded to that precision.
    The parent folder is created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = format_label_lines(objects, score_decimals)
    path.write_text("".join(line + "\n" for line in lines))


def objects_from_predictions(pred: Predictions, classes: Sequence[str]) -> KittiObjects:
    """KITTI result rows for one image's ``Predictions`` (class index -> ``classes`` name).

    Uses ``extras`` "dimensions", "location", "rotation_y", "alpha" when present; otherwise
    writes the devkit's "unknown" values (dims -1, location -1000, angles -10), which
    makes the devkit skip AOS / BEV / 3D for them.
    """
    n = len(pred)
    names = np.asarray(classes, dtype=str)[np.asarray(pred.classes, dtype=np.int64)] if n else np.zeros(0, "<U16")

    def extra(key: str, shape: tuple[int, ...], fill: float) -> np.ndarray:
        value = pred.extras.get(key)
        if value is None:
            return np.full(shape, fill, dtype=np.float64)
        return np.asarray(value, dtype=np.float64).reshape(shape)

    return KittiObjects(
        type=names,
        truncated=np.zeros(n),
        occluded=np.zeros(n, np.int64),
        alpha=extra("alpha", (n,), -10.0),
        bbox=np.asarray(pred.boxes, dtype=np.float64).reshape(n, 4),
        dimensions=extra("dimensions", (n, 3), -1.0),
        location=extra("location", (n, 3), -1000.0),
        rotation_y=extra("rotation_y", (n,), -10.0),
        score=np.asarray(pred.scores, dtype=np.float64).reshape(n),
    )
