"""Draw boxes with class name and score."""

from __future__ import annotations

import cv2
import numpy as np

from centerpoint_suite.types import Predictions


def class_colour(index: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class index (golden-angle hue steps)."""
    hue = int((index * 137.508) % 180)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_boxes(
    image: np.ndarray, pred: Predictions, classes: tuple[str, ...], score_threshold: float = 0.3
) -> np.ndarray:
    """Copy of a BGR image with the detections over ``score_threshold`` drawn."""
    out = image.copy()
    thick = max(1, round(min(out.shape[:2]) / 300))
    for box, score, cls in zip(pred.boxes, pred.scores, pred.classes):
        if score < score_threshold:
            continue
        colour = class_colour(int(cls))
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        name = classes[int(cls)] if int(cls) < len(classes) else str(int(cls))
        label = f"{name} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        cv2.rectangle(out, (x1, max(0, y1 - th - 4)), (x1 + tw + 2, y1), colour, -1)
        cv2.putText(out, label, (x1 + 1, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out
