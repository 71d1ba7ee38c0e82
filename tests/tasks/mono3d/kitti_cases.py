"""KITTI objects for the evaluator tests (tests only): rows of easy, unrotated cars built from
dicts with defaults, and ground truth turned into detections."""

from __future__ import annotations

import numpy as np

from centerpoint_suite.datasets.kitti import KittiObjects


def make_objects(rows: list[dict], score: bool = False) -> KittiObjects:
    """Objects from dicts with defaults: an easy, unrotated Car."""
    if not rows:
        return KittiObjects.empty(with_score=score)
    get = lambda key, default: np.array([r.get(key, default) for r in rows], dtype=float)  # noqa: E731
    return KittiObjects(
        type=np.array([r.get("type", "Car") for r in rows]),
        truncated=get("truncated", 0.0),
        occluded=get("occluded", 0).astype(np.int64),
        alpha=get("alpha", 0.0),
        bbox=np.array([r["bbox"] for r in rows], dtype=float),
        dimensions=np.array([r.get("dims", (1.5, 1.6, 4.0)) for r in rows], dtype=float),
        location=np.array([r.get("loc", (0.0, 1.5, 20.0)) for r in rows], dtype=float),
        rotation_y=get("ry", 0.0),
        score=get("score", 1.0) if score else None,
    )


def car_row(k: int, **kw) -> dict:
    """The k-th of a row of non-overlapping easy cars (2D 100 x 50 px, 3D 4 m long along x)."""
    row = {"bbox": (10.0 + 120 * k, 100.0, 110.0 + 120 * k, 150.0), "loc": (6.0 * k, 1.5, 20.0)}
    row.update(kw)
    return row


def as_detections(objs: KittiObjects, scores: np.ndarray) -> KittiObjects:
    out = objs.select(np.arange(len(objs)))
    out.score = np.asarray(scores, dtype=float)
    return out
