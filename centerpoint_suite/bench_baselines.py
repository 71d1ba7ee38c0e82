"""The original CenterNet's slow paths, re-implemented as ``centerpoint bench`` baselines.

Each function keeps the original's structure and cost (per-object python loops with a fresh
gaussian per object, a uint8 warp then float64 normalisation, sigmoid + NCHW max-pool, top-K per
class then over all, the inverse affine applied to one point at a time in a python loop, a dict
of per-class lists per image), but our conventions where they differ on purpose (boxes clipped
to the map's outer edge, crowd boxes as ignore regions, boxes clipped to the image), so that each
baseline gives the same outputs as our fast path: the bench checks that before timing.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .transforms import Normalization


# ---- geometry, one point at a time ---------------------------------------------------------
def get_affine_transform(
    center: np.ndarray, scale: float, out_wh: tuple[float, float], inv: bool = False
) -> np.ndarray:
    """(2, 3) map of the source window (width ``scale`` centred on ``center``) onto ``out_wh``,
    from three point pairs as the original (solved in float64 rather than cv2's float32)."""
    w, h = out_wh
    src = np.array([center, center + [0, -0.5 * scale], center + [-0.5 * scale, -0.5 * scale]], np.float64)
    dst = np.array([[w * 0.5, h * 0.5], [w * 0.5, h * 0.5 - 0.5 * w], [0.0, h * 0.5 - 0.5 * w]], np.float64)
    if inv:
        src, dst = dst, src
    a = np.concatenate([src, np.ones((3, 1))], 1)
    return np.linalg.solve(a, dst).T


def affine_transform(pt: np.ndarray, t: np.ndarray) -> np.ndarray:
    new_pt = np.array([pt[0], pt[1], 1.0], dtype=np.float32).T
    return np.dot(t, new_pt)[:2]


def transform_preds(coords: np.ndarray, trans: np.ndarray) -> np.ndarray:
    target = np.zeros(coords.shape)
    for p in range(coords.shape[0]):  # one python iteration per point
        target[p, 0:2] = affine_transform(coords[p, 0:2], trans)
    return target


# ---- training sample ------------------------------------------------------------------------
def gaussian_radius(det_size: tuple[float, float], min_overlap: float = 0.7) -> float:
    height, width = det_size
    a1, b1, c1 = 1, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(max(b1**2 - 4 * a1 * c1, 0))) / 2
    a2, b2, c2 = 4, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(max(b2**2 - 4 * a2 * c2, 0))) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(max(b3**2 - 4 * a3 * c3, 0))) / 2
    return min(r1, r2, r3)


def gaussian2d(radius: int) -> np.ndarray:
    sigma = (2 * radius + 1) / 6
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h


def draw_gaussian(heatmap: np.ndarray, center: np.ndarray, radius: int) -> None:
    g = gaussian2d(radius)  # a fresh gaussian per object
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape[0:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    masked_heatmap = heatmap[y - top : y + bottom, x - left : x + right]
    masked_gaussian = g[radius - top : radius + bottom, radius - left : radius + right]
    if min(masked_gaussian.shape) > 0 and min(masked_heatmap.shape) > 0:
        np.maximum(masked_heatmap, masked_gaussian, out=masked_heatmap)


def original_input(image: np.ndarray, m: np.ndarray, in_hw: tuple[int, int], norm: Normalization) -> np.ndarray:
    """uint8 warp, then float conversion and normalisation: (3, H, W) float32 in ``norm.order``."""
    inp = cv2.warpAffine(image, m, (in_hw[1], in_hw[0]), flags=cv2.INTER_LINEAR)
    if norm.order == "rgb":
        inp = inp[..., ::-1]
    inp = inp.astype(np.float32) / 255.0
    inp = (inp - np.array(norm.mean, np.float32)) / np.array(norm.std, np.float32)
    return inp.transpose(2, 0, 1)


def _center_loop(sample, trans_output: np.ndarray, out_hw: tuple[int, int], num_classes: int, max_objs: int):
    out_h, out_w = out_hw
    hm = np.zeros((num_classes, out_h, out_w), dtype=np.float32)
    ignore = np.zeros((num_classes, out_h, out_w), dtype=np.uint8)
    wh = np.zeros((max_objs, 2), dtype=np.float32)
    reg = np.zeros((max_objs, 2), dtype=np.float32)
    ind = np.zeros((max_objs), dtype=np.int64)
    reg_mask = np.zeros((max_objs), dtype=np.uint8)
    # allocated and filled by the original whatever its options (returned only with some of them)
    dense_wh = np.zeros((2, out_h, out_w), dtype=np.float32)  # noqa: F841
    cat_spec_wh = np.zeros((max_objs, num_classes * 2), dtype=np.float32)
    cat_spec_mask = np.zeros((max_objs, num_classes * 2), dtype=np.uint8)
    gt_det = []
    slots = []  # (object index, ct_int, radius)
    for n in range(len(sample)):  # one python iteration per object
        bbox = sample.boxes[n].astype(np.float32).copy()
        cls_id = int(sample.classes[n])
        corners = np.array([affine_transform(bbox[:2], trans_output), affine_transform(bbox[2:], trans_output)])
        bbox[:2], bbox[2:] = corners.min(0), corners.max(0)
        bbox[[0, 2]] = np.clip(bbox[[0, 2]], 0, out_w)
        bbox[[1, 3]] = np.clip(bbox[[1, 3]], 0, out_h)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if sample.ignore[n]:
            if bbox[2] > 0 and bbox[3] > 0:
                x0, y0 = int(math.floor(bbox[0])), int(math.floor(bbox[1]))
                ignore[cls_id, y0 : min(int(bbox[3]), out_h - 1) + 1, x0 : min(int(bbox[2]), out_w - 1) + 1] = 1
            continue
        if h > 0 and w > 0 and 0 <= cls_id < num_classes and len(slots) < max_objs:
            k = len(slots)
            radius = max(0, int(gaussian_radius((math.ceil(h), math.ceil(w)))))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], dtype=np.float32)
            ct_int = np.minimum(ct.astype(np.int32), [out_w - 1, out_h - 1]).astype(np.int32)
            draw_gaussian(hm[cls_id], ct_int, radius)
            wh[k] = 1.0 * w, 1.0 * h
            ind[k] = ct_int[1] * out_w + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 1
            cat_spec_wh[k, cls_id * 2 : cls_id * 2 + 2] = wh[k]
            cat_spec_mask[k, cls_id * 2 : cls_id * 2 + 2] = 1
            gt_det.append([ct[0] - w / 2, ct[1] - h / 2, ct[0] + w / 2, ct[1] + h / 2, 1, cls_id])
            slots.append((n, ct_int, radius))
    targets = {"heatmap": hm, "heatmap_ignore": ignore, "indices": ind, "mask": reg_mask, "size": wh, "offset": reg}
    return targets, slots


def original_box_sample(
    sample, m: np.ndarray, in_hw: tuple[int, int], norm: Normalization, num_classes: int, max_objs: int = 128
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The original ctdet ``__getitem__`` (colour augmentation aside): input (3, H, W), targets."""
    inp = original_input(sample.image, m, in_hw, norm)
    out_hw = (in_hw[0] // 4, in_hw[1] // 4)
    targets, _ = _center_loop(sample, (m / 4).astype(np.float32), out_hw, num_classes, max_objs)
    return inp, targets


def original_pose_sample(
    sample, m: np.ndarray, in_hw: tuple[int, int], norm: Normalization, num_joints: int = 17, max_objs: int = 32
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The original multi_pose ``__getitem__`` (no flip, no colour): input (3, H, W), targets."""
    inp = original_input(sample.image, m, in_hw, norm)
    out_hw = (in_hw[0] // 4, in_hw[1] // 4)
    return inp, original_pose_targets(sample, (m / 4).astype(np.float32), out_hw, num_joints, max_objs)


def original_pose_targets(
    sample, trans_output: np.ndarray, out_hw: tuple[int, int], num_joints: int = 17, max_objs: int = 32
) -> dict[str, np.ndarray]:
    """The original multi_pose targets: person centres, then per person and joint in python."""
    out_h, out_w = out_hw
    targets, slots = _center_loop(sample, trans_output, (out_h, out_w), 1, max_objs)
    hm_hp = np.zeros((num_joints, out_h, out_w), dtype=np.float32)
    kps = np.zeros((max_objs, num_joints * 2), dtype=np.float32)
    kps_mask = np.zeros((max_objs, num_joints * 2), dtype=np.uint8)
    hp_offset = np.zeros((max_objs * num_joints, 2), dtype=np.float32)
    hp_ind = np.zeros((max_objs * num_joints), dtype=np.int64)
    hp_mask = np.zeros((max_objs * num_joints), dtype=np.uint8)
    dense_kps = np.zeros((num_joints, 2, out_h, out_w), dtype=np.float32)  # noqa: F841 (as the original)
    dense_kps_mask = np.zeros((num_joints, out_h, out_w), dtype=np.float32)  # noqa: F841
    for k, (n, ct_int, hp_radius) in enumerate(slots):  # per person, then per joint
        pts = np.array(sample.keypoints[n], np.float32).reshape(num_joints, 3)
        for j in range(num_joints):
            if pts[j, 2] > 0:
                pts[j, :2] = affine_transform(pts[j, :2], trans_output)
                if 0 <= pts[j, 0] < out_w and 0 <= pts[j, 1] < out_h:
                    kps[k, j * 2 : j * 2 + 2] = pts[j, :2] - ct_int
                    kps_mask[k, j * 2 : j * 2 + 2] = 1
                    pt_int = pts[j, :2].astype(np.int32)
                    hp_offset[k * num_joints + j] = pts[j, :2] - pt_int
                    hp_ind[k * num_joints + j] = pt_int[1] * out_w + pt_int[0]
                    hp_mask[k * num_joints + j] = 1
                    draw_gaussian(hm_hp[j], pt_int, hp_radius)
    targets.update(
        joint_offsets=kps,
        joint_offsets_mask=kps_mask,
        joint_heatmap=hm_hp,
        joint_indices=hp_ind,
        joint_mask=hp_mask,
        joint_offset=hp_offset,
    )
    return targets


# ---- decode and post-process ----------------------------------------------------------------
def _gather_feat(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    dim = feat.size(2)
    ind = ind.unsqueeze(2).expand(ind.size(0), ind.size(1), dim)
    return feat.gather(1, ind)


def _transpose_and_gather_feat(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    feat = feat.permute(0, 2, 3, 1).contiguous()
    return _gather_feat(feat.view(feat.size(0), -1, feat.size(3)), ind)


def ctdet_decode(heat: torch.Tensor, wh: torch.Tensor, reg: torch.Tensor, k: int = 100) -> torch.Tensor:
    """Raw NCHW maps -> (B, K, 6) x1, y1, x2, y2, score, class in output cells."""
    batch, cat, height, width = heat.size()
    heat = heat.sigmoid()
    hmax = F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (hmax == heat).float()
    topk_scores, topk_inds = torch.topk(heat.view(batch, cat, -1), k)  # per class
    topk_inds = topk_inds % (height * width)
    topk_ys = (topk_inds / width).int().float()
    topk_xs = (topk_inds % width).int().float()
    scores, topk_ind = torch.topk(topk_scores.view(batch, -1), k)  # then over all
    clses = (topk_ind / k).int()
    inds = _gather_feat(topk_inds.view(batch, -1, 1), topk_ind).view(batch, k)
    ys = _gather_feat(topk_ys.view(batch, -1, 1), topk_ind).view(batch, k)
    xs = _gather_feat(topk_xs.view(batch, -1, 1), topk_ind).view(batch, k)
    reg = _transpose_and_gather_feat(reg, inds)
    xs = xs.view(batch, k, 1) + reg[:, :, 0:1]
    ys = ys.view(batch, k, 1) + reg[:, :, 1:2]
    wh = _transpose_and_gather_feat(wh, inds)
    bboxes = torch.cat([xs - wh[..., 0:1] / 2, ys - wh[..., 1:2] / 2, xs + wh[..., 0:1] / 2, ys + wh[..., 1:2] / 2], 2)
    return torch.cat([bboxes, scores.view(batch, k, 1), clses.view(batch, k, 1).float()], 2)


def ctdet_post_process(
    dets: np.ndarray, centers: list, scales: list, out_hw: tuple[int, int], num_classes: int, image_hw: list
) -> list[dict[int, np.ndarray]]:
    """(B, K, 6) in output cells -> per image {class + 1: (n, 5) x1, y1, x2, y2, score} in original
    pixels (corners ordered and clipped to the image, as ours; a negative predicted size swaps them)."""
    ret = []
    for i in range(dets.shape[0]):
        trans = get_affine_transform(centers[i], scales[i], (out_hw[1], out_hw[0]), inv=True)
        dets[i, :, :2] = transform_preds(dets[i, :, 0:2], trans)
        dets[i, :, 2:4] = transform_preds(dets[i, :, 2:4], trans)
        classes = dets[i, :, -1]
        top_preds = {}
        for j in range(num_classes):
            inds = classes == j
            top_preds[j + 1] = np.concatenate(
                [dets[i, inds, :4].astype(np.float32), dets[i, inds, 4:5].astype(np.float32)], axis=1
            ).tolist()
        h, w = image_hw[i]
        for j in top_preds:  # per class: a list of detections back to an array
            a = np.array(top_preds[j], dtype=np.float32).reshape(-1, 5)
            a[:, :4] = np.concatenate([np.minimum(a[:, :2], a[:, 2:4]), np.maximum(a[:, :2], a[:, 2:4])], 1)
            a[:, [0, 2]] = a[:, [0, 2]].clip(0, w)
            a[:, [1, 3]] = a[:, [1, 3]].clip(0, h)
            top_preds[j] = a
        ret.append(top_preds)
    return ret


def original_predict(model: torch.nn.Module, path: str, in_hw: tuple[int, int], norm: Normalization, k: int = 100):
    """The original detector's ``run`` on one image file: read, pre-process (resize, warp,
    float64 normalisation), forward under no_grad, decode, post-process, merge (top ``k``)."""
    image = cv2.imread(path)
    height, width = image.shape[0:2]
    c = np.array([width / 2.0, height / 2.0], dtype=np.float32)
    s = max(height * in_hw[1] / in_hw[0], width) * 1.0
    trans_input = get_affine_transform(c, s, (in_hw[1], in_hw[0]))
    resized = cv2.resize(image, (width, height))
    inp = cv2.warpAffine(resized, trans_input, (in_hw[1], in_hw[0]), flags=cv2.INTER_LINEAR)
    if norm.order == "rgb":
        inp = inp[..., ::-1]
    inp = ((inp / 255.0 - np.array(norm.mean)) / np.array(norm.std)).astype(np.float32)
    images = torch.from_numpy(inp.transpose(2, 0, 1).reshape(1, 3, in_hw[0], in_hw[1]))
    with torch.no_grad():
        out = model(images)
        dets = ctdet_decode(out["heatmap"], out["size"], out["offset"], k)
    out_hw = (in_hw[0] // 4, in_hw[1] // 4)
    num_classes = out["heatmap"].shape[1]
    per_class = ctdet_post_process(dets.numpy().copy(), [c], [s], out_hw, num_classes, [(height, width)])[0]
    scores = np.hstack([per_class[j][:, 4] for j in per_class])
    if len(scores) > k:
        thresh = np.partition(scores, len(scores) - k)[len(scores) - k]
        for j in per_class:
            per_class[j] = per_class[j][per_class[j][:, 4] >= thresh]
    return per_class
