"""Task ``mono3d``: CenterNet monocular 3D detection (KITTI object, the original's ``ddd``)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from centerpoint_suite.centers import detections_to_numpy, flip_average_logits, logit
from centerpoint_suite.errors import DataError, UserError
from centerpoint_suite.heatmap import scatter_at
from centerpoint_suite.registry import TASKS
from centerpoint_suite.task import Task
from centerpoint_suite.types import BatchMeta, OutputGeometry, Predictions, Sample

from .decode import (
    DEPTH_SCALE_FIELD,
    MONO3D_FIELDS,
    decode_mono3d_tensors,
    merge_mirrored_rotation,
    mono3d_predictions,
)
from .loss import decode_depth, encode_depth, mono3d_losses
from .targets import build_mono3d_targets
from .visualize import draw_mono3d, save_png

log = logging.getLogger(__name__)

#: P2 of the KITTI object frames recorded on 2011-09-26 (e.g. training frame 000001), the
#: most common KITTI calibration; image 1242 x 375. fx = fy = 721.5377, (cx, cy) =
#: (609.5593, 172.854), 4th column = the offset of camera 2 from the reference camera.
KITTI_DEFAULT_P2 = np.array(
    [
        [721.5377, 0.0, 609.5593, 44.85728],
        [0.0, 721.5377, 172.854, 0.2163791],
        [0.0, 0.0, 1.0, 0.002745884],
    ],
    dtype=np.float32,
)
KITTI_DEFAULT_HW = (375, 1242)


@dataclass(frozen=True)
class Mono3DWeights:
    heatmap: float = 1.0
    depth: float = 1.0
    dimensions: float = 1.0
    rotation: float = 1.0
    size: float = 0.1
    offset: float = 1.0


@TASKS.register("mono3d")
@dataclass(frozen=True)
class Mono3D(Task):
    """Monocular 3D boxes: class heatmap + depth, dimensions, two-bin rotation, 2D size, offset.

    classes:        class names, heatmap channel order (the original's, for its checkpoints).
    max_objects:    object slots per image (the original: 50).
    center_mode:    "box2d": heatmap keypoint at the 2D box centre (the original);
                    "projected3d": at the projected 3D box centre (later monocular methods;
                    exact unprojection; the 2D box is then regressed as 4 side distances).
    radius_formula: "cornernet" (the original's) or "exact" gaussian radius.
    depth_focal:    None: the network regresses raw camera depth z in metres (the original;
                    exact only at the zoom and focal length of training, so scale augmentation
                    teaches wrong depths); a focal length f in output cells: it regresses
                    z * f / (fx * zoom), which decode multiplies back, so depth stays
                    consistent under scale augmentation and for cameras of other focal lengths.
    depth_uncertainty: a head for the log standard deviation of the depth, trained with the
                    Laplace negative log-likelihood; decode multiplies each score by the depth
                    confidence exp(-sigma in metres) (see ``loss`` and ``decode``). Off by default
                    so the original's checkpoints load; the built-in experiment turns it on.
    min_score:      detections whose heatmap score is below this are not written to KITTI
                    result files.
    """

    name: ClassVar[str] = "mono3d"
    real_config: ClassVar[str] = "mono3d_kitti"
    dataset_format: ClassVar[str] = "kitti"
    classes: tuple[str, ...] = ("Pedestrian", "Car", "Cyclist")
    max_objects: int = 50
    center_mode: str = "box2d"
    radius_formula: str = "cornernet"
    min_overlap: float = 0.7
    depth_focal: float | None = None
    depth_uncertainty: bool = False
    min_score: float = 0.05
    weights: Mono3DWeights = Mono3DWeights()

    def __post_init__(self) -> None:
        if self.center_mode not in ("box2d", "projected3d"):
            raise UserError(f"mono3d center_mode {self.center_mode!r}: use 'box2d' or 'projected3d'")

    # -- model -------------------------------------------------------------------------------
    def heads(self) -> dict[str, int]:
        heads = {
            "heatmap": max(1, len(self.classes)),
            "depth": 1,
            "rotation": 8,
            "dimensions": 3,
            "size": 2 if self.center_mode == "box2d" else 4,
            "offset": 2,
        }
        if self.depth_uncertainty:
            heads["depth_uncertainty"] = 1
        return heads

    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """Mirroring is safe: targets map alpha -> pi - alpha; every other target is either
        mirror-invariant (depth, dimensions) or follows the image through the affine."""
        return ()

    # -- training ----------------------------------------------------------------------------
    def build_targets(self, sample: Sample, geometry: OutputGeometry) -> dict[str, np.ndarray]:
        return build_mono3d_targets(
            sample,
            geometry,
            len(self.classes),
            self.max_objects,
            self.center_mode,
            self.radius_formula,
            self.min_overlap,
            self.depth_focal,
        )

    def loss(
        self, preds: dict[str, Tensor], targets: dict[str, Tensor], params: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        parts = mono3d_losses(preds, targets)
        w = self.weights
        total = sum(getattr(w, k) * v for k, v in parts.items())
        return {"loss": total, **parts}

    # -- inference ---------------------------------------------------------------------------
    def decode(self, preds: dict[str, Tensor], meta: BatchMeta, k: int = 100) -> list[Predictions]:
        with torch.no_grad():
            dets = self.decode_tensors(preds, k)
        return self.to_predictions(detections_to_numpy(dets), meta)

    def decode_tensors(self, preds: dict[str, Tensor], k: int = 100, scale: float = 1.0) -> dict[str, Tensor]:
        return decode_mono3d_tensors(preds, k, self.center_mode, scale)

    def detection_fields(self) -> dict[str, str]:
        return {**MONO3D_FIELDS, **(DEPTH_SCALE_FIELD if self.depth_uncertainty else {})}

    def to_predictions(self, dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
        return mono3d_predictions(dets, meta, self.depth_focal, scale)

    def merge_flip(self, preds: dict[str, Tensor], flipped: dict[str, Tensor]) -> dict[str, Tensor]:
        """Every map merged with the mirrored pass (``flipped``, as the network gave it): heatmap
        in probability, depth weighted by its predicted inverse variance when there is one,
        dimensions, 2D size (left and right swapped), sub-cell offset (a mirror reads x as 1 - x)
        and rotation (alpha as pi - alpha; ``merge_mirrored_rotation``)."""
        size_f = flipped["size"].flip(-1)
        if size_f.shape[1] == 4:  # l, t, r, b: a mirror swaps left and right
            size_f = size_f[:, [2, 1, 0, 3]]
        off, off_f = preds["offset"], flipped["offset"].flip(-1)
        depth, depth_f = decode_depth(preds["depth"]), decode_depth(flipped["depth"].flip(-1))
        extra = {}
        if "depth_uncertainty" in preds:
            # inverse-variance weighted mean of the two depths; its variance kept at the mean of the
            # two (the passes see the same pixels, so their errors are far from independent)
            var = torch.exp(2 * preds["depth_uncertainty"].float())
            var_f = torch.exp(2 * flipped["depth_uncertainty"].float().flip(-1))
            depth = (depth * var_f + depth_f * var) / (var + var_f)
            extra["depth_uncertainty"] = 0.5 * torch.log((var + var_f) / 2)
        else:
            depth = (depth + depth_f) / 2
        return {
            "heatmap": flip_average_logits(preds["heatmap"], flipped["heatmap"]),
            "depth": encode_depth(depth),
            "rotation": merge_mirrored_rotation(preds["rotation"], flipped["rotation"].flip(-1)),
            "dimensions": (preds["dimensions"] + flipped["dimensions"].flip(-1)) / 2,
            "size": (preds["size"] + size_f) / 2,
            "offset": torch.stack([(off[:, 0] + 1 - off_f[:, 0]) / 2, (off[:, 1] + off_f[:, 1]) / 2], 1),
            **extra,
        }

    def merges_scales(self) -> bool:
        """No multi-scale testing: a zoom changes the apparent size the depth head reads, and 3D boxes
        have no merge rule here."""
        return False

    def oracle_maps(self, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        hw = tuple(targets["heatmap"].shape[-2:])
        inds, mask = targets["indices"], targets["mask"]
        bins = targets["rotation_bin"].float() * 2 - 1  # in-bin logit +1, out -1
        res = targets["rotation_res"].float()
        rot = torch.stack(
            [-bins[..., 0], bins[..., 0], torch.sin(res[..., 0]), torch.cos(res[..., 0]),
             -bins[..., 1], bins[..., 1], torch.sin(res[..., 1]), torch.cos(res[..., 1])],
            dim=-1,
        )  # fmt: skip
        extra = {}
        if self.depth_uncertainty:  # sigma 0.0025 (regressed units): confidence about 1
            extra["depth_uncertainty"] = torch.full_like(targets["heatmap"][:, :1], -6.0)
        return {
            "heatmap": logit(targets["heatmap"]),
            "depth": scatter_at(encode_depth(targets["depth"].float()), inds, mask, hw),
            "rotation": scatter_at(rot, inds, mask, hw),
            "dimensions": scatter_at(targets["dimensions"].float(), inds, mask, hw),
            "size": scatter_at(targets["size"].float(), inds, mask, hw),
            "offset": scatter_at(targets["offset"].float(), inds, mask, hw),
            **extra,
        }

    # -- data ----------------------------------------------------------------------------------
    def open_dataset(self, root: Path, split: str | None):
        from centerpoint_suite.datasets.kitti import KittiSource

        return KittiSource(root, split or "val", self.classes)

    def default_data(self, cache_dir: Path) -> Path:
        from centerpoint_suite.datasets.synthetic_kitti import generate_kitti

        return generate_kitti(Path(cache_dir) / "synthetic_kitti")

    def calibration(self, image_hw: tuple[int, int], path: Path | None = None) -> np.ndarray:
        """P2 from ``path`` (``read_calib``) or, without one, ``default_calib``."""
        return self.read_calib(path) if path is not None else self.default_calib(image_hw)

    def default_calib(self, image_hw: tuple[int, int]) -> np.ndarray:
        """(3, 4) float32 P2 for images without a calibration: ``KITTI_DEFAULT_P2``, its principal
        point moved by half the size difference for images that are not 1242 x 375."""
        p = KITTI_DEFAULT_P2.copy()
        p[0, 2] += (image_hw[1] - KITTI_DEFAULT_HW[1]) / 2
        p[1, 2] += (image_hw[0] - KITTI_DEFAULT_HW[0]) / 2
        return p

    def read_calib(self, path: Path) -> np.ndarray:
        """(3, 4) float32 P from a KITTI calib file (its P2 line) or a text file holding the 12
        numbers of a 3 x 4 matrix (or the 9 of an intrinsic 3 x 3 K, giving ``[K | 0]``)."""
        from centerpoint_suite.datasets.kitti import read_calib_file, read_p2

        path = Path(path)
        if not path.is_file():
            raise UserError(f"--calib {path}: no such file")
        text = path.read_text(errors="replace")
        if ":" in text:
            calib = read_calib_file(path)
            if "P2" in calib:
                return read_p2(path)
            values = next((v for v in calib.values() if v.size in (12, 9)), None)
        else:
            try:
                values = np.array([float(v) for v in text.split()], dtype=np.float64)
            except ValueError:
                raise DataError(f"{path}: expected 12 numbers (a 3x4 P) or 9 (a 3x3 K)") from None
        if values is None or values.size not in (12, 9):
            raise DataError(f"{path}: expected a P2 line, 12 numbers (a 3x4 P) or 9 (a 3x3 K)")
        values = values.reshape(-1)
        if values.size == 9:
            return np.concatenate([values.reshape(3, 3), np.zeros((3, 1))], axis=1).astype(np.float32)
        return values.reshape(3, 4).astype(np.float32)

    # -- results -------------------------------------------------------------------------------
    def _kitti_objects(self, pred: Predictions):
        from centerpoint_suite.datasets.kitti import objects_from_predictions

        # the threshold reads the heatmap score: a depth-confidence-ranked score ranks, it does not detect
        score2d = pred.extras.get("score2d", pred.scores)
        return objects_from_predictions(pred.select(score2d >= self.min_score), self.classes)

    def write_results(self, source, predictions: list[Predictions], path: Path) -> None:
        """One KITTI result file ``<id>.txt`` per frame in folder ``path`` (label format + score);
        frames of ``source`` without predictions get an empty file."""
        from centerpoint_suite.datasets.kitti import write_label_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        seen = set()
        for pred in predictions:
            write_label_file(path / f"{pred.image_id}.txt", self._kitti_objects(pred))
            seen.add(str(pred.image_id))
        for frame in getattr(source, "ids", []):
            if frame not in seen:
                (path / f"{frame}.txt").write_text("")

    def evaluate(self, source, predictions: list[Predictions], out_dir: Path | None = None) -> dict[str, float]:
        """KITTI AP (``<Class>/<bbox|aos|bev|3d>/<difficulty>/<R11|R40>@<iou>``, percent) of the
        result files written for ``source``'s frames (to ``out_dir/kitti_results`` or a temporary
        folder), scored against its label files; with ``out_dir`` also ``out_dir/vis/*.png``
        (predictions and ground truth) for the first frames."""
        from .eval import CLASS_IOU, kitti_eval_dirs

        classes = [c for c in self.classes if c in CLASS_IOU]
        if not classes:
            raise UserError(f"KITTI evaluation covers {', '.join(CLASS_IOU)}; task classes are {self.classes}")
        with tempfile.TemporaryDirectory() as tmp:
            result_dir = Path(out_dir) / "kitti_results" if out_dir is not None else Path(tmp)
            self.write_results(source, predictions, result_dir)
            metrics = kitti_eval_dirs(source.label_dir, result_dir, ids=list(source.ids), classes=classes)
        if out_dir is not None:
            self.save_visualisations(source, predictions, Path(out_dir) / "vis")
        return metrics

    def save_visualisations(self, source, predictions: list[Predictions], folder: Path, count: int = 8) -> None:
        """PNG per frame (first ``count`` frames): projected boxes + BEV, ground truth in white."""
        index = {str(f): i for i, f in enumerate(getattr(source, "ids", []))}
        for pred in predictions[:count]:
            i = index.get(str(pred.image_id))
            if i is None:
                continue
            sample = source[i]
            gt = None
            if sample.objects3d is not None:
                keep = ~sample.ignore.astype(bool)
                gt = {k: np.asarray(sample.objects3d[k])[keep] for k in ("dimensions", "location", "rotation_y")}
            picture = draw_mono3d(sample.image, pred, self.classes, 0.3, gt, sample.calib)
            save_png(folder / f"{pred.image_id}.png", picture)

    def draw(self, image: np.ndarray, predictions: Predictions, score_threshold: float = 0.3) -> np.ndarray:
        return draw_mono3d(image, predictions, self.classes, score_threshold)

    def primary_metric(self) -> str:
        return "Car/3d/moderate/R40@0.5"
