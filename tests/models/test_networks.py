"""Contract tests over every registered network: stride-4 raw maps named by our heads."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision.models._api as tv_api

from centerpoint_suite.errors import UserError
from centerpoint_suite.models import build_network, list_networks

HEADS = {"heatmap": 3, "size": 2, "offset": 2}
ORIGINAL = [
    "res18",
    "res34",
    "res50",
    "res101",
    "resdcn18",
    "resdcn34",
    "resdcn50",
    "resdcn101",
    "dla34",
    "hourglass104",
]


def test_original_networks_registered():
    assert set(ORIGINAL) <= set(list_networks())


@pytest.mark.parametrize("arch", ["res18", "res50", "resdcn18", "dla34"])
def test_forward_shapes_and_heatmap_prior(arch):
    model = build_network(arch, HEADS).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert set(out) == set(HEADS)
    for name, ch in HEADS.items():
        assert out[name].shape == (1, ch, 16, 24), name
    # Heatmap heads start at the focal-loss prior sigmoid(-2.19) ~ 0.1 only through their bias.
    assert model.heads[0]["heatmap"][-1].bias.eq(-2.19).all()


@pytest.fixture(scope="module")
def hourglass():
    return build_network("hourglass104", HEADS).eval()  # ~190M parameters: build once


@pytest.mark.parametrize(
    ("arch", "head_conv", "feat"),
    [("res18", 64, 256), ("res101", 64, 256), ("resdcn34", 64, 64), ("dla34", 256, 64)],
)
def test_default_head_conv(arch, head_conv, feat):
    model = build_network(arch, {"heatmap": 1})
    first = model.heads[0]["heatmap"][0]
    assert (first.in_channels, first.out_channels) == (feat, head_conv)


def test_hourglass_two_stacks(hourglass):
    model = hourglass
    assert model.num_stacks == 2
    for stack in model.heads:
        first = stack["heatmap"][0]
        assert (first.in_channels, first.out_channels) == (256, 256)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        stacks = model.forward_stacks(x)
        last = model(x)
    assert len(stacks) == 2
    for name, ch in HEADS.items():
        assert stacks[0][name].shape == stacks[1][name].shape == (1, ch, 32, 32)
        torch.testing.assert_close(last[name], stacks[1][name])
    # The two stacks have their own heads: their outputs differ.
    assert not torch.allclose(stacks[0]["size"], stacks[1]["size"])


def test_train_step_reaches_trunk():
    model = build_network("resdcn18", {"heatmap": 1, "size": 2}).train()
    out = model(torch.randn(2, 3, 32, 32))
    (out["heatmap"].mean() + out["size"].mean()).backward()
    assert model.body.conv1.weight.grad is not None and model.body.conv1.weight.grad.abs().sum() > 0
    dcn = model.body.deconv_layers[0]
    assert dcn.conv_offset_mask.weight.grad is not None


def test_pretrained_offline_names_the_cache_file(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_api.WeightsEnum, "get_state_dict", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserError, match=r"resnet18-[0-9a-f]+\.pth") as err:
        build_network("res18", HEADS, pretrained=True)
    assert str(tmp_path / "checkpoints") in str(err.value)


def test_pretrained_dla_offline_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(UserError, match="dla34-ba72cf86.pth"):
        build_network("dla34", HEADS, pretrained=True)


def test_pretrained_loads_cached_torchvision_weights(monkeypatch):
    # Cached weights (here: a fake state dict) go into the trunk; nothing is fetched.
    trunk = build_network("res18", HEADS).body
    fake = {k: torch.full_like(v, 0.25) for k, v in trunk.state_dict().items() if not k.startswith("deconv")}
    fake["fc.weight"] = torch.zeros(1000, 512)
    monkeypatch.setattr(tv_api.WeightsEnum, "get_state_dict", lambda self, *a, **k: fake)
    model = build_network("res18", HEADS, pretrained=True)
    assert model.body.layer3[1].conv2.weight.eq(0.25).all()
    assert not model.body.deconv_layers[0].weight.eq(0.25).all()
