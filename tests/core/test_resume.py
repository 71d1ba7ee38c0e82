"""Exact resume: a training process killed with SIGKILL in the middle of an epoch and restarted
with ``--resume OUT/last.pth`` ends with bitwise the weights of the same run left alone."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from centerpoint_suite.datasets.synthetic_shapes import generate_shapes
from tests.core.runs import TINY_TRAIN, env, run, train_cmd

pytestmark = pytest.mark.slow

STEPS_PER_EPOCH = 4  # 16 training images, global batch 4
ARGS = [
    *TINY_TRAIN,
    "--set", "train.epochs=3",
    "--set", "train.batch_size=4",
    "--set", "train.checkpoint_every=3",
    "--set", "data.input_hw=(128,128)",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("shapes"), num_train=16, num_val=4, image_size=(96, 96))


def _kill_at_checkpoint(cmd: list[str], iteration: int) -> None:
    """Start ``cmd`` and SIGKILL it right after it reports the checkpoint of ``iteration``."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if f"checkpoint at iteration {iteration} " in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])


@pytest.mark.parametrize("workers, ema", [(0, 0.0), (2, 0.0), (0, 0.9)], ids=["in-process", "2-workers", "ema"])
def test_killed_run_resumes_bitwise(data, tmp_path, workers, ema):
    """With ``train.ema_decay`` the checkpoint's weights are the average and the trained weights
    travel beside them: both continue bit for bit."""
    args = [*ARGS, "--set", f"data.workers={workers}", "--set", f"train.ema_decay={ema}"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    run(train_cmd("--data", data, "--out", ref, *args))
    _kill_at_checkpoint(train_cmd("--data", data, "--out", out, *args), iteration=6)
    state = torch.load(out / "last.pth", weights_only=True)["state"]
    assert state["epoch"] == 1 and 0 < state["step"] < STEPS_PER_EPOCH  # killed in the middle of epoch 2
    run(train_cmd("--resume", out / "last.pth", "--out", out))
    got, want = torch.load(out / "last.pth", weights_only=True), torch.load(ref / "last.pth", weights_only=True)
    for entry in ("model", "train_model") if ema else ("model",):
        assert got[entry].keys() == want[entry].keys()
        differ = [k for k in want[entry] if not torch.equal(got[entry][k], want[entry][k])]
        assert not differ, (entry, differ)
    if ema:  # the average is not the trained weights, and counts every step
        assert want["ema_updates"] == got["ema_updates"] == 3 * STEPS_PER_EPOCH
        assert not all(torch.equal(want["model"][k], want["train_model"][k]) for k in want["model"])
    else:
        assert "train_model" not in got
    final = got["state"]
    assert final["iteration"] == 3 * STEPS_PER_EPOCH and final["epoch"] == 3


def test_resume_refuses_a_changed_experiment(data, tmp_path):
    """Resuming with the task's default config (not the run's settings) lists what differs;
    the same field changed with --set is taken as meant."""
    run(train_cmd("--data", data, "--out", tmp_path, *ARGS, "--set", "train.epochs=1"))
    cmd = train_cmd(
        "--resume", tmp_path / "last.pth", "--out", tmp_path, "--config", "boxes2d_synthetic", "--data", data
    )
    res = subprocess.run([*cmd, "--set", "data.workers=0"], env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "Error: --resume" in res.stderr and "the experiment differs from the checkpoint's" in res.stderr
    for change in ("data.input_hw: [128, 128] -> [256, 256]", "train.epochs: 1 -> 40", "train.batch_size: 4 -> 16"):
        assert change in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
