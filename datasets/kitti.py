"""The raw KITTI object layout: labels, calibration, splits and a ``SampleSource``.

Layout read (no conversion step)::

    ROOT/training/image_2/<id>.png    left colour camera
    ROOT/training/label_2/<id>.txt    one object per line (15 fields, 16 with a score)
    ROOT/training/calib/<id>.txt      P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    ROOT/ImageSets/<split>.txt        frame ids, one per line (train/val/trainval: the 3DOP split)

Label lines are read and written by ``kitti_labels`` (the fields and their units are listed
there), calibration files by ``kitti_calib``.

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
from pathlib import Path

import numpy as np

from centerpoint_suite.errors import DataError, UserError
from centerpoint_suite.types import Sample

from .images import read_image
from .kitti_calib import read_calib_file, read_p2
from .kitti_labels import (
    KittiObjects,
    format_label_lines,
    objects_from_predictions,
    read_label_file,
    read_text_file,
    write_label_file,
)

__all__ = [
    "KittiObjects",
    "KittiSource",
    "read_label_file",
    "write_label_file",
    "format_label_lines",
    "read_calib_file",
    "read_p2",
    "read_split",
    "objects_from_predictions",
    "NEIGHBOUR_CLASSES",
]

log = logging.getLogger(__name__)

#: label type -> the class whose heatmap channel it is an ignore region of (original CenterNet).
NEIGHBOUR_CLASSES: dict[str, str] = {"Van": "Car", "Truck": "Car", "Person_sitting": "Pedestrian"}


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
        text = read_text_file(split_file, "split file")
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
