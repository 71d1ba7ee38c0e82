"""Running an original CenterNet checkpoint from the CLI: --weights --arch --task."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from click.testing import CliRunner

from centerpoint_suite.cli.main import main
from centerpoint_suite.zoo import original_experiment


def _golden():
    spec = importlib.util.spec_from_file_location("cp_golden", Path(__file__).parents[1] / "models" / "golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_with_original_checkpoint(reference_dir, coco_mini, tmp_path):
    state = _golden().golden_state_dict(reference_dir / "res18_boxes2d.keys.json")
    ckpt = tmp_path / "ctdet_coco_res18.pth"
    torch.save({"epoch": 140, "state_dict": {f"module.{k}": v for k, v in state.items()}}, ckpt)

    exp = original_experiment("res_18", "boxes2d", ckpt)
    assert len(exp.task.classes) == 80 and exp.task.classes[0] == "person"
    assert exp.data.normalization == "original_coco" and exp.data.test_mode == "keep_res"

    image = sorted((coco_mini / "val2017").iterdir())[0]
    out = tmp_path / "pred"
    res = CliRunner().invoke(
        main,
        ["predict", "--weights", str(ckpt), "--arch", "res18", "--task", "boxes2d", str(image), "--out", str(out),
         "--threshold", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    dets = json.loads((out / "detections.json").read_text())["images"][0]["detections"]
    assert dets and all(d["class"] in exp.task.classes for d in dets)


def test_weights_without_arch_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["predict", "--weights", str(tmp_path / "x.pth"), "x.jpg", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "--arch" in res.output
