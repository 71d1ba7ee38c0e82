"""Built-in synthetic scenes: shapes and people in the same images, COCO boxes + keypoints.

The data of the composite task ``boxes2d+pose2d``: each image is a textured background
(as ``synthetic_shapes``) with one to four stick-figure people (``synthetic_people``) and
one to six coloured shapes, drawn in a random interleaved order so that people and shapes
occlude each other (among the people, the nearer (taller) ones come in front). Both kinds
are drawn by their own generators' pieces (``place_person``, ``place_shape``) onto one
``Canvas``, so each kind's occlusion rules hold against objects of either kind: a shape
stays at least 40% visible, a person at least 60% visible with at least 10 visible joints;
a person's joint hidden by a later shape or person is labelled v=1. A placement that would
break a rule is redrawn (up to 10 times), so a few images hold fewer objects than drawn.

Layout (COCO style, one image folder, two annotation files per split)::

    ROOT/annotations/instances_<split>.json         every person and every shape
    ROOT/annotations/person_keypoints_<split>.json  the people only: same annotation ids,
                                                    same boxes, plus keypoints
    ROOT/<split>/NNNNNN.jpg, ROOT/DONE

Categories: ``person`` id 1 in both files (with joint names and skeleton in the keypoint
file, plain in the instances file, as in COCO), the shapes ``circle``, ``rectangle``,
``triangle``, ``star``, ``cross`` ids 2..6. Annotation conventions are those of the two
generators: amodal ``bbox`` clipped to the image, visible ``area`` and ``segmentation``.

Usage::

    root = generate_scenes(Path("data/scenes"))     # 2000 + 200 images
    CocoSource(root, "train", "instances")          # boxes: person + 5 shapes
    CocoSource(root, "train", "person_keypoints")   # people with 17 joints
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import synthetic_people as people
from . import synthetic_shapes as shapes
from .synthetic_canvas import Canvas
from .synthetic_common import generate_coco_files, generator_params, jittered_size, textured_background

VERSION = 1
PERSON_ID = 1
SHAPE_IDS = {name: PERSON_ID + 1 + i for i, name in enumerate(shapes.CLASSES)}  # circle 2 .. cross 6
CLASSES = ("person", *shapes.CLASSES)  # in category-id order
INSTANCE_CATEGORIES = [{"id": PERSON_ID, "name": "person", "supercategory": "person"}] + [
    {"id": cid, "name": name, "supercategory": "shape"} for name, cid in SHAPE_IDS.items()
]
KEYPOINT_CATEGORIES = [{**people.CATEGORIES[0], "id": PERSON_ID}]
MAX_PEOPLE = 4
MAX_SHAPES = 6
MAX_HEIGHT_FRAC = 0.8  # tallest person, of the image height (people alone: 0.9)
MAX_SIZE_FRAC = 0.45  # largest shape, of the short image side (shapes alone: 0.6)


def _render(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[dict[str, dict]]]:
    """One image (H, W, 3) uint8 BGR and its objects: a person maps to its ``instances`` and
    ``person_keypoints`` annotations, a shape to its ``instances`` annotation (without ids)."""
    canvas = Canvas(textured_background(rng, h, w))
    n_people = int(rng.integers(1, MAX_PEOPLE + 1))
    n_shapes = int(rng.integers(1, MAX_SHAPES + 1))
    heights = people.person_heights(rng, n_people, max(people.MIN_HEIGHT + 1, MAX_HEIGHT_FRAC * h))
    max_size = max(shapes.MIN_SIZE + 1, MAX_SIZE_FRAC * min(h, w))
    for is_person in rng.permutation([True] * n_people + [False] * n_shapes).tolist():
        if is_person:
            people.place_person(rng, canvas, heights.pop(0))
        else:
            shapes.place_shape(rng, canvas, max_size)
    objects = []
    for k, ann in canvas.annotations():
        if isinstance(canvas.records[k], people.PersonRecord):
            box = {key: ann[key] for key in ("bbox", "area", "segmentation", "iscrowd")}
            objects.append(
                {
                    "instances": {"category_id": PERSON_ID, **box},
                    "person_keypoints": {**ann, "category_id": PERSON_ID},
                }
            )
        else:
            cls = shapes.CLASSES[canvas.records[k].cls]
            objects.append({"instances": {**ann, "category_id": SHAPE_IDS[cls]}})
    return canvas.image, objects


def generate_scenes(
    root: Path,
    num_train: int = 2000,
    num_val: int = 200,
    image_size: tuple[int, int] = (256, 256),
    seed: int = 0,
    vary_size: bool = False,
) -> Path:
    """Write (or reuse) the synthetic scenes dataset (shapes and people) under ``root``; return ``root``.

    Layout: see the module docstring. A folder whose ``DONE`` marker records these
    parameters is reused as is; otherwise it is cleaned and regenerated.

    image_size: (height, width) px of every image; with ``vary_size`` each image's sides
                are independently scaled by a random 0.7..1.3.
    seed:       same seed and parameters -> byte-identical annotation files and images.
    """
    params = generator_params("scenes", VERSION, num_train, num_val, image_size, seed, vary_size)
    return generate_coco_files(
        Path(root),
        params,
        splits={"train": num_train, "val": num_val},
        render=_render,
        image_hw=lambda rng: jittered_size(rng, image_size, vary_size),
        categories={"instances": INSTANCE_CATEGORIES, "person_keypoints": KEYPOINT_CATEGORIES},
        description="centerpoint_suite synthetic scenes (shapes and people)",
    )
