"""Building blocks shared by the built-in synthetic dataset generators: seeds, sizes and the
COCO-style writer.

Image arrays are (H, W, 3) uint8 in BGR channel order (what ``cv2.imwrite`` expects);
coordinates are original image pixels, x right, y down, pixel centres at integers.

The generators write a COCO-style folder::

    ROOT/annotations/<kind>_train.json   ROOT/train/000000.jpg ...
    ROOT/annotations/<kind>_val.json     ROOT/val/000000.jpg ...
    ROOT/DONE                            written last: the generation parameters as json

``ROOT/DONE`` is the completeness marker; the folder's life cycle (reuse, cleaning, concurrent
generations) is in ``synthetic_cache``, the drawing helpers (backgrounds, colours, masks) in
``synthetic_drawing``; both are importable from here too.

Every image draws from its own random generator seeded by (seed, split, index), so a split
does not depend on the size of the other split and images can be generated in any order.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from centerpoint_suite.errors import UserError

from .synthetic_cache import (
    atomic_write_text,
    clean_outputs,
    generation_lock,
    is_complete,
    mark_complete,
    publish,
    staging_folder,
)
from .synthetic_drawing import TEXTURES, contrasting_colour, mask_bbox, mask_polygons, shade, textured_background

__all__ = [
    "image_rng",
    "image_name",
    "jittered_size",
    "generator_params",
    "write_image",
    "write_coco_json",
    "generate_coco_files",
    "generate_coco_folder",
    # the drawing helpers (synthetic_drawing)
    "TEXTURES",
    "textured_background",
    "contrasting_colour",
    "shade",
    "mask_bbox",
    "mask_polygons",
    # the output folder (synthetic_cache)
    "is_complete",
    "clean_outputs",
    "atomic_write_text",
    "mark_complete",
    "generation_lock",
    "staging_folder",
    "publish",
]

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
JPEG_QUALITY = 95


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of ``split``: independent of every other image.

    ``split`` is any name; train / val / test have fixed codes, others a CRC32 of the name.
    """
    code = SPLIT_CODES.get(split, zlib.crc32(split.encode("utf-8")))
    return np.random.default_rng(np.random.SeedSequence([int(seed), code, int(index)]))


def image_name(index: int) -> str:
    """File name of image ``index`` inside its split folder (``000042.jpg``)."""
    return f"{index:06d}.jpg"


def jittered_size(rng: np.random.Generator, image_size: tuple[int, int], vary: bool) -> tuple[int, int]:
    """(height, width) of one image: ``image_size`` or, with ``vary``, each side scaled by 0.7..1.3."""
    h, w = int(image_size[0]), int(image_size[1])
    if not vary:
        return h, w
    f = rng.uniform(0.7, 1.3, 2)
    return max(32, round(h * f[0])), max(32, round(w * f[1]))


# ----------------------------------------------------------------------------- output folder


def generator_params(
    generator: str, version: int, num_train: int, num_val: int, image_size: tuple[int, int], seed: int, vary_size: bool
) -> dict:
    """What determines a COCO-style generator's output (recorded in ``ROOT/DONE``)."""
    return {
        "generator": generator,
        "version": version,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "seed": int(seed),
        "vary_size": bool(vary_size),
    }


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` (BGR uint8) as JPEG (quality 95) or PNG by the suffix of ``path``."""
    flags = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), image, flags):
        raise UserError(f"{path}: cannot write image")


def write_coco_json(
    path: Path, images: list[dict], annotations: list[dict], categories: list[dict], description: str
) -> None:
    """Write a COCO annotation file (no dates or other run-dependent fields: byte-reproducible)."""
    data = {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    atomic_write_text(path, json.dumps(data, separators=(",", ":")))  # one-shot: the fast C encoder


def generate_coco_files(
    root: Path,
    params: dict,
    splits: dict[str, int],
    render: Callable[[np.random.Generator, int, int], tuple[np.ndarray, list[dict[str, dict]]]],
    image_hw: Callable[[np.random.Generator], tuple[int, int]],
    categories: dict[str, list[dict]],
    description: str,
) -> Path:
    """Drive a generator writing one or several annotation files per split: reuse a complete
    ``root``, else clean it and write every split.

    params:     everything that determines the output (recorded in ``root/DONE``).
    splits:     split name -> number of images.
    image_hw:   draws (height, width) of one image from its generator.
    render:     (rng, height, width) -> (image (H, W, 3) uint8, objects); an object maps an
                annotation kind to its annotation dict (without ``id``/``image_id``) in the file of
                that kind. An object gets one id, the same in every file it appears in. Called
                with the same rng right after ``image_hw``.
    categories: annotation kind (file prefix: ``instances``, ``person_keypoints``) -> its
                categories; one ``annotations/<kind>_<split>.json`` per kind and split.
    """
    root = Path(root)
    if is_complete(root, params):
        return root
    with generation_lock(root):
        if is_complete(root, params):  # another process generated it while we waited
            return root
        ann_files = [f"annotations/{kind}_{s}.json" for s in splits for kind in categories]
        clean_outputs(root, ann_files, list(splits))
        with staging_folder(root) as stage:
            for split, count in splits.items():
                folder = stage / split
                folder.mkdir(parents=True)
                images: list[dict] = []
                anns: dict[str, list[dict]] = {kind: [] for kind in categories}
                next_id = 1
                for i in range(int(count)):
                    rng = image_rng(params["seed"], split, i)
                    h, w = image_hw(rng)
                    img, objs = render(rng, h, w)
                    name = image_name(i)
                    write_image(folder / name, img)
                    images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
                    for obj in objs:
                        for kind, ann in obj.items():
                            anns[kind].append({"id": next_id, "image_id": i + 1, **ann})
                        next_id += 1
                for kind, cats in categories.items():
                    path = stage / "annotations" / f"{kind}_{split}.json"
                    write_coco_json(path, images, anns[kind], cats, description)
            publish(stage, root, [*splits, *ann_files], params)
    return root


def generate_coco_folder(
    root: Path,
    params: dict,
    kind: str,
    splits: dict[str, int],
    render: Callable[[np.random.Generator, int, int], tuple[np.ndarray, list[dict]]],
    image_hw: Callable[[np.random.Generator], tuple[int, int]],
    categories: list[dict],
    description: str,
) -> Path:
    """:func:`generate_coco_files` for a generator writing one annotation file per split.

    kind:   annotation file prefix (``instances`` or ``person_keypoints``).
    render: (rng, height, width) -> (image (H, W, 3) uint8, annotation dicts without
            ``id``/``image_id``).
    """

    def render_one(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[dict[str, dict]]]:
        img, objs = render(rng, h, w)
        return img, [{kind: obj} for obj in objs]

    return generate_coco_files(root, params, splits, render_one, image_hw, {kind: categories}, description)
