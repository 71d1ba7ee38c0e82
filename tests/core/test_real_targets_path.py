"""The 80-class COCO-mini training path: targets reach the loss unchanged through the data
workers, and the chunked focal loss equals the whole-tensor formula on those real targets."""

from __future__ import annotations

import pytest
import torch

from centerpoint_suite.data import TrainDataset, collate
from centerpoint_suite.loading import train_loader
from centerpoint_suite.losses import focal_loss, focal_terms
from centerpoint_suite.sampling import GlobalBatchSampler
from centerpoint_suite.tasks.boxes2d import Boxes2D
from centerpoint_suite.transforms import AugmentConfig


@pytest.fixture(scope="module")
def coco_batch_parts(coco_mini):
    if not coco_mini.exists():
        pytest.skip("real COCO-mini data not available")
    task = Boxes2D()
    source = task.open_dataset(coco_mini, "val2017")
    task = task.for_source(source)
    dataset = TrainDataset(source, task, (384, 384), AugmentConfig(), seed=3)
    sampler = GlobalBatchSampler(len(source), 8, seed=3)
    return task, dataset, sampler


def test_targets_through_a_worker_are_bitwise_those_built_in_process(coco_batch_parts):
    task, dataset, sampler = coco_batch_parts
    sampler.set_epoch(1)
    keys = next(iter(sampler))
    direct = collate([dataset[k] for k in keys])
    loader = train_loader(dataset, sampler, collate, workers=1)
    via_worker = next(iter(loader))
    assert len(task.classes) == 80
    assert set(via_worker.targets) == set(direct.targets) >= {"heatmap", "heatmap_ignore", "indices", "mask"}
    for name, t in direct.targets.items():
        w = via_worker.targets[name]
        assert w.dtype == t.dtype and w.shape == t.shape, name
        assert torch.equal(w, t), name
    assert direct.targets["heatmap"].shape == (8, 80, 96, 96)
    assert int(direct.targets["mask"].sum()) > 8  # real objects, not an empty batch
    assert torch.equal(via_worker.images, direct.images)


def test_chunked_focal_loss_on_real_targets_equals_the_formula(coco_batch_parts):
    task, dataset, sampler = coco_batch_parts
    sampler.set_epoch(0)
    batch = collate([dataset[k] for k in next(iter(sampler))])
    hm, ignore = batch.targets["heatmap"], batch.targets["heatmap_ignore"]
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(hm.shape, generator=g) * 2 - 2.19).contiguous(memory_format=torch.channels_last)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    chunked = focal_loss(a, hm, ignore)
    total, positives = focal_terms(b, hm, ignore)
    whole = -total / positives
    chunked.backward()
    whole.backward()
    assert positives > 0
    assert torch.allclose(chunked, whole, rtol=1e-5)
    assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-10)
