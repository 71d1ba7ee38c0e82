"""A synthetic image composed object by object, with the bookkeeping that keeps its annotations honest.

Objects of any kind (shapes, people) are drawn in turn, later ones in front. The canvas
records which object owns each pixel and how much of each object is still visible, so
that before an object is drawn a generator can ask whether it would hide too much of an
earlier one (of any kind), and after the last one each object can describe what is
visible of it. The kinds' own pieces (``place_shape`` in ``synthetic_shapes``,
``place_person`` in ``synthetic_people``) draw onto a canvas; the generators of one kind
and the mixed scenes generator share them.

Coordinates: image pixels, x right, y down, pixel centres at integers. A new object's
pixels are given as an in-image window: a (h, w) bool ``mask`` whose top-left pixel is
image pixel (x0, y0).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Placed(Protocol):
    """What a kind records about one drawn object."""

    def survives(self, canvas: Canvas, k: int, mask: np.ndarray, x0: int, y0: int) -> bool:
        """Whether object ``k`` keeps its kind's visibility rule (beyond the pixel fraction) when
        ``mask`` at (x0, y0) is drawn in front of it."""
        ...

    def annotation(self, canvas: Canvas, k: int) -> dict | None:
        """COCO annotation fields (without ``id``/``image_id``) of object ``k`` once every object
        is drawn; None when it is too hidden to be annotated."""
        ...


class Canvas:
    """An image being composed.

    image:   (H, W, 3) uint8 BGR, drawn on in place.
    label:   (H, W) uint8, 1 + index of the object owning each pixel, 0 for the background.
    records: per object, its kind's record (a ``Placed``), in drawing order.
    full:    per object, its whole pixel count (as its kind defines "whole").
    visible: per object, its pixels still uncovered.
    colours: per object, its main colour (3,) float32, avoided by objects drawn over it.
    min_visible: per object, the fraction of ``full`` that must stay visible.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.label = np.zeros(image.shape[:2], np.uint8)
        self.records: list[Placed] = []
        self.full: list[int] = []
        self.visible: list[int] = []
        self.colours: list[np.ndarray] = []
        self.min_visible: list[float] = []

    @property
    def height(self) -> int:
        return int(self.label.shape[0])

    @property
    def width(self) -> int:
        return int(self.label.shape[1])

    def covered(self, mask: np.ndarray, x0: int = 0, y0: int = 0) -> np.ndarray:
        """(K,) int64: visible pixels of each drawn object that ``mask`` at (x0, y0) would cover."""
        h, w = mask.shape
        window = self.label[y0 : y0 + h, x0 : x0 + w]
        return np.bincount(window[mask], minlength=len(self.records) + 1)[1:]

    def keeps_visible(self, covered: np.ndarray, mask: np.ndarray, x0: int = 0, y0: int = 0) -> bool:
        """True when every object ``mask`` would cover keeps its visible fraction and its kind's rule."""
        left = np.asarray(self.visible) - covered
        if np.any((covered > 0) & (left < np.asarray(self.min_visible) * np.asarray(self.full))):
            return False
        return all(self.records[k].survives(self, int(k), mask, x0, y0) for k in np.flatnonzero(covered))

    def add(
        self,
        record: Placed,
        mask: np.ndarray,
        x0: int,
        y0: int,
        full: int,
        colour: np.ndarray,
        min_visible: float,
        covered: np.ndarray,
    ) -> None:
        """Book a new object (already drawn on ``image``) whose in-image pixels are ``mask`` at (x0, y0);
        ``covered`` is what :meth:`covered` returned for it."""
        h, w = mask.shape
        left = np.asarray(self.visible) - covered
        self.label[y0 : y0 + h, x0 : x0 + w][mask] = len(self.records) + 1
        self.visible = [int(v) for v in left] + [int(mask.sum())]
        self.records.append(record)
        self.full.append(int(full))
        self.colours.append(colour)
        self.min_visible.append(float(min_visible))

    def annotations(self) -> list[tuple[int, dict]]:
        """(object index, annotation fields) of every object visible enough to be annotated."""
        out = []
        for k, record in enumerate(self.records):
            ann = record.annotation(self, k)
            if ann is not None:
                out.append((k, ann))
        return out


def mask_at(mask: np.ndarray, x0: int, y0: int, px: np.ndarray) -> np.ndarray:
    """(N,) bool: whether the integer image pixels ``px`` (N, 2) [x, y] are set in ``mask`` at (x0, y0)."""
    u, v = px[:, 0] - x0, px[:, 1] - y0
    ok = (u >= 0) & (u < mask.shape[1]) & (v >= 0) & (v < mask.shape[0])
    out = np.zeros(len(px), bool)
    out[ok] = mask[v[ok], u[ok]]
    return out
