"""Composite tasks: several plugins on one network, each under its own prefix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centerpoint_suite import create_task
from centerpoint_suite.composite import Composite, CompositeSource
from centerpoint_suite.config import apply_overrides, experiment_from_dict, load_config, to_dict
from centerpoint_suite.engine import EvalResize, build_model, run_oracle
from centerpoint_suite.errors import UserError
from centerpoint_suite.models.base import HEATMAP_BIAS, module_key
from centerpoint_suite.tasks.boxes2d import Boxes2D
from centerpoint_suite.tasks.pose2d import Pose2D
from centerpoint_suite.types import Predictions


def test_heads_targets_and_names_are_prefixed():
    task = create_task("boxes2d+pose2d")
    assert task.name == "boxes2d+pose2d"
    assert set(task.heads()) == {f"boxes2d.{h}" for h in Boxes2D().heads()} | {f"pose2d.{h}" for h in Pose2D().heads()}
    assert task.heatmap_heads() == ("boxes2d.heatmap", "pose2d.heatmap", "pose2d.joint_heatmap")
    assert task.primary_metric() == "boxes2d/bbox/AP"


def test_model_biases_follow_the_declared_heatmap_heads():
    exp = load_config("boxes2d_pose2d_synthetic")
    exp = apply_overrides(exp, ["task.boxes2d.classes=('a','b')"])
    net = build_model(exp)
    for head in exp.task.heads():
        bias = net.heads[0][module_key(head)][-1].bias
        expected = HEATMAP_BIAS if head in exp.task.heatmap_heads() else 0.0
        assert torch.allclose(bias, torch.full_like(bias, expected)), head
    assert set(net(torch.zeros(1, 3, 64, 64))) == set(exp.task.heads())


def test_config_round_trip_and_overrides_reach_sub_tasks():
    exp = load_config("boxes2d_pose2d_synthetic")
    exp = apply_overrides(exp, ["task.pose2d.max_objects=16", "task.uncertainty=true", "task.weights=(1,0.5)"])
    assert exp.task.task("pose2d").max_objects == 16 and exp.task.uncertainty and exp.task.weights == (1.0, 0.5)
    assert experiment_from_dict(to_dict(exp)) == exp
    with pytest.raises(UserError, match="no sub-task 'mono3d'"):
        apply_overrides(exp, ["task.mono3d.max_objects=3"])


def test_tasks_whose_data_cannot_meet_are_refused():
    with pytest.raises(UserError, match="boxes2d reads coco, mono3d reads kitti"):
        create_task("boxes2d+mono3d")
    with pytest.raises(UserError, match="at least two"):
        Composite(tasks=(Boxes2D(),))


def test_uncertainty_weighting_learns_the_log_variances():
    from dataclasses import replace

    from centerpoint_suite.data import collate, prepare_eval
    from tests.tasks.test_contract import universal_sample

    task = Composite(tasks=(Boxes2D(classes=("a",)), Pose2D()), uncertainty=True, weights=(1.0, 0.5))
    assert task.loss_parameters() == {"log_var.boxes2d": 0.0, "log_var.pose2d": 0.0}
    sample = universal_sample()
    item = prepare_eval(
        replace(sample, parts={"boxes2d": sample, "pose2d": sample}), task, EvalResize((128, 416)), True
    )
    batch = collate([item])
    preds = {k: v + 0.3 * torch.randn_like(v) for k, v in task.oracle_maps(batch.targets).items()}
    s = {
        "log_var.boxes2d": torch.tensor(0.5, requires_grad=True),
        "log_var.pose2d": torch.tensor(-0.2, requires_grad=True),
    }
    out = task.loss(preds, batch.targets, s)
    lb, lp = out["boxes2d/loss"].detach(), out["pose2d/loss"].detach()
    expected = torch.exp(-s["log_var.boxes2d"]) * lb + 0.5 + torch.exp(torch.tensor(0.2)) * 0.5 * lp - 0.2
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    out["loss"].backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L: the weight of a task falls while its loss is large
    assert float(s["log_var.boxes2d"].grad) == pytest.approx(1 - float(np.exp(-0.5) * lb), rel=1e-4)
    plain = Composite(tasks=task.tasks, weights=(1.0, 0.5)).loss(preds, batch.targets)
    assert float(plain["loss"]) == pytest.approx(float(lb + 0.5 * lp), rel=1e-5)


def test_merge_and_split_give_back_each_tasks_predictions():
    task = Composite(tasks=(Boxes2D(classes=("a", "b")), Pose2D()))
    rng = np.random.default_rng(0)
    boxes = Predictions(7, rng.random((3, 4), np.float32), np.array([0.9, 0.5, 0.2], np.float32), np.array([1, 0, 1]))
    kps = rng.random((2, 17, 3)).astype(np.float32)
    people = Predictions(7, rng.random((2, 4), np.float32), np.array([0.7, 0.1], np.float32), np.array([0, 0]))
    people.extras["keypoints"] = kps
    merged = task.merge([boxes, people])
    assert merged.scores.tolist() == sorted(merged.scores.tolist(), reverse=True)
    assert [task.classes[c] for c in merged.classes] == ["b", "person", "a", "b", "person"]
    b, p = task.split(merged, "boxes2d"), task.split(merged, "pose2d")
    assert np.array_equal(b.boxes, boxes.boxes) and np.array_equal(b.classes, boxes.classes) and not b.extras
    assert np.array_equal(p.extras["keypoints"], kps) and np.array_equal(p.classes, people.classes)


def test_oracle_equals_the_single_task_oracles(coco_mini):
    """Acceptance: boxes2d+pose2d's oracle scores what boxes2d's and pose2d's oracles score alone."""
    resize = EvalResize((384, 384))
    composite = create_task("boxes2d+pose2d")
    source = composite.open_dataset(coco_mini, None)
    assert isinstance(source, CompositeSource)
    composite = composite.for_source(source)
    metrics = composite.evaluate(source, run_oracle(composite, source, resize, 100), None)
    for name in ("boxes2d", "pose2d"):
        single = composite.task(name)
        alone = single.evaluate(source.parts[name], run_oracle(single, source.parts[name], resize, 100), None)
        for key, value in alone.items():
            assert metrics[f"{name}/{key}"] == pytest.approx(value, nan_ok=True), (name, key)
    assert metrics["boxes2d/bbox/AP"] > 0.9 and metrics["pose2d/keypoints/AP"] > 0.9


def test_train_eval_predict_a_composite_from_the_cli(coco_mini, tmp_path):
    """One network for boxes and poses on real COCO images: train (learned task weights), eval, predict."""
    import json

    from click.testing import CliRunner

    from centerpoint_suite.cli.main import main

    def run(*args):
        res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res

    out = tmp_path / "run"
    sets = [
        "train.epochs=1", "train.batch_size=16", "train.time_budget_min=0", "data.input_hw=(64,64)",
        "data.test_input_hw=(64,64)", "data.workers=0", "data.train_split=val2017", "data.val_split=val2017",
        "task.uncertainty=true", "train.tensorboard=false",
    ]  # fmt: skip
    args = ["train", "--task", "boxes2d+pose2d", "--config", "boxes2d_pose2d_synthetic", "--data", coco_mini]
    run(*args, "--out", out, *[x for s in sets for x in ("--set", s)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"boxes2d/bbox/AP", "pose2d/keypoints/AP", "pose2d/bbox/AP"} <= set(metrics)
    ckpt = torch.load(out / "last.pth", weights_only=True)
    assert set(ckpt["loss_params"]) == {"log_var.boxes2d", "log_var.pose2d"}
    assert all(float(v) != 0.0 for v in ckpt["loss_params"].values())  # trained away from their start
    assert len(ckpt["experiment"]["task"]["tasks"][0]["classes"]) == 80  # boxes2d took the file's classes
    run("eval", "--checkpoint", out / "last.pth", "--json", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()).keys() == {k for k in metrics if "/" in k}
    image = sorted((coco_mini / "val2017").iterdir())[0]
    run("predict", "--checkpoint", out / "last.pth", image, "--out", tmp_path / "pred", "--threshold", "0.0")
    dets = json.loads((tmp_path / "pred" / "detections.json").read_text())["images"][0]["detections"]
    assert dets and all({"box", "score", "class", "task"} <= set(d) for d in dets)
    people = [d for d in dets if d["task"] == 1]  # pose2d's detections carry joints, boxes2d's none
    assert people and all(len(d["keypoints"]) == 17 for d in people)
    assert all("keypoints" not in d for d in dets if d["task"] == 0)
    assert (tmp_path / "pred" / f"{image.stem}_pred.jpg").is_file()
