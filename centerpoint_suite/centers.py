"""Object-centre targets and decoding shared by every task (heatmap + size + offset).

Tasks build on these: ``center_targets`` places objects and returns which ones it kept (so a
task aligns its own per-object targets with the same slots), ``center_peaks`` returns the
top-K peaks with refined centres and boxes (pure torch, exportable) that a task extends with its
own heads; ``boxes_to_original`` / ``points_to_original`` apply the inverse affine (numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .geometry import affine_boxes, apply_affine, batch_apply_affine
from .heatmap import RadiusFormula, fill_boxes, gather_at, integer_radius, splat_gaussians, topk_peaks
from .types import BatchMeta, OutputGeometry, Sample


@dataclass
class CenterTargets:
    """targets: heatmap (C, H, W) f32, heatmap_ignore (C, H, W) u8, indices (M,) i64, mask (M,) u8,
    size (M, 2) f32 box w, h in cells, offset (M, 2) f32 sub-cell centre offset.
    kept: (n,) indices into the sample's objects placed in slots 0..n-1.
    centers: (n, 2) f32 float centre of each kept object in output cells."""

    targets: dict[str, np.ndarray]
    kept: np.ndarray
    centers: np.ndarray
    boxes: np.ndarray  # (n, 4) kept boxes in output cells (clipped)


def center_targets(
    sample: Sample,
    geometry: OutputGeometry,
    num_classes: int,
    max_objects: int,
    radius_formula: RadiusFormula = "cornernet",
    min_overlap: float = 0.7,
    centers: np.ndarray | None = None,
) -> CenterTargets:
    """Heatmap, size and offset targets for the objects of a sample.

    centers: optional (N, 2) per-object keypoint in original pixels to use instead of the box
             centre (e.g. the projected 3D centre); objects whose keypoint leaves the map are dropped.
    Boxes are mapped to output cells and clipped; objects with an empty clipped box, or
    beyond ``max_objects``, get no slot. Ignored objects mark ``heatmap_ignore`` on their box.
    """
    out_h, out_w = geometry.output_hw
    heatmap = np.zeros((num_classes, out_h, out_w), np.float32)
    ignore_map = np.zeros((num_classes, out_h, out_w), np.uint8)
    n = len(sample)
    boxes = affine_boxes(geometry.trans_output, sample.boxes) if n else np.zeros((0, 4), np.float32)
    # clip to the map's outer edge (the original clips to out_w - 1, which shrinks every box
    # touching the right / bottom border by up to one cell: 14 of 619 COCO-mini boxes)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, out_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, out_h)
    wh = boxes[:, 2:] - boxes[:, :2]
    ign = sample.ignore.astype(bool)
    if ign.any():
        ib = boxes[ign]
        fill_boxes(ignore_map, sample.classes[ign].astype(np.int64), ib.astype(np.float32))
    if centers is None:
        ctr = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = np.ones(n, bool)
    else:
        ctr = apply_affine(geometry.trans_output, np.asarray(centers, np.float64)).astype(np.float32)
        inside = (ctr[:, 0] >= 0) & (ctr[:, 0] < out_w) & (ctr[:, 1] >= 0) & (ctr[:, 1] < out_h)
    valid = (~ign) & (wh[:, 0] > 0) & (wh[:, 1] > 0) & inside & (sample.classes >= 0) & (sample.classes < num_classes)
    kept = np.flatnonzero(valid)[:max_objects]
    ctr_k = ctr[kept].astype(np.float32)
    cell = np.minimum(ctr_k.astype(np.int32), [out_w - 1, out_h - 1]).astype(np.int32)
    radii = integer_radius(np.ceil(wh[kept, 1]), np.ceil(wh[kept, 0]), min_overlap, radius_formula)
    splat_gaussians(heatmap, sample.classes[kept].astype(np.int64), cell, radii)
    m = len(kept)
    indices = np.zeros(max_objects, np.int64)
    mask = np.zeros(max_objects, np.uint8)
    size = np.zeros((max_objects, 2), np.float32)
    offset = np.zeros((max_objects, 2), np.float32)
    indices[:m] = cell[:, 1].astype(np.int64) * out_w + cell[:, 0]
    mask[:m] = 1
    size[:m] = wh[kept]
    offset[:m] = ctr_k - cell
    targets = {
        "heatmap": heatmap,
        "heatmap_ignore": ignore_map,
        "indices": indices,
        "mask": mask,
        "size": size,
        "offset": offset,
    }
    return CenterTargets(targets, kept, ctr_k, boxes[kept])


@dataclass
class CenterDetections:
    """Top-K peaks of a batch, each (B, K, ...): scores (sigmoid, descending), classes (int64),
    inds (flat cell index y * W + x, int64), xs / ys (refined centre, output cells) and
    boxes_out (B, K, 4) x1, y1, x2, y2 in output cells."""

    scores: Tensor
    classes: Tensor
    inds: Tensor
    xs: Tensor
    ys: Tensor
    boxes_out: Tensor


def center_peaks(preds: dict[str, Tensor], k: int) -> CenterDetections:
    """Peaks of ``heatmap``, refined by ``offset``, boxes from ``size``, all in output cells.

    Pure torch with a fixed K (no numpy, no loop over detections): the part of decoding that
    exports into an ONNX graph. Without an ``offset`` head the centre is the cell centre (+0.5).
    """
    scores, classes, inds, ys, xs = topk_peaks(preds["heatmap"].float(), k)
    if "offset" in preds:
        off = gather_at(preds["offset"].float(), inds)
        xs = xs + off[..., 0]
        ys = ys + off[..., 1]
    else:
        xs, ys = xs + 0.5, ys + 0.5
    wh = gather_at(preds["size"].float(), inds)
    boxes_out = torch.stack([xs - wh[..., 0] / 2, ys - wh[..., 1] / 2, xs + wh[..., 0] / 2, ys + wh[..., 1] / 2], -1)
    return CenterDetections(scores, classes, inds, xs, ys, boxes_out)


def detections_to_numpy(dets: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """``Task.decode_tensors`` output -> numpy arrays (same keys), for ``Task.to_predictions``."""
    return {name: t.detach().cpu().numpy() for name, t in dets.items()}


def points_to_original(points: np.ndarray, meta: BatchMeta, scale: float = 1.0) -> np.ndarray:
    """(B, ..., 2) x, y in output cells times ``scale`` -> original pixels (B, ..., 2), float32.

    scale: 1 for output cells, ``STRIDE`` for network-input pixels (an exported graph's frame).
    """
    pts = np.asarray(points)
    if scale != 1:
        pts = pts / np.float32(scale)
    return batch_apply_affine(meta.inverse, pts)


def boxes_to_original(boxes: np.ndarray, meta: BatchMeta, scale: float = 1.0) -> np.ndarray:
    """(B, K, 4) x1, y1, x2, y2 in output cells times ``scale`` -> original pixels, corners
    re-ordered (the inverse affine may mirror) and clipped to each image; float32."""
    b = len(meta)
    corners = np.asarray(boxes).reshape(b, -1, 2, 2)
    out = points_to_original(corners, meta, scale).reshape(b, -1, 4)
    lo = np.minimum(out[..., :2], out[..., 2:])
    hi = np.maximum(out[..., :2], out[..., 2:])
    out = np.concatenate([lo, hi], -1)
    hw = np.asarray(meta.image_hw, np.float32)  # (B, 2) h, w
    out[..., [0, 2]] = out[..., [0, 2]].clip(0, hw[:, None, 1:2])
    out[..., [1, 3]] = out[..., [1, 3]].clip(0, hw[:, None, 0:1])
    return out


def logit(p: Tensor, eps: float = 1e-6) -> Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def flip_average_logits(a: Tensor, b_flipped: Tensor) -> Tensor:
    """Average two raw heatmaps in probability space, the second mirrored back (width axis)."""
    return logit((torch.sigmoid(a) + torch.sigmoid(b_flipped.flip(-1))) / 2)
