"""Checkpoints load without running code, and every unusable file gets a one-line error naming it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch

from centerpoint_suite.checkpoint import capture_rng, load_checkpoint, load_weights, restore_rng, save_checkpoint
from centerpoint_suite.config import load_config
from centerpoint_suite.engine import build_model
from centerpoint_suite.errors import UserError
from centerpoint_suite.zoo import read_original_checkpoint


class _Payload:
    """Unpickling this runs ``touch <marker>``: what a malicious 'checkpoint' would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"format": "centerpoint_suite/1", "state_dict": {}, "x": _Payload(marker)}, path)
    return path, marker


@pytest.mark.parametrize("reader", [load_checkpoint, read_original_checkpoint])
def test_malicious_pickle_is_refused_without_running(malicious, reader):
    path, marker = malicious
    with pytest.raises(UserError) as e:
        reader(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "refused" in msg and "\n" not in msg
    assert not marker.exists()


def test_truncated_empty_and_foreign_files(tmp_path):
    exp = load_config("boxes2d_synthetic")
    good = tmp_path / "good.pth"
    save_checkpoint(good, exp, build_model(exp))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    for path, words in ((cut, "truncated"), (empty, "empty file"), (text, "truncated or not a PyTorch")):
        with pytest.raises(UserError) as e:
            load_checkpoint(path)
        assert str(e.value).startswith(str(path)) and words in str(e.value) and "\n" not in str(e.value)
    assert zipfile.is_zipfile(good)
    loaded, payload = load_checkpoint(good)
    assert loaded == exp


def test_weights_of_another_network_are_named(tmp_path):
    exp = load_config("boxes2d_synthetic")
    small = build_model(exp)
    other = build_model(load_config("pose2d_synthetic"))
    with pytest.raises(UserError) as e:
        load_weights(small, other.state_dict(), "x.pth")
    msg = str(e.value)
    assert msg.startswith("x.pth: weights do not fit this network") and "unexpected" in msg and "\n" not in msg


def test_rng_round_trip():
    import random

    import numpy as np

    state = capture_rng()
    a = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
