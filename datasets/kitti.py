"""The raw KITTI object layout: labels, calibration, splits and a ``SampleSource``.

Layout read (no conversion step)::

    ROOT/training/image_2/<id>.png    left colour camera
    ROOT/training/label_2/<id>.txt    one object per line (15 fields, 16 with a score)
    ROOT/training/calib/<id>.txt      P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    ROOT/ImageSets/<split>.txt        frame ids, one per line (train/val/trainval: the 3DOP split)

Label line fields: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]``
-- truncated 0..1 (float), occluded 0/1/2/3 (int), alpha and rotation_y radians, the 2D box in
image pixels, dimensions in metres, location = bottom centre of the box in the rectified
camera frame (x right, y down, z forward), metres.  Unknown 3D values are written as the
devkit does (dimensions -1, location -1000, alpha/rotation_y -10).

Class mapping of :class:`KittiSource` (as the original CenterNet KITTI loader, applied by class
*name* relative to the ``classes`` tuple given):

==================  ===========================================================
label type          becomes
==================  ===========================================================
a name in classes   a target of that class (``ignore`` False)
Van, Truck          an ignore region on the ``Car`` channel (if Car is in classes)
Person_sitting      an ignore region on the ``Pedestrian`` channel (if present)
DontCare            an ignore region on all channels (``classes`` = -1)
anything else       dropped (Tram, Misc, and a target class not in ``classes``)
==================  ===========================================================

The evaluator (``centerpoint_suite.tasks.mono3d.eval``) reads the raw labels itself and applies
the devkit's own rules (Van / Person_sitting as neighbouring classes, DontCare areas).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerpoint_suite.errors import DataError, UserError
from centerpoint_suite.types import Predictions, Sample

from .images import read_image

__all__ = [
    "KittiObjects",
    "KittiSource",
    "read_label_file",
    "write_label_file",
    "read_calib_file",
    "read_p2",
    "read_split",
    "objects_from_predictions",
    "NEIGHBOUR_CLASSES",
]

log = logging.getLogger(__name__)

#: label type -> the class whose heatmap channel it is an ignore region of (original CenterNet).
NEIGHBOUR_CLASSES: dict[str, str] = {"Van": "Car", "Truck": "Car", "Person_sitting": "Pedestrian"}

_FLOAT_COLS = 14  # fields after the type name, without the score


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
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"label file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read label file {path}: {exc}") from None
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


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a KITTI object calibration file ``KEY: v1 v2 ...`` into float64 arrays.

    12 values become (3, 4) (P0..P3, Tr_velo_to_cam, Tr_imu_to_velo), 9 values (3, 3)
    (R0_rect); other counts stay 1-D.  Blank lines are skipped; a line without ``:`` or with a
    non-numeric value raises ``DataError`` naming file and line.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"calibration file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read calibration file {path}: {exc}") from None
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


def read_split(root: str | Path, split: str) -> list[str]:
    """Frame ids of a split: ``ROOT/ImageSets/<split>.txt``, or ``split`` as a path to a split file.

    Without ``ImageSets/<split>.txt``, ``split`` "all" or "trainval" falls back to every
    label file in ``ROOT/training/label_2``.  One id per line (first token); blank lines skipped.
    """
    root = Path(root)
    split_file: Path | None = None
    if (root / "ImageSets" / f"{split}.txt").is_file():
        split_file = root / "ImageSets" / f"{split}.txt"
    elif Path(split).is_file():
        split_file = Path(split)
    if split_file is not None:
        try:
            text = split_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read split file {split_file}: {exc}") from None
        ids = [line.split()[0] for line in text.splitlines() if line.strip()]
        if not ids:
            raise DataError(f"split file {split_file} lists no frame ids")
        return ids
    if split in ("all", "trainval"):
        label_dir = root / "training" / "label_2"
        if label_dir.is_dir():
            ids = sorted(p.stem for p in label_dir.glob("*.txt"))
            if ids:
                return ids
        raise DataError(f"no ImageSets/{split}.txt and no label files in {label_dir}")
    available = sorted(p.stem for p in (root / "ImageSets").glob("*.txt"))
    hint = f"available: {', '.join(available)}" if available else f"no split files in {root / 'ImageSets'}"
    raise UserError(f"unknown KITTI split {split!r} for {root} ({hint}); or give a path to a split .txt")


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


class KittiSource:
    """Random access to the frames of a KITTI object split as ``Sample`` records.

    ``KittiSource(root, split, classes)``: ``root`` holds ``training/`` and ``ImageSets/``;
    ``split`` is a name in ``ImageSets`` or a path to a split file.  Ids of the split
    without a label file are skipped with a warning (a partial copy of KITTI); an error is
    raised when none remains, or when a kept frame has no calibration file.

    Sample: image BGR uint8; boxes (N, 4) float32 pixels; classes (N,) int64 index in
    ``classes`` (-1 for DontCare); ignore (N,) bool; calib (3, 4) float32 P2; objects3d with
    dimensions / location / rotation_y / alpha / truncated / occluded (rows aligned with boxes);
    image_id = the frame id string ("000001").  See the module docstring for the mapping.
    """

    def __init__(
        self, root: str | Path, split: str = "val", classes: Sequence[str] = ("Pedestrian", "Car", "Cyclist")
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.classes = tuple(classes)
        training = self.root / "training"
        if not training.is_dir():
            raise DataError(f"not a KITTI object folder (no training/ inside): {self.root}")
        self.label_dir = training / "label_2"
        self.image_dir = training / "image_2"
        self.calib_dir = training / "calib"
        ids = read_split(self.root, split)
        present = [i for i in ids if (self.label_dir / f"{i}.txt").is_file()]
        if not present:
            raise DataError(f"none of the {len(ids)} ids of split {split!r} has a label file in {self.label_dir}")
        if len(present) < len(ids):
            log.warning(
                "KITTI split %r: %d of %d ids have no label file in %s; using the %d present",
                split,
                len(ids) - len(present),
                len(ids),
                self.label_dir,
                len(present),
            )
        missing_calib = [i for i in present if not (self.calib_dir / f"{i}.txt").is_file()]
        if missing_calib:
            raise DataError(
                f"calibration file not found: {self.calib_dir / (missing_calib[0] + '.txt')}"
                + (f" (and {len(missing_calib) - 1} more)" if len(missing_calib) > 1 else "")
            )
        no_image = [i for i in present if not (self.image_dir / f"{i}.png").is_file()]
        if no_image:
            raise DataError(
                f"image file not found: {self.image_dir / (no_image[0] + '.png')} (frame {no_image[0]} of split "
                f"{split!r} has a label file"
                + (f"; {len(no_image) - 1} more such frames)" if len(no_image) > 1 else ")")
            )
        self.ids: list[str] = present
        self._index = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.ids)

    def label_path(self, index: int) -> Path:
        return self.label_dir / f"{self.ids[index]}.txt"

    def objects(self, index: int) -> KittiObjects:
        """Raw label rows of frame ``index`` (all types, as in the file)."""
        return read_label_file(self.label_path(index))

    def gt_annos(self) -> list[KittiObjects]:
        """Raw labels of every frame, in ``ids`` order (the evaluator's ground truth)."""
        return [self.objects(i) for i in range(len(self))]

    def map_classes(self, types: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Label types (N,) -> (keep (N,) bool, classes (N,) int64, ignore (N,) bool) per the mapping."""
        n = len(types)
        keep = np.zeros(n, bool)
        cls = np.full(n, -1, np.int64)
        ignore = np.zeros(n, bool)
        for name in np.unique(types):
            rows = types == name
            if name in self._index:
                keep[rows], cls[rows] = True, self._index[name]
            elif name == "DontCare":
                keep[rows], ignore[rows] = True, True
            elif NEIGHBOUR_CLASSES.get(name) in self._index:
                keep[rows], ignore[rows] = True, True
                cls[rows] = self._index[NEIGHBOUR_CLASSES[name]]
        return keep, cls, ignore

    def image_id(self, index: int) -> str:
        """Frame id of item ``index`` (no file read)."""
        return self.ids[index]

    def __getitem__(self, index: int) -> Sample:
        return self.read(index)

    def read(self, index: int, image: np.ndarray | None = None) -> Sample:
        """Sample ``index``; ``image``: the already decoded image file (another reader of the same image)."""
        if not 0 <= index < len(self.ids):
            raise IndexError(index)
        frame = self.ids[index]
        image_path = self.image_dir / f"{frame}.png"
        image = read_image(image_path) if image is None else image
        objects = self.objects(index)
        keep, cls, ignore = self.map_classes(objects.type)
        objects = objects.select(keep)
        return Sample(
            image=image,
            image_id=frame,
            boxes=objects.bbox.astype(np.float32),
            classes=cls[keep],
            ignore=ignore[keep],
            calib=read_p2(self.calib_dir / f"{frame}.txt"),
            objects3d={
                "dimensions": objects.dimensions.astype(np.float32),
                "location": objects.location.astype(np.float32),
                "rotation_y": objects.rotation_y.astype(np.float32),
                "alpha": objects.alpha.astype(np.float32),
                "truncated": objects.truncated.astype(np.float32),
                "occluded": objects.occluded.astype(np.int64),
            },
            path=str(image_path),
        )
