"""Built-in monocular 3D data: rendered street scenes written in the raw KITTI object layout.

``generate_kitti(root)`` writes, once (reused while ``ROOT/DONE`` records the same parameters)::

    ROOT/training/image_2/<id>.png   1242 x 375 BGR renders
    ROOT/training/label_2/<id>.txt   KITTI labels (type truncated occluded alpha bbox h w l x y z ry)
    ROOT/training/calib/<id>.txt     a real KITTI calibration (P0..P3, R0_rect, Tr_*): P2 of drive
                                     2011_09_26 (fx 721.5377), the same for every frame
    ROOT/ImageSets/{train,val,trainval}.txt
    ROOT/DONE                        the generation parameters, written last

A scene is a camera 1.65 m above a flat ground plane (y = 1.65 in the camera frame) looking
along a road: textured asphalt with lane markings, kerbs, pavements and grass, a sky with
distant buildings. On it stand cuboid cars (a few labelled Van: ignore regions for Car),
pedestrians and cyclists, drawn in true perspective with the projection P2, faces shaded by a
sun direction and detailed so the heading is visible (every front face pale, every back face
dark; cars: windscreen and headlights at the front, red lights at the back, side windows and
wheels; people: a face at the front; cyclists: wheels on the sides). Objects are painted far
to near; the label fields follow KITTI:

- bbox: the projected 3D box clipped to the image (what KITTI's boxes match);
- truncated: 1 - area of the clipped box / area of the unclipped projected box;
- occluded: visible fraction of the object's silhouette > 0.9 -> 0, > 0.5 -> 1, else 2
  (objects with <= 10 % visible, or truncated beyond 0.8, get no label);
- alpha = rotation_y - atan2(x, z);
- DontCare: objects whose box is lower than 20 px (the far traffic placed 50 - 80 m away) are
  labelled DontCare, as KITTI does for objects too small to annotate; the labelled objects
  stand 4 - 50 m away.

Every frame draws from its own random generator seeded by (seed, split, index), so frames do
not depend on each other or on the number of frames of the other split.

This module writes and reuses the folder; the scene (camera, road, objects) is built in
``synthetic_kitti_scene``, painted and labelled in ``synthetic_kitti_render``.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
from pathlib import Path

import cv2

from centerpoint_suite.datasets.kitti import write_label_file
from centerpoint_suite.datasets.synthetic_common import (
    atomic_write_text,
    generation_lock,
    image_rng,
    is_complete,
    publish,
    staging_folder,
)
from centerpoint_suite.errors import UserError

from .synthetic_kitti_render import render_frame
from .synthetic_kitti_scene import _CALIB_LINES, CAMERA_HEIGHT, IMAGE_HW, P2

__all__ = ["generate_kitti", "render_frame", "CAMERA_HEIGHT", "IMAGE_HW", "P2", "VERSION"]

VERSION = 2


# ----------------------------------------------------------------------------- folder


_CALIB_TEXT = "".join(f"{k}: " + " ".join(f"{v:.12e}" for v in vals) + "\n" for k, vals in _CALIB_LINES.items())


_OWN_FILE = re.compile(r"^\d{6}\.(png|txt)$")


def _clean(root: Path) -> None:
    """Remove a previous (possibly partial) generation; refuse folders holding other files."""
    (root / "DONE").unlink(missing_ok=True)
    for name in ("train", "val", "trainval"):
        (root / "ImageSets" / f"{name}.txt").unlink(missing_ok=True)
    for sub in ("training/image_2", "training/label_2", "training/calib"):
        folder = root / sub
        if not folder.exists():
            continue
        foreign = [p.name for p in folder.iterdir() if not _OWN_FILE.match(p.name)]
        if foreign:
            raise UserError(
                f"{folder}: holds files the generator did not write (e.g. {foreign[0]}); choose an empty folder"
            )
        shutil.rmtree(folder)


def _write_frame(job: tuple[Path, int, str, int, str]) -> None:
    root, seed, split, index, name = job
    image, labels = render_frame(image_rng(seed, split, index))
    path = root / "training" / "image_2" / f"{name}.png"
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise UserError(f"{path}: cannot write image")
    write_label_file(root / "training" / "label_2" / f"{name}.txt", labels)
    (root / "training" / "calib" / f"{name}.txt").write_text(_CALIB_TEXT)


def generate_kitti(root: Path, num_train: int = 1600, num_val: int = 200, seed: int = 0, workers: int = 2) -> Path:
    """Write (once) the synthetic KITTI-format dataset to ``root`` and return ``root``.

    Frames 000000 .. num_train - 1 form ImageSets/train.txt, the next num_val val.txt.
    Reused as is when ``root/DONE`` records the same parameters. ``workers`` processes render
    in parallel (the frames do not depend on it); they are started with ``spawn`` (forking a
    process that imported torch can deadlock), so a script calling this with more than 50
    frames and ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    Safe to call from several processes at once (see ``synthetic_common``).
    """
    root = Path(root)
    params = {
        "generator": "synthetic_kitti",
        "version": VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "seed": seed,
    }
    if is_complete(root, params):
        return root
    with generation_lock(root):  # see synthetic_common: lock, unique staging folder, renames, DONE last
        if is_complete(root, params):
            return root
        _clean(root)
        with staging_folder(root) as stage:
            _generate_into(stage, num_train, num_val, seed, workers)
            entries = [f"training/{k}" for k in ("image_2", "label_2", "calib")]
            entries += [f"ImageSets/{s}.txt" for s in ("train", "val", "trainval")]
            publish(stage, root, entries, params)
    return root


def _generate_into(stage: Path, num_train: int, num_val: int, seed: int, workers: int) -> None:
    for k in ("image_2", "label_2", "calib"):
        (stage / "training" / k).mkdir(parents=True, exist_ok=True)
    jobs = [(seed, split, i, f"{frame:06d}") for frame, (split, i) in enumerate(
        [("train", i) for i in range(num_train)] + [("val", i) for i in range(num_val)]
    )]  # fmt: skip
    workers = max(1, min(int(workers), len(jobs) // 50 + 1))
    if workers > 1:
        # spawn, not fork: forking a process that has imported torch (its thread pools) can deadlock
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_frame, [(stage, *j) for j in jobs], chunksize=16):
                pass
    else:
        for j in jobs:
            _write_frame((stage, *j))
    splits = {"train": [j[3] for j in jobs if j[1] == "train"], "val": [j[3] for j in jobs if j[1] == "val"]}
    for split, names in splits.items():
        atomic_write_text(stage / "ImageSets" / f"{split}.txt", "".join(n + "\n" for n in names))
    trainval = "".join(n + "\n" for n in splits["train"] + splits["val"])
    atomic_write_text(stage / "ImageSets" / "trainval.txt", trainval)


def main() -> None:  # pragma: no cover - manual use: python -m centerpoint_suite.datasets.synthetic_kitti DIR
    import sys

    out = generate_kitti(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("synthetic_kitti"))
    print(json.dumps({"root": str(out)}))


if __name__ == "__main__":  # pragma: no cover
    main()
