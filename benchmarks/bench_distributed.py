"""Training throughput of 1 vs N CPU processes (torchrun, gloo) in one run, as images per second.

    python benchmarks/bench_distributed.py [--procs 2] [--steps 12] [--nets res18:512,small:256]

Each network trains on built-in synthetic shapes of its input size with ``per_process`` images
per process per step (so the global batch grows with the process count), frozen batch norm,
no validation cost counted: the rate is the trainer's own ``train/images_per_s`` (first step
left out). One process uses all cores as intra-op threads; with N processes torchrun gives each
one thread. Runs alternate A, B, A, B so the machine's drift hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from centerpoint_suite.datasets.synthetic_shapes import generate_shapes


def train_rate(data: Path, arch: str, size: int, per_process: int, procs: int, steps: int, out: Path) -> float:
    batch = per_process * procs
    args = [
        "--config", "boxes2d_synthetic", "--data", str(data), "--out", str(out), "--arch", arch,
        "--set", "train.epochs=1", "--set", f"train.batch_size={batch}", "--set", "train.time_budget_min=0",
        "--set", f"data.input_hw=({size},{size})", "--set", "data.test_input_hw=(64,64)",
        "--set", "data.workers=1", "--set", "model.frozen_bn=true", "--set", "train.tensorboard=false",
        "--set", "train.checkpoint_every=0", "--set", "data.val_split=none",
    ]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "-m", "centerpoint_suite", "train", *args]
    else:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
        cmd = [sys.executable, *launcher, "-m", "centerpoint_suite", "train", *args]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if procs > 1:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // procs))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return float(record["train/images_per_s"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--per-process", type=int, default=4)
    p.add_argument("--nets", default="res18:512,small:256")
    p.add_argument("--pairs", type=int, default=2)
    a = p.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores | python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        for item in a.nets.split(","):
            arch, size = item.split(":")
            size = int(size)
            n = a.per_process * a.procs * a.steps
            data = generate_shapes(Path(tmp) / f"shapes{size}", num_train=n, num_val=1, image_size=(size, size))
            ones, many = [], []
            for i in range(a.pairs):
                ones.append(train_rate(data, arch, size, a.per_process, 1, a.steps, Path(tmp) / f"o{i}{arch}"))
                many.append(train_rate(data, arch, size, a.per_process, a.procs, a.steps, Path(tmp) / f"m{i}{arch}"))
            ratios = [m / o for m, o in zip(many, ones)]
            print(
                f"{arch} {size}x{size}, {a.per_process} images/process/step: 1 process "
                f"{', '.join(f'{x:.2f}' for x in ones)} img/s; {a.procs} processes "
                f"{', '.join(f'{x:.2f}' for x in many)} img/s; ratio {', '.join(f'{r:.2f}' for r in ratios)}"
            )


if __name__ == "__main__":
    main()
