"""Contract tests over the task registry: a task is tested the day it is registered.

Every task must build fixed-shape targets, score them with a finite loss that a perfect
prediction beats, decode its own targets back to detections in original pixels, merge a
flip-test pair, and train one step of a real network.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import centerpoint_suite
from centerpoint_suite.composite import Composite
from centerpoint_suite.data import collate, prepare_eval
from centerpoint_suite.loss_model import LossModel
from centerpoint_suite.models import build_network
from centerpoint_suite.models.base import module_key
from centerpoint_suite.registry import TASKS
from centerpoint_suite.transforms import EvalResize
from centerpoint_suite.types import Predictions, Sample

P2 = np.array([[721.5, 0, 609.6, 44.9], [0, 721.5, 172.9, 0.2], [0, 0, 1, 0.003]], np.float32)


def _project(p: np.ndarray) -> np.ndarray:
    q = P2 @ np.append(p, 1.0)
    return q[:2] / q[2]


def universal_sample() -> Sample:
    """Two objects with boxes, 17 joints and consistent 3D boxes, so every task finds its fields."""
    dims = np.array([[1.5, 1.6, 3.9], [1.5, 1.7, 4.2]], np.float32)
    loc = np.array([[-3.0, 1.65, 15.0], [4.0, 1.65, 25.0]], np.float32)
    ry = np.array([0.3, -1.2], np.float32)
    boxes = []
    for (h, w, l), (x, y, z), r in zip(dims, loc, ry):
        c, s = np.cos(r), np.sin(r)
        corners = []
        for dx in (-l / 2, l / 2):
            for dz in (-w / 2, w / 2):
                for dy in (0.0, -h):
                    corners.append(_project(np.array([x + c * dx + s * dz, y + dy, z - s * dx + c * dz])))
        corners = np.array(corners)
        boxes.append([*corners.min(0), *corners.max(0)])
    boxes = np.array(boxes, np.float32)
    alpha = ry - np.arctan2(loc[:, 0], loc[:, 2])
    kps = np.zeros((2, 17, 3), np.float32)
    rng = np.random.default_rng(0)
    for i, b in enumerate(boxes):
        kps[i, :, 0] = rng.uniform(b[0] + 2, b[2] - 2, 17)
        kps[i, :, 1] = rng.uniform(b[1] + 2, b[3] - 2, 17)
        kps[i, :, 2] = 2
    objects3d = {
        "dimensions": dims,
        "location": loc,
        "rotation_y": ry,
        "alpha": alpha.astype(np.float32),
        "truncated": np.zeros(2, np.float32),
        "occluded": np.zeros(2, np.float32),
    }
    image = np.zeros((375, 1242, 3), np.uint8)
    return Sample(image, "000001", boxes, np.array([0, 0]), np.zeros(2, bool), kps, P2, objects3d)


def _single(name: str):
    task = TASKS.get(name)()
    return task if task.classes else task.with_classes(("thing",))


def composable_pairs() -> list[str]:
    """Every pair of registered tasks whose data can meet in one sample (same dataset format)."""
    names = TASKS.names()
    return [
        f"{a}+{b}"
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if TASKS.get(a).dataset_format == TASKS.get(b).dataset_format
    ]


def _task(name: str):
    if "+" not in name:
        return _single(name)
    return Composite(tasks=tuple(_single(n) for n in name.split("+")))


def _sample_for(task, sample: Sample) -> Sample:
    """The universal sample, given to every sub-task of a composite as its own part."""
    if not isinstance(task, Composite):
        return sample
    return replace(sample, parts={t.name: sample for t in task.tasks})


@pytest.fixture(scope="module")
def sample() -> Sample:
    return universal_sample()


def test_registry_lists_the_three_tasks():
    assert {"boxes2d", "mono3d", "pose2d"} <= set(centerpoint_suite.list_tasks())


def test_the_boxes_and_pose_pair_composes():
    assert "boxes2d+pose2d" in composable_pairs()


@pytest.mark.parametrize("name", TASKS.names() + composable_pairs())
def test_targets_decode_loss_and_one_training_step(name, sample):
    task = _task(name)
    item = prepare_eval(_sample_for(task, sample), task, EvalResize((128, 416)), with_targets=True)
    batch = collate([item, item])
    heads = task.heads()
    heatmaps = task.heatmap_heads()
    assert heatmaps and set(heatmaps) <= set(heads)
    # fixed shapes: each heatmap target has its head's channels at stride 4
    for h in heatmaps:
        assert batch.targets[h].shape == (2, heads[h], 32, 104)
    perfect = task.oracle_maps(batch.targets)
    assert set(heads) <= set(perfect)
    preds = task.decode(perfect, batch.meta, k=20)
    assert len(preds) == 2 and all(isinstance(p, Predictions) for p in preds)
    found = preds[0].select(preds[0].scores > 0.9)
    sub_tasks = task.tasks if isinstance(task, Composite) else (task,)
    assert len(found) == 2 * len(sub_tasks)  # both objects come back, once per task
    # the decoded boxes are in original pixels: centres close to the annotated boxes
    for box in sample.boxes:
        ctr = (box[:2] + box[2:]) / 2
        d = np.linalg.norm((found.boxes[:, :2] + found.boxes[:, 2:]) / 2 - ctr, axis=1).min()
        assert d < 0.25 * (box[2] - box[0])
    # a perfect prediction beats a perturbed one
    noisy = {k: v + 0.3 * torch.randn_like(v) for k, v in perfect.items()}
    lp, ln = task.loss(perfect, batch.targets), task.loss(noisy, batch.targets)
    assert torch.isfinite(ln["loss"]) and lp["loss"] < ln["loss"]
    # flip-test merge of a map pair and its mirror image gives raw maps of the same shapes
    merged = task.merge_flip(perfect, {k: v.flip(-1) for k, v in perfect.items()})
    assert all(merged[k].shape == perfect[k].shape for k in heads)
    # two optimisation steps of a real network (with the task's learned loss parameters)
    net = build_network("small", heads, heatmap_heads=heatmaps)
    for h in heatmaps:  # the focal-loss prior on every heatmap head, none elsewhere
        assert float(net.heads[0][module_key(h)][-1].bias.detach().mean()) == pytest.approx(-2.19)
    model = LossModel(net, task)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(2, 3, 128, 416)
    for _ in range(2):
        losses = model(x, batch.targets)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        assert torch.isfinite(losses["loss"])
    assert {k: v.shape[1] for k, v in net(x).items()} == heads
