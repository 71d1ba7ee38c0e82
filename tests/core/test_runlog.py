"""The run log: log.jsonl lines, TensorBoard scalars and images (when installed), rank 0 only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from centerpoint_suite.runlog import RunLog


def test_jsonl_and_hooks_on_rank0_only(tmp_path):
    seen = []
    main = RunLog(tmp_path / "a", enabled=True, tensorboard=False, hooks=[seen.append])
    main.epoch({"epoch": 1, "train/loss": 2.0})
    other = RunLog(tmp_path / "b", enabled=False, tensorboard=True, hooks=[seen.append])
    other.epoch({"epoch": 1})
    lines = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"epoch": 1, "train/loss": 2.0}] and seen == [
        {"epoch": 1, "train/loss": 2.0}
    ]
    assert not (tmp_path / "b").exists()


def test_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = RunLog(tmp_path, enabled=True, tensorboard=True)
    run.step(10, {"loss": 1.5, "heatmap": 1.0}, lr=0.01)
    run.epoch({"epoch": 1, "iteration": 10, "train/loss": 1.4, "bbox/AP": 0.25, "time_s": 3.0})
    run.images(10, [("img1", np.zeros((8, 8, 3), np.uint8))])
    run.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/heatmap", "train/lr", "val/bbox/AP"} <= set(tags["scalars"])
    assert acc.Scalars("val/bbox/AP")[0].value == pytest.approx(0.25)
    assert "val/img1" in tags["images"]
