"""Helpers for tests that start real training processes (plain, torchrun, killed and resumed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

TINY_TRAIN = [
    "--config", "boxes2d_synthetic",
    "--set", "train.time_budget_min=0",
    "--set", "train.warmup_iters=2",
    "--set", "data.input_hw=(64,64)",
    "--set", "data.test_input_hw=(64,64)",
    "--set", "data.workers=0",
    "--set", "train.tensorboard=false",
]  # fmt: skip


def env() -> dict[str, str]:
    """One intra-op thread per process: deterministic and no oversubscription of a small CI machine."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "centerpoint_suite", "train", *map(str, args)]


def torchrun_cmd(*launcher: object) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *map(str, launcher), "-m", "centerpoint_suite", "train"]


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr[-4000:]}"
    return res


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a - b|| / ||b|| over every floating-point tensor of two state dicts."""
    assert a.keys() == b.keys()
    keys = [k for k in a if a[k].is_floating_point()]
    da = torch.cat([a[k].flatten().double() for k in keys])
    db = torch.cat([b[k].flatten().double() for k in keys])
    return float((da - db).norm() / db.norm())
