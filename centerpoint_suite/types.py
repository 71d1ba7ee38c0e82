"""The data records that flow between readers, tasks, the trainer and the writers.

Coordinate frames used throughout:
- *original*: pixels of the image file as read (x right, y down), float, pixel centres at integers;
- *input*: pixels of the network input after the affine warp (input_hw);
- *output*: cells of the stride-4 output maps (output_hw = input_hw // 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sample:
    """One image and its annotations, in original image coordinates.

    image:     (H, W, 3) uint8, BGR channel order (as cv2.imread returns).
    boxes:     (N, 4) float32 x1, y1, x2, y2 in original pixels.
    classes:   (N,) int64 contiguous class index of the task (0..C-1); for an ignored
               object the class index whose heatmap channel is ignored, or -1 for all channels.
    ignore:    (N,) bool: the object only marks a region where the heatmap loss is ignored
               (COCO iscrowd, KITTI DontCare / Van / Truck ...); it is never a target nor a detection.
    keypoints: (N, J, 3) float32 x, y (original pixels), v (0 unlabelled, 1 occluded, 2 visible), or None.
    calib:     (3, 4) float32 camera projection matrix (KITTI P2), or None.
    objects3d: per-object 3D annotations (mono3d): "dimensions" (N, 3) h, w, l metres;
               "location" (N, 3) x, y, z metres in the camera frame (bottom centre of the box);
               "rotation_y" (N,) radians; "alpha" (N,) radians; "truncated" (N,); "occluded" (N,).
    parts:     composite tasks: sub-task name -> the same image's Sample as that task's own reader
               gives it (the objects that task understands, in its class indices); the top-level
               boxes / classes are then empty.
    """

    image: np.ndarray
    image_id: int | str
    boxes: np.ndarray
    classes: np.ndarray
    ignore: np.ndarray
    keypoints: np.ndarray | None = None
    calib: np.ndarray | None = None
    objects3d: dict[str, np.ndarray] | None = None
    path: str = ""
    parts: dict[str, Sample] | None = None

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class OutputGeometry:
    """How an image was mapped to the network output, given to ``Task.build_targets``.

    trans_output: (2, 3) float32 affine matrix, original pixels -> output cells
                  (includes the horizontal mirror when ``flipped``).
    output_hw:    (height, width) of the output maps in cells.
    flipped:      the image was mirrored horizontally (tasks swap left/right joints).
    """

    trans_output: np.ndarray
    output_hw: tuple[int, int]
    flipped: bool = False


@dataclass
class BatchMeta:
    """What decode needs to map a batch back to original images.

    inverse:   (B, 2, 3) float32 affine matrices, output cells -> original pixels.
    image_ids: B image ids.
    image_hw:  B (height, width) of the original images.
    calib:     (B, 3, 4) float32 per-image projection matrices, or None.
    """

    inverse: np.ndarray
    image_ids: list
    image_hw: list[tuple[int, int]]
    calib: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_ids)


@dataclass
class Predictions:
    """Detections of one image in original image coordinates.

    boxes:   (K, 4) float32 x1, y1, x2, y2 original pixels.
    scores:  (K,) float32 in 0..1, sorted descending.
    classes: (K,) int64 contiguous class index.
    extras:  task-specific per-detection arrays with leading K: "keypoints" (K, J, 3)
             x, y, score; "dimensions" (K, 3); "location" (K, 3); "rotation_y" (K,);
             "alpha" (K,); "depth" (K,); "score2d" (K,): when ``scores`` rank by more than the
             heatmap (mono3d's depth confidence), the heatmap score, which display and
             result-file thresholds read.
    """

    image_id: int | str
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> Predictions:
        """Subset by boolean mask or index array (every per-detection array alike)."""
        return Predictions(
            self.image_id,
            self.boxes[keep],
            self.scores[keep],
            self.classes[keep],
            {k: v[keep] for k, v in self.extras.items()},
        )
