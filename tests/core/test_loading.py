"""The split of cores between intra-op threads and data workers, and the training loader."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from centerpoint_suite.errors import UserError
from centerpoint_suite.loading import (
    ThreadPlan,
    apply_thread_plan,
    cores_per_process,
    plan_threads,
    set_up_training_process,
    train_loader,
    usable_cores,
    worker_init,
)


@pytest.mark.parametrize(
    "cores, workers, on_gpu, expected",
    [
        (2, 2, False, (2, 0)),  # the COCO recipe's 2 workers on this machine: loading in-process
        (2, 0, False, (2, 0)),  # no worker: every core computes
        (3, 2, False, (3, 0)),
        (4, 2, False, (3, 1)),  # one worker per 4 cores
        (8, 2, False, (6, 2)),
        (16, 8, False, (12, 4)),
        (1, 2, False, (1, 0)),  # one core: loading in the main process
        (2, 2, True, (1, 1)),  # the network on a GPU: workers up to cores - 1
        (16, 8, True, (8, 8)),
        (1, 2, True, (1, 0)),
    ],
)
def test_default_threads_plus_workers_fit_the_cores(cores, workers, on_gpu, expected):
    plan = plan_threads(cores, workers, env={}, on_gpu=on_gpu)
    assert (plan.threads, plan.workers) == expected
    assert plan.threads + plan.workers <= cores
    assert not plan.explicit


def test_explicit_threads_keep_the_workers_as_given():
    assert plan_threads(2, 2, threads=2, env={}) == ThreadPlan(2, 2, 2, explicit=True)


def test_omp_num_threads_overrides_the_automatic_plan_but_not_the_option():
    assert plan_threads(2, 1, env={"OMP_NUM_THREADS": "2"}) == ThreadPlan(2, 1, 2, explicit=True)
    assert plan_threads(2, 1, threads=1, env={"OMP_NUM_THREADS": "4"}).threads == 1
    assert plan_threads(4, 3, env={"OMP_NUM_THREADS": " "}) == ThreadPlan(3, 1, 4)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"workers": -1}, "data.workers=-1"),
        ({"workers": 1, "threads": -2}, "train.threads=-2"),
        ({"workers": 1, "env": {"OMP_NUM_THREADS": "many"}}, "OMP_NUM_THREADS=many"),
        ({"workers": 1, "env": {"OMP_NUM_THREADS": "0"}}, "OMP_NUM_THREADS=0"),
    ],
)
def test_bad_thread_settings_name_the_setting(kwargs, words):
    with pytest.raises(UserError, match=words):
        plan_threads(2, **kwargs)


def test_torchrun_processes_share_the_cores():
    assert cores_per_process(8, {"LOCAL_WORLD_SIZE": "2"}) == 4
    assert cores_per_process(2, {"LOCAL_WORLD_SIZE": "4"}) == 1
    assert cores_per_process(2, {}) == 2
    with pytest.raises(UserError, match="LOCAL_WORLD_SIZE=x"):
        cores_per_process(2, {"LOCAL_WORLD_SIZE": "x"})
    assert usable_cores() >= 1


def test_apply_and_worker_init_set_the_thread_counts():
    import cv2

    before, cv_before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        apply_thread_plan(ThreadPlan(1, 1, 2))
        assert torch.get_num_threads() == 1
        worker_init(0)
        assert torch.get_num_threads() == 1
        assert cv2.getNumThreads() <= 1
    finally:
        torch.set_num_threads(before)
        cv2.setNumThreads(cv_before)


def test_train_loader_keeps_its_workers_across_epochs():
    loader = train_loader(list(range(6)), [[0, 1], [2, 3]], lambda items: sum(items), workers=1)
    assert loader.persistent_workers and loader.worker_init_fn is worker_init
    first = iter(loader)
    assert list(first) == [1, 5]
    workers = [w.pid for w in first._workers]
    second = iter(loader)
    assert list(second) == [1, 5]
    assert [w.pid for w in second._workers] == workers  # the same processes serve the next epoch
    assert train_loader(list(range(6)), [[0]], sum, workers=0).worker_init_fn is None


FAULTS = """
import resource, sys, torch
from centerpoint_suite.loading import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def churn():
    for _ in range(10):
        x = torch.empty(12_000_000)  # 48 MB: above glibc's largest mmap threshold
        x.fill_(1.0)
        del x
churn()  # first touch of the memory in both cases
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        applied, count = out.stdout.split()
        return applied, int(count)

    (applied, kept), (_, mapped) = faults("keep"), faults("default")
    assert applied == "True"
    assert mapped > 10 * 11_000  # every 48 MB block faulted in again (4 KB pages)
    assert kept < mapped / 10


def test_set_up_says_when_it_takes_fewer_workers_than_asked(monkeypatch, caplog):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        with caplog.at_level("INFO", logger="centerpoint_suite.loading"):
            plan = set_up_training_process(workers=64, threads=0)
    finally:
        torch.set_num_threads(before)
    assert plan.workers < 64 and plan.threads + plan.workers <= plan.cores
    assert f"data.workers=64: {plan.workers} on {plan.cores} core" in caplog.text
    assert "train.threads=N keeps them as given" in caplog.text
