"""The depth-uncertainty head: Laplace NLL, confidence-ranked decode, flip merge, oracle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from centerpoint_suite.data import collate, prepare_eval
from centerpoint_suite.datasets.kitti import KittiSource
from centerpoint_suite.tasks.mono3d import Mono3D
from centerpoint_suite.tasks.mono3d.loss import decode_depth, encode_depth, mono3d_losses
from centerpoint_suite.transforms import EvalResize

FRAMES = ("000000", "000001", "000134", "000006")


@pytest.fixture(scope="module")
def batch(kitti_root: Path):
    src = KittiSource(kitti_root, "trainval")
    index = {f: i for i, f in enumerate(src.ids)}
    task = Mono3D(center_mode="projected3d", depth_focal=60.0, depth_uncertainty=True)
    samples = [src[index[f]] for f in FRAMES]
    return task, collate([prepare_eval(s, task, EvalResize((384, 1280)), with_targets=True) for s in samples])


def test_depth_term_is_the_laplace_nll_of_the_masked_objects(batch):
    task, b = batch
    maps = task.oracle_maps(b.targets)
    g = torch.Generator().manual_seed(0)
    maps["depth"] = maps["depth"] + 0.3 * torch.randn(maps["depth"].shape, generator=g)
    maps["depth_uncertainty"] = torch.randn(maps["depth_uncertainty"].shape, generator=g)
    got = float(mono3d_losses(maps, b.targets)["depth"])
    # numpy twin: gather each real object's cell by hand
    mask = b.targets["mask"].numpy().astype(bool)
    inds = b.targets["indices"].numpy()
    terms = []
    for i in range(mask.shape[0]):
        for j in np.flatnonzero(mask[i]):
            raw = float(maps["depth"][i, 0].reshape(-1)[inds[i, j]])
            s = float(maps["depth_uncertainty"][i, 0].reshape(-1)[inds[i, j]])
            d = 1 / (1 / (1 + math.exp(-raw)) + 1e-6) - 1
            e = abs(d - float(b.targets["depth"][i, j, 0]))
            terms.append(math.sqrt(2) * e / math.exp(s) + s)
    assert len(terms) > 10
    assert got == pytest.approx(np.mean(terms), rel=1e-4)


def test_nll_is_smallest_at_the_scale_of_the_error():
    depth = torch.tensor([[[10.0]]])
    targets = {"depth": depth + 2.0, "indices": torch.zeros(1, 1, dtype=torch.long), "mask": torch.ones(1, 1)}
    values = {}
    for s in (-1.0, math.log(math.sqrt(2) * 2.0), 3.0):
        preds = {"depth": encode_depth(depth).view(1, 1, 1, 1), "depth_uncertainty": torch.full((1, 1, 1, 1), s)}
        preds["heatmap"] = torch.zeros(1, 1, 1, 1)
        for k, c in (("dimensions", 3), ("rotation", 8), ("size", 2), ("offset", 2)):
            preds[k] = torch.zeros(1, c, 1, 1)
        t = {**targets, "heatmap": torch.zeros(1, 1, 1, 1), "heatmap_ignore": torch.zeros(1, 1, 1, 1)}
        t.update(dimensions=torch.zeros(1, 1, 3), size=torch.zeros(1, 1, 2), offset=torch.zeros(1, 1, 2))
        t.update(rotation_bin=torch.zeros(1, 1, 2, dtype=torch.long), rotation_res=torch.zeros(1, 1, 2))
        values[s] = float(mono3d_losses(preds, t)["depth"])
    best = values[math.log(math.sqrt(2) * 2.0)]
    assert best < values[-1.0] and best < values[3.0]


def test_decode_ranks_by_depth_confidence_and_keeps_the_heatmap_score(batch):
    task, b = batch
    maps = task.oracle_maps(b.targets)
    plain = task.decode(maps, b.meta, k=50)
    # make the depth of every object in image 0 uncertain except one: it must rank first
    noisy = dict(maps)
    noisy["depth_uncertainty"] = maps["depth_uncertainty"].clone()
    inds, mask = b.targets["indices"][0], b.targets["mask"][0].bool()
    flat = noisy["depth_uncertainty"][0, 0].view(-1)
    flat[inds[mask]] = 1.0
    keep = int(inds[mask][-1])
    flat[keep] = -6.0
    ranked = task.decode(noisy, b.meta, k=50)[0]
    assert np.all(np.diff(ranked.scores) <= 0)
    np.testing.assert_allclose(np.sort(ranked.extras["score2d"]), np.sort(plain[0].extras["score2d"]))
    h, w = maps["heatmap"].shape[-2:]
    cx = (ranked.extras["score2d"] > 0.9) & (ranked.extras["depth_sigma"] < 0.01)
    assert cx[0] and cx.sum() == 1  # the only confident-depth object comes first
    sigma = ranked.extras["depth_sigma"]
    np.testing.assert_allclose(ranked.scores, ranked.extras["score2d"] * np.exp(-sigma), rtol=1e-5)
    assert (h, w) == tuple(maps["depth"].shape[-2:])


def test_oracle_with_the_head_places_the_same_boxes(batch):
    task, b = batch
    with_head = task.decode(task.oracle_maps(b.targets), b.meta, k=50)
    without = Mono3D(center_mode="projected3d", depth_focal=60.0)
    maps = without.oracle_maps(b.targets)
    plain = without.decode(maps, b.meta, k=50)
    for p, q in zip(with_head, plain):
        keep_p, keep_q = p.extras["score2d"] > 0.9, q.scores > 0.9
        assert keep_p.sum() == keep_q.sum() > 0
        order_p = np.lexsort(p.boxes[keep_p].T)
        order_q = np.lexsort(q.boxes[keep_q].T)
        np.testing.assert_allclose(
            p.extras["location"][keep_p][order_p], q.extras["location"][keep_q][order_q], atol=1e-5
        )


def test_merge_flip_keeps_an_equivariant_uncertainty():
    task = Mono3D(center_mode="projected3d", depth_uncertainty=True)
    assert task.heads()["depth_uncertainty"] == 1
    g = torch.Generator().manual_seed(0)
    preds = {k: torch.randn(2, c, 8, 12, generator=g) for k, c in task.heads().items()}
    mirrored = {k: v.flip(-1) for k, v in preds.items()}
    mirrored["size"] = mirrored["size"][:, [2, 1, 0, 3]]
    merged = task.merge_flip(preds, mirrored)
    torch.testing.assert_close(merged["depth_uncertainty"], preds["depth_uncertainty"], atol=1e-5, rtol=1e-5)
    assert "depth_log_scale" in task.detection_fields()
    assert "depth_log_scale" not in Mono3D().detection_fields()


def test_merge_flip_weights_each_depth_by_its_inverse_variance():
    task = Mono3D(center_mode="projected3d", depth_uncertainty=True)
    shape = (1, 1, 4, 6)
    direct = {k: torch.zeros(shape[0], c, *shape[2:]) for k, c in task.heads().items()}
    mirrored = {k: v.clone() for k, v in direct.items()}
    direct["depth"] = encode_depth(torch.full(shape, 20.0))
    mirrored["depth"] = encode_depth(torch.full(shape, 30.0))
    direct["depth_uncertainty"] = torch.full(shape, math.log(1.0))  # sigma 1 m
    mirrored["depth_uncertainty"] = torch.full(shape, math.log(3.0))  # sigma 3 m: a ninth of the weight
    merged = task.merge_flip(direct, mirrored)
    expected = (20.0 * 9 + 30.0 * 1) / 10
    torch.testing.assert_close(decode_depth(merged["depth"]), torch.full(shape, expected), rtol=1e-5, atol=1e-4)
    plain = Mono3D(center_mode="projected3d")
    direct.pop("depth_uncertainty"), mirrored.pop("depth_uncertainty")
    torch.testing.assert_close(
        decode_depth(plain.merge_flip(direct, mirrored)["depth"]), torch.full(shape, 25.0), rtol=1e-5, atol=1e-4
    )


def test_result_files_keep_detections_by_their_heatmap_score(batch, kitti_root, tmp_path):
    task, b = batch
    maps = task.oracle_maps(b.targets)
    maps["depth_uncertainty"] = torch.full_like(maps["depth_uncertainty"], 2.0)  # sigma 7.4 m: conf 6e-4
    preds = task.decode(maps, b.meta, k=50)
    assert all(p.scores.max() < task.min_score for p in preds)
    src = KittiSource(kitti_root, "trainval")
    task.write_results(src, preds, tmp_path)
    for p in preds:
        lines = (tmp_path / f"{p.image_id}.txt").read_text().splitlines()
        assert len(lines) == int((p.extras["score2d"] >= task.min_score).sum()) > 0
