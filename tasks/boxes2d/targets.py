"""boxes2d targets: class heatmaps, box size and sub-cell offset at each object centre."""

from __future__ import annotations

import numpy as np

from centerpoint_suite.centers import center_targets
from centerpoint_suite.types import OutputGeometry, Sample


def build_box_targets(
    sample: Sample,
    geometry: OutputGeometry,
    num_classes: int,
    max_objects: int,
    radius_formula: str,
    min_overlap: float,
) -> dict[str, np.ndarray]:
    """heatmap (C, H, W), heatmap_ignore (C, H, W), indices/mask (M,), size/offset (M, 2); cells."""
    return center_targets(sample, geometry, num_classes, max_objects, radius_formula, min_overlap).targets
