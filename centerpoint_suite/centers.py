"""Object-centre targets and decoding shared by every task (heatmap + size + offset).

Tasks build on these: ``center_targets`` places objects and returns which ones it kept (so a
task aligns its own per-object targets with the same slots), ``center_peaks`` returns the
top-K peaks with refined centres and boxes (pure torch, exportable) that a task extends with its
own heads; ``boxes_to_original`` / ``points_to_original`` apply the inverse affine (numpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from . import streaming
from .geometry import affine_boxes, apply_affine, batch_apply_affine
from .heatmap import RadiusFormula, fill_boxes, gather_at, splat_gaussians, topk_peaks
from .types import BatchMeta, OutputGeometry, Sample


@dataclass
class CenterTargets:
    """targets: heatmap (C, H, W) f32, heatmap_ignore (C, H, W) u8, indices (M,) i64, mask (M,) u8,
    size (M, 2) f32 box w, h in cells, offset (M, 2) f32 sub-cell centre offset.
    kept: (n,) indices into the sample's objects placed in slots 0..n-1.
    centers: (n, 2) f32 float centre of each kept object in output cells.
    radii: (n,) i32 gaussian radius of each kept object (``heatmap.integer_radius`` of its box)."""

    targets: dict[str, np.ndarray]
    kept: np.ndarray
    centers: np.ndarray
    boxes: np.ndarray  # (n, 4) kept boxes in output cells (clipped)
    radii: np.ndarray


@numba.njit(cache=True, nogil=True)
def _radius(h: float, w: float, o: float, exact: bool) -> int:
    """``integer_radius`` of one box, operation for operation (so the same float64 result)."""
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    sq1 = np.sqrt(max(b1 * b1 - 4.0 * c1, 0.0))
    b2 = 2.0 * (h + w)
    c2 = (1 - o) * w * h
    sq2 = np.sqrt(max(b2 * b2 - 16.0 * c2, 0.0))
    a3 = 4 * o
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    sq3 = np.sqrt(max(b3 * b3 - 4 * a3 * c3, 0.0))
    if exact:
        r = min(min((b1 - sq1) / 2.0, (b2 - sq2) / 8.0), (b3 + sq3) / (2 * a3))
    else:
        r = min(min((b1 + sq1) / 2.0, (b2 + sq2) / 2.0), (b3 + sq3) / 2.0)
    return max(0, int(np.floor(r)))


@numba.njit(cache=True, nogil=True)
def _place_centers(boxes, classes, ignore, given, use_given, heatmap, slots, min_overlap, exact):
    """All objects of a sample in one pass, in object order (see ``center_targets``).

    boxes (N, 4) f32 output cells, clipped here in place to the map's outer edge; given (N, 2)
    f32 keypoint centres and use_given; slots = (indices (M,) i64, mask (M,) u8, size (M, 2) f32,
    offset (M, 2) f32, kept (M,) i64, centers (M, 2) f32, radii (M,) i32), filled for slots 0..n-1.
    Returns n. Float32 values are rounded where the numpy expressions round them.
    """
    indices, mask, size, offset, kept, centers, radii = slots
    num_classes, out_h, out_w = heatmap.shape
    max_objects = indices.shape[0]
    fw, fh = np.float32(out_w), np.float32(out_h)
    m = 0
    one = np.empty(1, np.int64)
    cell = np.empty((1, 2), np.int32)
    rad = np.empty(1, np.int32)
    for i in range(boxes.shape[0]):
        for j in range(2):
            boxes[i, 2 * j] = min(max(boxes[i, 2 * j], np.float32(0)), fw)
            boxes[i, 2 * j + 1] = min(max(boxes[i, 2 * j + 1], np.float32(0)), fh)
        w = np.float32(boxes[i, 2] - boxes[i, 0])
        h = np.float32(boxes[i, 3] - boxes[i, 1])
        if use_given:
            cx, cy = given[i, 0], given[i, 1]
            inside = cx >= 0 and cx < out_w and cy >= 0 and cy < out_h
        else:
            cx = np.float32((boxes[i, 0] + boxes[i, 2]) / 2)
            cy = np.float32((boxes[i, 1] + boxes[i, 3]) / 2)
            inside = True
        c = classes[i]
        if ignore[i] or not (w > 0 and h > 0 and inside and c >= 0 and c < num_classes) or m >= max_objects:
            continue
        ix, iy = min(np.int32(cx), out_w - 1), min(np.int32(cy), out_h - 1)
        one[0], cell[0, 0], cell[0, 1] = c, ix, iy
        rad[0] = _radius(np.float64(np.ceil(h)), np.float64(np.ceil(w)), min_overlap, exact)
        splat_gaussians(heatmap, one, cell, rad)
        indices[m] = np.int64(iy) * out_w + ix
        mask[m] = 1
        size[m, 0], size[m, 1] = w, h
        offset[m, 0], offset[m, 1] = cx - ix, cy - iy
        kept[m] = i
        centers[m, 0], centers[m, 1] = cx, cy
        radii[m] = rad[0]
        m += 1
    return m


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
    Everything after the box mapping runs in one numba pass over the objects (``_place_centers``).
    """
    if radius_formula not in ("cornernet", "exact"):
        raise ValueError(f"unknown gaussian radius formula {radius_formula!r}; use 'cornernet' or 'exact'")
    out_h, out_w = geometry.output_hw
    heatmap = streaming.zeros((num_classes, out_h, out_w), np.float32)
    ignore_map = streaming.zeros((num_classes, out_h, out_w), np.uint8)
    n = len(sample)
    boxes = affine_boxes(geometry.trans_output, sample.boxes) if n else np.zeros((0, 4), np.float32)
    ign = np.asarray(sample.ignore, bool)
    given = np.zeros((n, 2), np.float32)
    if centers is not None:
        given = apply_affine(geometry.trans_output, np.asarray(centers, np.float64)).astype(np.float32).reshape(n, 2)
    slots = (
        np.zeros(max_objects, np.int64),
        np.zeros(max_objects, np.uint8),
        np.zeros((max_objects, 2), np.float32),
        np.zeros((max_objects, 2), np.float32),
        np.zeros(max_objects, np.int64),
        np.zeros((max_objects, 2), np.float32),
        np.zeros(max_objects, np.int32),
    )
    classes = np.asarray(sample.classes, np.int64)
    # clip to the map's outer edge (the original clips to out_w - 1, which shrinks every box
    # touching the right / bottom border by up to one cell: 14 of 619 COCO-mini boxes)
    m = _place_centers(
        boxes, classes, ign, given, centers is not None, heatmap, slots, min_overlap, radius_formula == "exact"
    )
    if ign.any():
        fill_boxes(ignore_map, classes[ign], boxes[ign])
    indices, mask, size, offset, kept, ctr, radii = slots
    targets = {
        "heatmap": heatmap,
        "heatmap_ignore": ignore_map,
        "indices": indices,
        "mask": mask,
        "size": size,
        "offset": offset,
    }
    kept = kept[:m]
    return CenterTargets(targets, kept, ctr[:m].copy(), boxes[kept], radii[:m])


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
