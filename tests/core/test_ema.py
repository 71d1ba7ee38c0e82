"""The weight average (``train.ema_decay``) against a plain twin of its formula, and what a
training run with it validates and saves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from centerpoint_suite.datasets.synthetic_shapes import generate_shapes
from centerpoint_suite.ema import WeightAverage
from tests.core.runs import TINY_TRAIN, env, run, train_cmd


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _train_like(net: nn.Module, steps: int, average: WeightAverage | None = None) -> list[dict[str, torch.Tensor]]:
    """Random weight changes and batch-norm updates; the state after each step."""
    states = []
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
            net.train()(torch.randn(2, 3, 8, 8, generator=gen))
        if average is not None:
            average.update(net)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
    return states


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_average_equals_a_plain_twin(decay):
    net = _net()
    average = WeightAverage(net, decay)
    states = _train_like(net, 30, average)
    want = {k: v.double() for k, v in states[0].items()}  # the first update copies
    for n, state in enumerate(states[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))
        want = {k: d * want[k] + (1 - d) * state[k].double() for k in want}
    got = average.net.state_dict()
    assert average.updates == 30
    for key, value in got.items():
        if value.is_floating_point():
            torch.testing.assert_close(value.double(), want[key], rtol=1e-5, atol=1e-5, msg=key)
        else:  # the batch counter follows the network
            assert torch.equal(value, states[-1][key]), key


def test_average_lags_the_weights_and_keeps_no_gradients():
    net = _net()
    average = WeightAverage(net, 0.99)
    _train_like(net, 50, average)
    assert all(not p.requires_grad for p in average.net.parameters())
    moved = [float((a - w.detach()).norm()) for a, w in zip(average.net.parameters(), net.parameters())]
    assert min(moved) > 0  # the average is not the last weights


@pytest.mark.parametrize("decay", [1.0, 1.5])
def test_a_decay_outside_the_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="train.ema_decay"):
        WeightAverage(_net(), decay)


@pytest.mark.slow
def test_a_run_validates_and_deploys_the_average(tmp_path: Path):
    """``best.pth`` / ``last.pth`` hold the average as their weights (what eval, predict and export
    read); ``centerpoint eval`` of ``last.pth`` gives the run's own last validation numbers."""
    data = generate_shapes(tmp_path / "shapes", num_train=8, num_val=4, image_size=(80, 80))
    out = tmp_path / "run"
    run(train_cmd(*TINY_TRAIN, "--data", data, "--out", out, "--set", "train.epochs=2",
                  "--set", "train.batch_size=4", "--set", "train.ema_decay=0.9"))  # fmt: skip
    saved = torch.load(out / "last.pth", weights_only=True)
    assert saved["ema_updates"] == 4
    assert not all(torch.equal(saved["model"][k], saved["train_model"][k]) for k in saved["model"])
    final = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()][-1]
    res = subprocess.run(
        [*train_cmd()[:-1], "eval", "--checkpoint", str(out / "last.pth"), "--data", str(data), "--json",
         str(tmp_path / "eval.json")],
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["bbox/AP"] == pytest.approx(final["bbox/AP"], abs=1e-9)


@pytest.mark.parametrize("value", ["-0.1", "1.0"])
def test_a_bad_ema_decay_names_the_option(tmp_path: Path, value):
    data = generate_shapes(tmp_path / "shapes", num_train=2, num_val=1, image_size=(64, 64))
    res = subprocess.run(
        train_cmd(*TINY_TRAIN, "--data", data, "--out", tmp_path / "run", "--set", f"train.ema_decay={value}"),
        env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 1 and f"train.ema_decay={float(value)}" in res.stderr
    assert "Traceback" not in res.stderr
