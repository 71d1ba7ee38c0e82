"""The fast data-side paths give the outputs of the paths they replaced, on real COCO-mini data:
normalisation by table look-up (bitwise equal to the float multiply-add), top-K peaks in
channels_last (the same detections as the NCHW top-K), gathers from channels_last maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from centerpoint_suite import create_task
from centerpoint_suite.centers import logit
from centerpoint_suite.geometry import center_scale_affine
from centerpoint_suite.heatmap import cell_xy, gather_at, peak_scores, topk_peaks, topk_peaks_torch
from centerpoint_suite.transforms import (
    NORMALIZATIONS,
    AugmentConfig,
    EvalResize,
    eval_affine,
    get_normalization,
    normalize_batch,
    output_inverse,
    rows_reaching_image,
    sample_train_affine,
    warp_image,
)
from centerpoint_suite.types import BatchMeta, OutputGeometry


# ---- the replaced implementations (tests only) -----------------------------------------------
def topk_peaks_nchw(logits, k):
    """The top-K before: separable 3x3 max on NCHW, top-K over the class-major flat map."""
    b, c, h, w = logits.shape
    k = min(k, c * h * w)
    top, flat = torch.topk(peak_scores(logits).reshape(b, -1), k)
    classes = torch.div(flat, h * w, rounding_mode="floor")
    inds = flat - classes * (h * w)
    xs, ys = cell_xy(inds, w)
    return torch.sigmoid(top), classes, inds, ys, xs


def normalize_float(images, norm):
    """The normalisation before: one float32 multiply-add in torch."""
    if norm.order == "rgb":
        images = images.flip(-1)
    std = torch.tensor(norm.std)
    x = torch.addcmul(-torch.tensor(norm.mean) / std, images.to(torch.float32), 1.0 / (std * 255.0))
    return x.permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def coco(coco_mini):
    from centerpoint_suite.datasets.coco import CocoSource

    src = CocoSource(coco_mini, None, "instances")
    return src, [src[i] for i in range(6)]


def _oracle_logits(src, samples, noise: float, seed: int = 0):
    """Heatmap logits of real samples (their target maps), optionally with noise that breaks ties."""
    task = create_task("boxes2d", classes=src.classes)
    maps, metas = [], []
    for s in samples:
        m, in_hw = eval_affine(s.hw, EvalResize((512, 512)))
        t = task.build_targets(s, OutputGeometry((m / 4).astype(np.float32), (128, 128)))
        maps.append(t["heatmap"])
        metas.append((output_inverse(m), s.image_id, s.hw))
    heat = logit(torch.from_numpy(np.stack(maps)))
    g = torch.Generator().manual_seed(seed)
    heat = heat + noise * torch.randn(heat.shape, generator=g)
    meta = BatchMeta(np.stack([x[0] for x in metas]), [x[1] for x in metas], [x[2] for x in metas])
    return task, heat, meta


@pytest.mark.parametrize("name", sorted(NORMALIZATIONS))
def test_lut_normalisation_is_bitwise_the_float_formula(coco, name):
    _, samples = coco
    norm = get_normalization(name)
    m, in_hw = eval_affine(samples[0].hw, EvalResize((512, 512)))
    images = torch.from_numpy(np.stack([warp_image(s.image, m, in_hw) for s in samples[:3]]))
    got = normalize_batch(images, norm)
    ref = normalize_float(images, norm)
    assert got.dtype == torch.float32 and got.shape == (3, 3, *in_hw)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, ref)
    assert torch.equal(normalize_batch(images.float(), norm), ref)  # float input: the torch path


@pytest.mark.parametrize("channels_last", [False, True])
def test_topk_peaks_equal_the_nchw_topk_on_real_maps(coco, channels_last):
    src, samples = coco
    _, heat, _ = _oracle_logits(src, samples, noise=1.0)
    if channels_last:
        heat = heat.contiguous(memory_format=torch.channels_last)
    for k in (1, 30, 100):
        got, ref = topk_peaks(heat, k), topk_peaks_nchw(heat.contiguous(), k)
        top = torch.topk(peak_scores(heat.contiguous()).reshape(len(samples), -1), k + 1).values  # logits
        assert (top[:, 1:] < top[:, :-1]).all()  # no ties up to the (k+1)-th: one right answer
        for a, b in zip(got, ref):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_topk_peaks_with_ties_give_the_same_detections(coco):
    """Exact oracle maps: every object peaks at 1 (ties). Same scores in the same order, and the
    same (class, cell) set among the objects' peaks."""
    src, samples = coco
    _, heat, _ = _oracle_logits(src, samples, noise=0.0)
    got, ref = topk_peaks(heat, 100), topk_peaks_nchw(heat, 100)
    assert torch.equal(got[0], ref[0])
    for i in range(heat.shape[0]):
        live = ref[0][i] > 0.01  # the objects (the background is a plateau at logit(1e-6))
        assert live.sum() == (got[0][i] > 0.01).sum() > 0
        objects = [sorted(zip(t[1][i][live].tolist(), t[2][i][live].tolist())) for t in (got, ref)]
        assert objects[0] == objects[1]


def test_gather_from_channels_last_is_the_nchw_gather():
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(2, 5, 9, 11, generator=g)
    inds = torch.randint(0, 99, (2, 7), generator=g)
    ref = gather_at(feat, inds)
    got = gather_at(feat.contiguous(memory_format=torch.channels_last), inds)
    assert torch.equal(got, ref) and got.shape == (2, 7, 5)


def test_box_decode_on_real_maps_is_unchanged(coco, monkeypatch):
    """Whole boxes2d decode (peaks, offsets, sizes, inverse affine) before / after, channels_last
    maps as our network returns them."""
    import centerpoint_suite.centers as centers

    src, samples = coco
    task, heat, meta = _oracle_logits(src, samples, noise=1.0, seed=1)
    g = torch.Generator().manual_seed(2)
    maps = {"heatmap": heat, "size": 20 * torch.rand(len(samples), 2, 128, 128, generator=g)}
    maps["offset"] = torch.rand(len(samples), 2, 128, 128, generator=g)
    got = task.decode({k: v.contiguous(memory_format=torch.channels_last) for k, v in maps.items()}, meta)
    monkeypatch.setattr(centers, "topk_peaks", topk_peaks_nchw)
    ref = task.decode(maps, meta)
    for a, b in zip(got, ref):
        assert a.image_id == b.image_id
        for x, y in ((a.boxes, b.boxes), (a.scores, b.scores), (a.classes, b.classes)):
            assert x.dtype == y.dtype and np.array_equal(x, y)


def _plateau_maps(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 13, 17, generator=g).round()  # many ties and plateaus
    x[1, 2] = torch.arange(17.0)  # a ramp: only its last column peaks
    return x


@pytest.mark.parametrize("seed", range(3))
def test_numba_top_k_equals_the_torch_top_k(seed):
    """The eager kernel and the exportable torch path: the same K values; where no value ties,
    the same classes and cells; tied values by descending class-major index (a canonical order)."""
    g = torch.Generator().manual_seed(seed)
    distinct = torch.randn(3, 5, 11, 9, generator=g)
    fewest = int((peak_scores(distinct) > float("-inf")).flatten(1).sum(1).min())
    for k in (1, 20, fewest):  # beyond the peaks the filler cells are arbitrary in torch
        got, ref = topk_peaks(distinct, k), topk_peaks_torch(distinct, k)
        for a, b in zip(got, ref):
            assert torch.equal(a, b)
    ties = _plateau_maps(seed)
    hw = ties.shape[2] * ties.shape[3]
    for k in (10, 200, ties[0].numel()):
        got, ref = topk_peaks(ties, k), topk_peaks_torch(ties, k)
        assert torch.equal(got[0], ref[0])
        flat = got[1] * hw + got[2]
        peaks = peak_scores(ties)
        for i in range(ties.shape[0]):
            same_value = got[0][i][1:] == got[0][i][:-1]
            assert (flat[i][1:][same_value] < flat[i][:-1][same_value]).all()  # descending within ties
            last = got[0][i][-1]
            above = got[0][i] > last  # strictly better than the K-th: one right set
            ref_flat = ref[1][i] * hw + ref[2][i]
            assert sorted(flat[i][above].tolist()) == sorted(ref_flat[above].tolist())
            # the K-th value's ties: the highest class-major indices among the peaks of that value
            tied = torch.nonzero(torch.sigmoid(peaks[i]).flatten() == last).flatten().flip(0)
            assert flat[i][~above].tolist() == tied[: int((~above).sum())].tolist()


def test_fewer_peaks_than_k_fill_with_zero_scores():
    x = torch.arange(10.0).expand(1, 2, 4, 10).contiguous()  # peaks: the last column only
    scores, classes, inds, ys, xs = topk_peaks(x, 12)
    assert (scores[0, :8] > 0.99).all() and (scores[0, 8:] == 0).all()
    assert set(xs[0, :8].tolist()) == {9.0}
    cells = (classes[0] * 40 + inds[0]).tolist()
    assert len(set(cells)) == 12  # the filler takes distinct unused cells


def test_warp_skipping_the_rows_below_the_image_is_opencvs_warp(coco):
    """The training and test affines on real images: every pixel as the full cv2.warpAffine, and
    the rows below the image were not computed in most cases."""
    _, samples = coco
    cropped = 0
    for k, s in enumerate(samples):
        cases = [eval_affine(s.hw, EvalResize((512, 512))), eval_affine(s.hw, EvalResize(mode="keep_res"))]
        for seed in range(4):
            rng = np.random.default_rng((k, seed))
            cases.append((sample_train_affine(rng, s.hw, (512, 512), AugmentConfig(), can_flip=True)[0], (512, 512)))
        for m, out_hw in cases:
            want = cv2.warpAffine(s.image, m, (out_hw[1], out_hw[0]), flags=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(warp_image(s.image, m, out_hw), want)
            rows = rows_reaching_image(m, s.hw[0], out_hw[0])
            assert not want[rows:].any()
            cropped += rows < out_hw[0]
    assert cropped >= 3
    rotated = center_scale_affine((100.0, 80.0), 300, (512, 512), rotation_deg=5)
    assert rows_reaching_image(rotated, 200, 512) == 512
    assert rows_reaching_image(center_scale_affine((0.0, 900.0), 300, (512, 512)), 200, 512) == 0
    np.testing.assert_array_equal(
        warp_image(samples[0].image, center_scale_affine((0.0, 900.0), 300, (64, 64)), (64, 64)), 0
    )
