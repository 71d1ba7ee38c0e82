"""The OpenMP spin default: set before torch loads, never over the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys

from centerpoint_suite.openmp import SPINCOUNT, set_spin_default


def test_sets_the_spin_count_only_when_nobody_chose():
    env: dict[str, str] = {}
    assert set_spin_default(env, torch_loaded=False)
    assert env == {"GOMP_SPINCOUNT": SPINCOUNT}
    for user in ({"GOMP_SPINCOUNT": "0"}, {"OMP_WAIT_POLICY": "ACTIVE"}):
        env = dict(user)
        assert not set_spin_default(env, torch_loaded=False)
        assert env == user
    env = {}
    assert not set_spin_default(env, torch_loaded=True)  # too late: the runtime has read its settings
    assert env == {}


def _spin_seen_by_a_fresh_process(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = "import os, centerpoint_suite, torch; print(os.environ.get('GOMP_SPINCOUNT', '-'))"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_the_package_first_sets_it_for_torch():
    assert _spin_seen_by_a_fresh_process({}) == SPINCOUNT
    assert _spin_seen_by_a_fresh_process({"OMP_WAIT_POLICY": "PASSIVE"}) == "-"
