"""The CLI end to end through click's CliRunner: train -> eval -> predict -> export, oracle,
and the errors users see for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from centerpoint_suite.cli.main import main
from centerpoint_suite.datasets.synthetic_shapes import generate_shapes

TINY = [
    "--set", "train.epochs=1",
    "--set", "train.batch_size=4",
    "--set", "train.time_budget_min=0",
    "--set", "data.input_hw=(64,64)",
    "--set", "data.test_input_hw=(64,64)",
    "--set", "data.workers=0",
]  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("shapes"), num_train=8, num_val=4, image_size=(64, 64))


def run(*args: str, ok: bool = True):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def test_tasks_lists_registered_tasks():
    out = run("tasks").output
    assert "boxes2d" in out and "networks:" in out


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run("train", "--task", "boxes2d", "--config", "boxes2d_synthetic", "--data", shapes, "--out", out, *TINY)
    return out


def test_train_writes_checkpoints_log_and_metrics(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert {"bbox/AP", "bbox/AP50", "bbox/AP75", "bbox/APs", "bbox/APm", "bbox/APl"} <= set(metrics)
    assert 0.0 <= metrics["bbox/AP"] <= 1.0
    assert (trained / "last.pth").is_file()
    log = [json.loads(line) for line in (trained / "log.jsonl").read_text().splitlines()]
    assert log[-1]["epoch"] == 1 and "train/loss" in log[-1]


def test_resume_continues_from_last_epoch(trained, shapes, tmp_path):
    out = tmp_path / "resumed"
    args = [a if a != "train.epochs=1" else "train.epochs=2" for a in TINY]
    run(
        "train",
        "--config",
        "boxes2d_synthetic",
        "--data",
        shapes,
        "--out",
        out,
        "--resume",
        trained / "last.pth",
        *args,
    )
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [2]


def test_eval_uses_only_the_checkpoint(trained, tmp_path):
    path = tmp_path / "m.json"
    run("eval", "--checkpoint", trained / "last.pth", "--json", path)
    assert "bbox/AP" in json.loads(path.read_text())


def test_predict_writes_images_and_json(trained, shapes, tmp_path):
    out = tmp_path / "pred"
    run("predict", "--checkpoint", trained / "last.pth", shapes / "val", "--out", out, "--threshold", "0.0")
    data = json.loads((out / "detections.json").read_text())
    assert len(data["images"]) == 4
    assert len(list(out.glob("*_pred.jpg"))) == 4
    img = cv2.imread(str(next(out.glob("*_pred.jpg"))))
    assert img.shape == (64, 64, 3)


def test_oracle_on_synthetic_split(shapes, tmp_path):
    path = tmp_path / "o.json"
    run("oracle", "--task", "boxes2d", "--data", shapes, "--split", "val", "--json", path,
        "--set", "data.test_input_hw=(64,64)")  # fmt: skip
    assert json.loads(path.read_text())["bbox/AP"] > 0.8


# ---- bad input ---------------------------------------------------------------------------------
def test_unknown_task():
    res = run("train", "--task", "nope", ok=False)
    assert res.exit_code == 2 and "nope" in res.output


def test_bad_set_key(shapes):
    res = run("train", "--task", "boxes2d", "--data", shapes, "--set", "train.bogus=1", ok=False)
    assert res.exit_code == 1 and "bogus" in res.output and "batch_size" in res.output


def test_bad_set_value(shapes):
    res = run("train", "--task", "boxes2d", "--data", shapes, "--set", "train.batch_size=many", ok=False)
    assert res.exit_code == 1 and "train.batch_size" in res.output


def _copy_dataset(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_missing_image_is_named(shapes, tmp_path):
    root = _copy_dataset(shapes, tmp_path / "d")
    victim = sorted((root / "val").iterdir())[0]
    victim.unlink()
    res = run("oracle", "--task", "boxes2d", "--data", root, "--split", "val", ok=False)
    assert res.exit_code == 1 and victim.name in res.output


def test_malformed_json_names_file_and_line(shapes, tmp_path):
    root = _copy_dataset(shapes, tmp_path / "d")
    ann = root / "annotations" / "instances_val.json"
    ann.write_text('{"images": [\n  {"id": 1,, }\n]}')
    res = run("oracle", "--task", "boxes2d", "--data", root, "--split", "val", ok=False)
    assert res.exit_code == 1 and "instances_val.json:2:" in res.output


def test_empty_dataset(shapes, tmp_path):
    root = _copy_dataset(shapes, tmp_path / "d")
    ann = root / "annotations" / "instances_val.json"
    data = json.loads(ann.read_text())
    data["images"], data["annotations"] = [], []
    ann.write_text(json.dumps(data))
    res = run("oracle", "--task", "boxes2d", "--data", root, "--split", "val", ok=False)
    assert res.exit_code == 1 and "empty dataset" in res.output


def test_missing_checkpoint(tmp_path):
    res = run("eval", "--checkpoint", tmp_path / "none.pth", ok=False)
    assert res.exit_code == 1 and "none.pth" in res.output


def test_not_our_checkpoint(tmp_path):
    import torch

    p = tmp_path / "orig.pth"
    torch.save({"epoch": 1, "state_dict": {}}, p)
    res = run("eval", "--checkpoint", p, ok=False)
    assert res.exit_code == 1 and "original CenterNet" in res.output


def test_predict_missing_input(trained, tmp_path):
    res = run("predict", "--checkpoint", trained / "last.pth", tmp_path / "nothing.jpg", "--out", tmp_path, ok=False)
    assert res.exit_code == 1 and "nothing.jpg" in res.output


def test_config_task_mismatch():
    res = run("train", "--task", "boxes2d", "--config", "boxes2d_synthetic", "--set", "x=1", ok=False)
    assert res.exit_code == 1


def test_corrupt_image_is_named(shapes, tmp_path):
    root = _copy_dataset(shapes, tmp_path / "d")
    victim = sorted((root / "val").iterdir())[0]
    victim.write_bytes(b"not an image")
    res = run("oracle", "--task", "boxes2d", "--data", root, "--split", "val", ok=False)
    assert res.exit_code == 1 and victim.name in res.output


def test_export_torchscript_matches_model(trained, tmp_path):
    import torch

    from centerpoint_suite.checkpoint import load_checkpoint
    from centerpoint_suite.engine import build_model

    out = tmp_path / "m.pt"
    run("export", "--checkpoint", trained / "last.pth", "--out", out)
    exp, payload = load_checkpoint(trained / "last.pth")
    model = build_model(exp).eval()
    model.load_state_dict(payload["model"])
    scripted = torch.jit.load(str(out))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        got = scripted(x)
    for name, tensor in zip(model.head_names, got):
        assert torch.allclose(tensor, ref[name], atol=1e-5)


def test_bench_prints_ratios():
    import torch

    out = run("bench", "--repeat", "1", "--arch", "small").output
    assert "speed-up" in out and "box heatmap targets" in out
    assert torch.is_grad_enabled()  # the bench must not leave autograd switched off


def test_checkpoint_of_another_network_is_named(trained):
    res = run("eval", "--checkpoint", trained / "last.pth", "--set", "model.arch=res18", ok=False)
    assert res.exit_code == 1 and "weights do not fit this network" in res.output and "Traceback" not in res.output
