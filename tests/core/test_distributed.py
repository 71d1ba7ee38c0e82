"""Training under torchrun (gloo on CPU) optimises the same objective as one process: a
2-process run and a 2-node run (two launchers on this host) end with the weights of the
1-process run of the same command (same global batch, frozen batch norm)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from centerpoint_suite.datasets.synthetic_shapes import generate_shapes
from tests.core.runs import TINY_TRAIN, env, free_port, relative_difference, run, torchrun_cmd, train_cmd, weights

pytestmark = pytest.mark.slow

ARGS = [*TINY_TRAIN, "--set", "train.epochs=2", "--set", "train.batch_size=8", "--set", "model.frozen_bn=true"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("shapes"), num_train=16, num_val=4, image_size=(64, 64))


@pytest.fixture(scope="module")
def single(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    run(train_cmd("--data", data, "--out", out, *ARGS))
    return out / "last.pth"


def test_two_processes_equal_one(single, data, tmp_path):
    out = tmp_path / "two"
    res = run([*torchrun_cmd("--standalone", "--nproc-per-node", 2), "--data", data, "--out", out, *ARGS])
    assert "2 processes" in res.stderr
    diff = relative_difference(weights(out / "last.pth"), weights(single))
    assert diff < 1e-5, diff


def test_two_nodes_on_one_host_equal_one(single, data, tmp_path):
    out = tmp_path / "nodes"
    endpoint = f"127.0.0.1:{free_port()}"
    procs = []
    for node in (0, 1):
        launcher = torchrun_cmd(
            "--nnodes", 2, "--nproc-per-node", 1, "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
            "--rdzv-id", "cpt", "--node-rank", node,
        )  # fmt: skip
        cmd = [*launcher, "--data", data, "--out", out, *ARGS]
        procs.append(subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-4000:]
    assert relative_difference(weights(out / "last.pth"), weights(single)) < 1e-5


def test_global_batch_must_split_evenly(data, tmp_path):
    cmd = [*torchrun_cmd("--standalone", "--nproc-per-node", 2), "--data", data, "--out", tmp_path, *ARGS]
    cmd += ["--set", "train.batch_size=7"]
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "Error: train.batch_size=7 is the global batch: it must be a positive multiple of the 2" in res.stderr
