"""How a training process uses the machine: the split of its cores between intra-op threads and
data workers, and the training DataLoader.

Cores: ``os.sched_getaffinity`` (what ``taskset`` / a container lets the process run on), not
the machine's count, shared by the ``LOCAL_WORLD_SIZE`` processes ``torchrun`` starts on it.

Default plan (``plan_threads``): intra-op threads + data workers <= cores, ``data.workers``
being an upper bound, and the main process gets the cores left. More threads than cores only
makes OpenMP threads spin and wait for each other (two 2-thread trainings with a worker each on
2 cores ran at 0.22x of one alone). Training on the CPU, a worker takes its core from the
network's threads, and a step's data is a small part of its work, so workers come one per 4
cores (none below 4): on 2 cores, 80-class COCO-mini (384, batch 16, small network) trained 72-82
iterations in 1.5 min loading in-process with 2 threads, against 43-46 with 1 thread + 1
worker. With a GPU the network does not run on the cores: up to cores - 1 workers.
``train.threads`` (or the ``OMP_NUM_THREADS`` environment variable) sets the threads
explicitly, and then ``data.workers`` is taken as given.

Memory (``keep_freed_memory``): the training process keeps freed memory for the next step
instead of having the kernel map and zero every large tensor again.

Workers (``worker_init``): one intra-op thread each (as torch's own default for workers) and no
OpenCV thread pool, so a worker is one busy core at most.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreadPlan:
    """threads: intra-op threads of the training process; workers: DataLoader worker processes;
    cores: usable cores it was planned for; explicit: threads were given (config or environment)."""

    threads: int
    workers: int
    cores: int
    explicit: bool = False


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cores_per_process(cores: int, env: Mapping[str, str] | None = None) -> int:
    """This process's share of ``cores`` when ``torchrun`` starts ``LOCAL_WORLD_SIZE`` processes
    on the machine (at least 1)."""
    env = os.environ if env is None else env
    value = env.get("LOCAL_WORLD_SIZE", "1").strip() or "1"
    try:
        local = int(value)
    except ValueError:
        raise UserError(f"LOCAL_WORLD_SIZE={value}: not a number of processes") from None
    return max(1, cores // max(1, local))


def plan_threads(
    cores: int, workers: int, threads: int = 0, env: Mapping[str, str] | None = None, on_gpu: bool = False
) -> ThreadPlan:
    """Intra-op threads and data workers for a training process on ``cores`` cores.

    workers: ``data.workers`` (>= 0); threads: ``train.threads`` (0: automatic);
    env: environment, read for ``OMP_NUM_THREADS`` when ``threads`` is 0 (default: ``os.environ``);
    on_gpu: the network trains on a GPU, not on these cores.

    Automatic: workers = min(workers, cores // 4) on the CPU, min(workers, cores - 1) with a GPU;
    threads = cores - workers (at least 1), so threads + workers <= cores. Explicit threads
    (argument or ``OMP_NUM_THREADS``): both as given.
    """
    if cores < 1:
        raise ValueError(f"cores must be >= 1, got {cores}")
    if workers < 0:
        raise UserError(f"data.workers={workers}: must be >= 0")
    if threads < 0:
        raise UserError(f"train.threads={threads}: must be >= 0 (0: automatic)")
    env = os.environ if env is None else env
    if threads == 0 and env.get("OMP_NUM_THREADS", "").strip():
        value = env["OMP_NUM_THREADS"].strip()
        try:
            threads = int(value.split(",")[0])
        except ValueError:
            raise UserError(f"OMP_NUM_THREADS={value}: not a number of threads") from None
        if threads < 1:
            raise UserError(f"OMP_NUM_THREADS={value}: must be >= 1")
    if threads > 0:
        return ThreadPlan(threads, workers, cores, explicit=True)
    workers = min(workers, cores - 1 if on_gpu else cores // 4)
    return ThreadPlan(max(1, cores - workers), workers, cores)


def apply_thread_plan(plan: ThreadPlan) -> None:
    """Set this process's intra-op threads (call before the first heavy torch op) and OpenCV's."""
    torch.set_num_threads(plan.threads)
    try:
        import cv2

        cv2.setNumThreads(plan.threads)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass
    workers = _count(plan.workers, "data worker") if plan.workers else "data loaded in-process"
    log.info("%s, %s on %s", _count(plan.threads, "intra-op thread"), workers, _count(plan.cores, "core"))


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


#: glibc ``mallopt`` parameters
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Make the C allocator (glibc) keep freed memory for reuse instead of mapping every large
    block anew; True when applied (Linux with glibc), False elsewhere.

    glibc maps every block above 32 MB (a 96 x 96 activation map of 64 channels at batch 16)
    with ``mmap`` and unmaps it on free, so each training step faulted in and zeroed the same
    memory again: over a third of the CPU time in the kernel on 80-class COCO-mini. With mmap
    off (``M_MMAP_MAX`` 0) blocks come from the heap, and freed ones stay there up to
    ``trim_threshold`` bytes (``M_TRIM_THRESHOLD``) for the next step. The process keeps its
    peak memory (a training process reaches it every step anyway). Inherited by forked workers.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))


def worker_init(worker_id: int) -> None:
    """DataLoader worker set-up: one intra-op thread, no OpenCV thread pool (sequential warps)."""
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(0)


def set_up_training_process(workers: int, threads: int = 0, on_gpu: bool = False) -> ThreadPlan:
    """Thread plan (``data.workers``, ``train.threads``) for this process's share of the usable
    cores, applied, and freed memory kept (``keep_freed_memory``). Returns the plan."""
    plan = plan_threads(cores_per_process(usable_cores()), workers, threads, on_gpu=on_gpu)
    if plan.workers < workers:
        log.info(
            "data.workers=%d: %d on %s (train.threads=N keeps them as given)", workers, plan.workers,
            _count(plan.cores, "core"),
        )  # fmt: skip
    apply_thread_plan(plan)
    keep_freed_memory()
    return plan


def train_loader(
    dataset: Dataset,
    batch_sampler: Sampler[Sequence],
    collate_fn: Callable,
    workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """The run's one training DataLoader: ``workers`` processes kept across epochs
    (``persistent_workers``), each set up by ``worker_init``; in the main process when 0."""
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        worker_init_fn=worker_init if workers > 0 else None,
    )
