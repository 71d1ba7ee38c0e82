"""Two trainings on one machine: the iterations per second of each, against one training alone.

    flock /work/cpu.lock python benchmarks/bench_concurrent.py [--minutes 1.5] [--set KEY=VALUE ...]

Runs ``centerpoint train --task boxes2d`` (the default experiment on the built-in data, its
default thread plan, see ``centerpoint_suite.loading``) for a fixed wall-time budget: first one
alone, then two started at once. Validation is switched off (``data.val_split=none``) so every
second counts training; the rate of a run is its iterations / its training time (metrics.json).
Prints both rates and the ratio (mean rate of the two together) / (rate alone): 0.5 is a fair
share of the machine, 0.22 was measured with 2 intra-op threads + 1 worker per run on 2 cores.
``--set`` passes overrides to every run (e.g. ``--set train.threads=2`` for the old plan).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _command(out: Path, minutes: float, overrides: list[str], task: str) -> list[str]:
    cmd = [sys.executable, "-m", "centerpoint_suite", "train", "--task", task, "--out", str(out)]
    sets = [f"train.time_budget_min={minutes}", "data.val_split=none", "train.tensorboard=false", *overrides]
    for item in sets:
        cmd += ["--set", item]
    return cmd


def _run_together(outs: list[Path], minutes: float, overrides: list[str], task: str) -> list[float]:
    """Start one training per folder at once; iterations per second of each."""
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            _command(o, minutes, overrides, task), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        for o in outs
    ]
    rates = []
    for o, p in zip(outs, procs):
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"training in {o} failed:\n{err.decode(errors='replace')[-2000:]}")
        m = json.loads((o / "metrics.json").read_text())
        rates.append(m["iterations"] / m["train_time_s"])
        print(f"  {o.name}: {m['iterations']} iterations in {m['train_time_s']} s = {rates[-1]:.3f} it/s", flush=True)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=1.5, help="time budget of every training")
    p.add_argument("--task", default="boxes2d")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="override for every run")
    a = p.parse_args()
    print(f"cores usable: {len(os.sched_getaffinity(0))} | OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory(prefix="bench_concurrent_") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        print("one training alone:", flush=True)
        alone = _run_together([root / "alone"], a.minutes, a.overrides, a.task)[0]
        print("two trainings at once:", flush=True)
        both = _run_together([root / "first", root / "second"], a.minutes, a.overrides, a.task)
        ratio = sum(both) / len(both) / alone
        print(
            f"alone {alone:.3f} it/s; together {both[0]:.3f} + {both[1]:.3f} it/s; "
            f"ratio (mean together / alone) {ratio:.2f}  [{time.perf_counter() - t:.0f} s]"
        )


if __name__ == "__main__":
    main()
