"""The global-batch sampler: N processes together see exactly the 1-process batches, and an
epoch resumes at any step."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centerpoint_suite.errors import UserError
from centerpoint_suite.sampling import GlobalBatchSampler


@given(
    n=st.integers(1, 60),
    per_rank=st.integers(1, 5),
    world=st.sampled_from([1, 2, 3, 4]),
    epoch=st.integers(0, 5),
    seed=st.integers(0, 3),
)
def test_ranks_partition_the_single_process_batches(n, per_rank, world, epoch, seed):
    batch = per_rank * world
    if min(batch, n) < world:
        with pytest.raises(UserError):
            GlobalBatchSampler(n, batch, 0, world, seed)
        return
    one = GlobalBatchSampler(n, batch, 0, 1, seed)
    one.set_epoch(epoch)
    ranks = [GlobalBatchSampler(n, batch, r, world, seed) for r in range(world)]
    for s in ranks:
        s.set_epoch(epoch)
    single = list(one)
    per = [list(s) for s in ranks]
    assert all(len(p) == len(single) == one.steps for p in per)
    for step, want in enumerate(single):
        got = [key for p in per for key in p[step]]
        assert got == want  # same samples, same order, contiguous slices
        assert all(e == epoch for e, _ in want)
    # each epoch is a permutation prefix: no sample twice
    flat = [i for b in single for _, i in b]
    assert len(set(flat)) == len(flat)


def test_resume_inside_an_epoch_continues_the_same_batches():
    s = GlobalBatchSampler(20, 4, seed=1)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3, start=2)
    assert list(s) == full[2:] and len(s) == len(full) - 2


def test_epochs_differ_and_seed_matters():
    s = GlobalBatchSampler(20, 4, seed=1)
    s.set_epoch(0)
    e0 = [i for b in s for _, i in b]
    s.set_epoch(1)
    e1 = [i for b in s for _, i in b]
    other = GlobalBatchSampler(20, 4, seed=2)
    other.set_epoch(0)
    assert e0 != e1 and e0 != [i for b in other for _, i in b]


def test_bad_global_batch_is_named():
    with pytest.raises(UserError, match="train.batch_size=6 is the global batch.*4 processes"):
        GlobalBatchSampler(100, 6, 0, 4)
