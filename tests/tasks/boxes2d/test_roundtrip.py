"""boxes2d: targets -> decode -> COCOeval round trips on real COCO images, flip merge, loss."""

from __future__ import annotations

import numpy as np
import torch

from centerpoint_suite.data import collate, prepare_eval
from centerpoint_suite.engine import run_oracle
from centerpoint_suite.tasks.boxes2d import Boxes2D
from centerpoint_suite.transforms import EvalResize
from centerpoint_suite.types import Sample


def _sample(boxes, classes, ignore=None, hw=(200, 300)):
    img = np.zeros((*hw, 3), np.uint8)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    ign = np.zeros(len(b), bool) if ignore is None else np.asarray(ignore)
    return Sample(img, 7, b, np.asarray(classes, np.int64), ign)


def test_targets_decode_recover_boxes_exactly():
    task = Boxes2D(classes=("a", "b"))
    s = _sample([[10.5, 20.25, 90.0, 60.0], [150, 100, 290, 190]], [0, 1])
    batch = collate([prepare_eval(s, task, EvalResize((256, 384)), with_targets=True)])
    preds = task.decode(task.oracle_maps(batch.targets), batch.meta, k=10)[0]
    top = preds.select(preds.scores > 0.99)
    order = np.argsort(top.classes)
    np.testing.assert_allclose(top.boxes[order], s.boxes, atol=1e-3)
    assert top.classes[order].tolist() == [0, 1]


def test_ignore_region_shapes_loss_but_is_never_a_detection():
    task = Boxes2D(classes=("a",))
    s = _sample([[10, 10, 80, 80], [150, 100, 290, 190]], [0, 0], ignore=[False, True])
    item = prepare_eval(s, task, EvalResize((256, 384)), with_targets=True)
    t = item.targets
    assert t["mask"].sum() == 1
    assert t["heatmap_ignore"].sum() > 0 and t["heatmap"][t["heatmap_ignore"] > 0].max() < 1.0
    batch = collate([item])
    preds = task.decode(task.oracle_maps(batch.targets), batch.meta, k=10)[0]
    assert (preds.scores > 0.5).sum() == 1


def test_two_centres_in_one_cell_lose_one_object():
    """The representation's own limit: same class, same output cell -> one peak."""
    task = Boxes2D(classes=("a",))
    s = _sample([[100, 100, 140, 140], [101, 101, 139, 139]], [0, 0])
    batch = collate([prepare_eval(s, task, EvalResize((200, 300)), with_targets=True)])
    preds = task.decode(task.oracle_maps(batch.targets), batch.meta, k=10)[0]
    assert (preds.scores > 0.99).sum() == 1


def test_loss_is_finite_and_decreases_with_better_prediction():
    task = Boxes2D(classes=("a",))
    s = _sample([[10, 10, 80, 80]], [0])
    batch = collate([prepare_eval(s, task, EvalResize((128, 128)), with_targets=True)])
    perfect = task.oracle_maps(batch.targets)
    noisy = {k: v + 0.5 * torch.randn_like(v) for k, v in perfect.items()}
    lp, ln = task.loss(perfect, batch.targets), task.loss(noisy, batch.targets)
    assert torch.isfinite(ln["loss"]) and lp["loss"] < ln["loss"]
    assert lp["size"] < 1e-3 and lp["offset"] < 1e-3


def test_flip_merge_of_mirrored_maps_is_identity():
    task = Boxes2D(classes=("a",))
    g = torch.Generator().manual_seed(0)
    maps = {"heatmap": torch.randn(1, 1, 8, 8, generator=g), "size": torch.rand(1, 2, 8, 8, generator=g) * 9}
    maps["offset"] = torch.rand(1, 2, 8, 8, generator=g)
    mirrored = {k: v.flip(-1) for k, v in maps.items()}
    merged = task.merge_flip(maps, mirrored)
    for k in maps:
        assert torch.allclose(merged[k], maps[k], atol=1e-4)


def test_oracle_on_real_coco(coco_mini):
    task = Boxes2D()
    source = task.open_dataset(coco_mini, None)
    task = task.with_classes(source.classes)
    preds = run_oracle(task, source, EvalResize((512, 512)), 100)
    metrics = task.evaluate(source, preds)
    # The encoding loses only same-class centres that share a 4-px cell and sub-pixel rounding
    assert metrics["bbox/AP"] > 0.97
    assert metrics["bbox/AP50"] > 0.99
