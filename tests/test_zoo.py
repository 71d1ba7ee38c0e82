"""Original CenterNet checkpoints: key conversion, golden outputs, and clear errors on mismatch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from centerpoint_suite.errors import UserError
from centerpoint_suite.models import build_network
from centerpoint_suite.zoo import (
    ORIGINAL_ARCHS,
    ORIGINAL_HEAD_KEYS,
    convert_original_state_dict,
    load_original_checkpoint,
)


def _load_golden_helpers():
    # tests/ is not a package: load the helper module by path (robust to pytest's import mode).
    spec = importlib.util.spec_from_file_location("centerpoint_golden", Path(__file__).parent / "models" / "golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_golden = _load_golden_helpers()
golden_input, golden_state_dict, our_heads = _golden.golden_input, _golden.golden_state_dict, _golden.our_heads

NETWORKS = [
    "res18_boxes2d",
    "resdcn18_boxes2d",
    "dla34_boxes2d",
    "dla34_pose2d",
    "dla34_mono3d",
    "hourglass104_boxes2d",
    "res101_boxes2d",
    "resdcn101_boxes2d",
]


def _entry(reference_dir: Path, name: str) -> dict:
    return json.loads((reference_dir / "index.json").read_text())[name]


def _save_original(path: Path, state: dict, prefix: str = "", extra: dict | None = None) -> Path:
    sd = {prefix + k: v for k, v in state.items()}
    sd.update(extra or {})
    torch.save({"epoch": 140, "state_dict": sd, "optimizer": {"state": {}}}, path)
    return path


def test_index_lists_every_network(reference_dir):
    index = json.loads((reference_dir / "index.json").read_text())
    assert set(index) == set(NETWORKS)
    assert all(e["arch"] in ORIGINAL_ARCHS for e in index.values())


@pytest.mark.parametrize("name", NETWORKS)
def test_every_reference_network_converts(reference_dir, name):
    entry = _entry(reference_dir, name)
    keys = json.loads((reference_dir / f"{name}.keys.json").read_text())
    # Uninitialised tensors of the right shapes (values do not matter here), golden values for the heads.
    golden = {k: torch.empty(s) for k, s in keys.items()}
    golden.update({k: _golden.golden_tensor(k, s) for k, s in keys.items() if k.split(".")[0] in entry["heads"]})
    with torch.device("meta"):  # shapes only: skip weight initialisation (hourglass has 190M parameters)
        model = build_network(ORIGINAL_ARCHS[entry["arch"]], our_heads(entry))
    converted = convert_original_state_dict(golden, model)  # raises on any missing/unexpected/mis-shaped key
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True, assign=True)
    # Spot-check the head translation, per stack for the hourglass.
    for short, ours in ORIGINAL_HEAD_KEYS.items():
        if short not in entry["heads"]:
            continue
        if model.num_stacks > 1:
            for s in range(model.num_stacks):
                got = model.heads[s][ours][2].weight
                torch.testing.assert_close(got, golden[f"{short}.{s}.1.weight"], rtol=0, atol=0)
        else:
            torch.testing.assert_close(model.heads[0][ours][0].bias, golden[f"{short}.0.bias"], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "arch", "prefix"),
    [
        ("res18_boxes2d", "res18", ""),
        ("resdcn18_boxes2d", "resdcn_18", "module."),
        ("dla34_boxes2d", "dla34", "module."),
    ],
)
def test_golden_outputs(reference_dir, tmp_path, name, arch, prefix):
    entry = _entry(reference_dir, name)
    golden = golden_state_dict(reference_dir / f"{name}.keys.json")
    extra = {}
    if arch.startswith("dla"):  # original DLA checkpoints carry the unused ImageNet classifier
        extra = {prefix + "base.fc.weight": torch.zeros(1000, 512, 1, 1), prefix + "base.fc.bias": torch.zeros(1000)}
    path = _save_original(tmp_path / "ckpt.pth", golden, prefix, extra)
    model = load_original_checkpoint(path, arch, our_heads(entry))
    assert not model.training
    with torch.no_grad():
        out = model(golden_input(*entry["input_hw"]))
    expected = np.load(reference_dir / f"{name}.outputs.npz")
    assert set(expected.files) == set(entry["heads"])
    for short in expected.files:
        ref = expected[short]
        ours = out[ORIGINAL_HEAD_KEYS[short]][:, : ref.shape[1]].numpy()
        assert ours.shape == ref.shape
        rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
        assert rel < 1e-4, f"{name} {short}: relative error {rel:.2e}"


class _Task:
    def heads(self) -> dict[str, int]:
        return {"heatmap": 80, "size": 2, "offset": 2}


def test_task_object_and_head_conv_from_checkpoint(reference_dir, tmp_path):
    golden = golden_state_dict(reference_dir / "res18_boxes2d.keys.json")
    path = _save_original(tmp_path / "res18.pth", golden)
    model = load_original_checkpoint(path, "res_18", _Task())
    assert model.heads[0]["heatmap"][0].out_channels == 64
    torch.testing.assert_close(model.body.layer2[0].conv1.weight, golden["layer2.0.conv1.weight"], rtol=0, atol=0)


def test_wrong_arch_lists_missing_and_misshaped_keys(reference_dir, tmp_path):
    golden = golden_state_dict(reference_dir / "res18_boxes2d.keys.json")
    path = _save_original(tmp_path / "res18.pth", golden, "module.")
    with pytest.raises(UserError) as err:
        load_original_checkpoint(path, "resdcn18", _Task())
    msg = str(err.value)
    assert str(path) in msg
    assert "missing" in msg and "deconv_layers.0.conv_offset_mask.weight" in msg
    assert "mis-shaped" in msg and "deconv_layers.0.weight: (512, 256, 4, 4) in checkpoint" in msg


def test_wrong_classes_and_extra_head(reference_dir, tmp_path):
    golden = golden_state_dict(reference_dir / "dla34_pose2d.keys.json")
    path = _save_original(tmp_path / "pose.pth", golden)
    heads = {"heatmap": 3, "size": 2, "offset": 2}  # a 3-class box task: no joint heads, wrong classes
    with pytest.raises(UserError) as err:
        load_original_checkpoint(path, "dla34", heads)
    msg = str(err.value)
    assert "unexpected" in msg and "hps.0.weight" in msg and "hm_hp.2.bias" in msg
    assert "hm.2.weight: (1, 256, 1, 1) in checkpoint, (3, 256, 1, 1)" in msg


def test_registered_task_name(reference_dir, tmp_path):
    golden = golden_state_dict(reference_dir / "res18_boxes2d.keys.json")
    path = _save_original(tmp_path / "res18.pth", golden)
    # a bare task name takes its class count from the checkpoint (80 COCO classes here)
    model = load_original_checkpoint(path, "res18", "boxes2d")
    assert model.heads_spec["heatmap"] == 80
    # an explicit task object is checked against the checkpoint: 1 class != 80
    from centerpoint_suite.tasks.boxes2d import Boxes2D

    with pytest.raises(UserError, match="hm.2.weight"):
        load_original_checkpoint(path, "res18", Boxes2D(classes=("only",)))
    with pytest.raises(UserError, match="unknown task 'no_such_task'"):
        load_original_checkpoint(path, "res18", "no_such_task")


def test_malformed_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(UserError, match="garbage.pth: truncated or not a PyTorch checkpoint"):
        load_original_checkpoint(bad, "res18", _Task())
    with pytest.raises(UserError, match="missing.pth: file not found"):
        load_original_checkpoint(tmp_path / "missing.pth", "res18", _Task())
    odd = tmp_path / "odd.pth"
    torch.save({"epoch": 1, "state_dict": {"a": 1}}, odd)
    with pytest.raises(UserError, match="odd.pth: expected an original CenterNet checkpoint"):
        load_original_checkpoint(odd, "res18", _Task())


def test_unknown_arch(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"epoch": 1, "state_dict": {"hm.0.weight": torch.zeros(64, 256, 3, 3)}}, path)
    with pytest.raises(UserError, match="unknown network 'vgg16'"):
        load_original_checkpoint(path, "vgg16", _Task())


def test_roundtrip_without_reference(tmp_path):
    # Our own res18 written under original names loads back identically (no ../shared needed).
    model = build_network("res18", {"heatmap": 2, "size": 2, "joint_offsets": 4}).eval()
    back = {"heatmap": "hm", "size": "wh", "joint_offsets": "hps"}
    original = {}
    for k, v in model.state_dict().items():
        if k.startswith("body."):
            original[k[5:]] = v
        else:
            _, _, head, rest = k.split(".", 3)
            original[f"{back[head]}.{rest}"] = v
    path = _save_original(tmp_path / "own.pth", original, "module.")
    loaded = load_original_checkpoint(path, "res18", {"heatmap": 2, "size": 2, "joint_offsets": 4})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
