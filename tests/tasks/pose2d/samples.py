"""Random people and output geometries for the pose2d tests."""

from __future__ import annotations

import numpy as np

from centerpoint_suite.geometry import center_scale_affine
from centerpoint_suite.types import OutputGeometry, Sample

J = 17


def random_sample(rng: np.random.Generator, n: int, hw=(120, 160)) -> Sample:
    h, w = hw
    xy = rng.uniform([-10, -10], [0.7 * w, 0.7 * h], (n, 2))
    wh = rng.uniform(4, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    kps = np.zeros((n, J, 3), np.float32)
    kps[..., 0] = rng.uniform(boxes[:, None, 0] - 5, boxes[:, None, 2] + 5, (n, J))
    kps[..., 1] = rng.uniform(boxes[:, None, 1] - 5, boxes[:, None, 3] + 5, (n, J))
    kps[..., 2] = rng.choice([0, 1, 2], (n, J), p=[0.3, 0.2, 0.5])
    if n:
        kps[0, :, 2] = 0  # a person with no labelled joint
    ignore = rng.random(n) < 0.1
    image = np.zeros((h, w, 3), np.uint8)
    return Sample(image, 1, boxes, np.zeros(n, np.int64), ignore, keypoints=kps)


def random_geometry(rng: np.random.Generator, hw=(120, 160), out_hw=(32, 48), flip: bool = False) -> OutputGeometry:
    h, w = hw
    c = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
    m = center_scale_affine(c, rng.uniform(0.7, 1.4) * w, (out_hw[1], out_hw[0]), flip_width=w if flip else None)
    return OutputGeometry(m.astype(np.float32), out_hw, flip)
