"""How long idle OpenMP threads spin before they sleep, set before torch loads its OpenMP runtime.

torch's CPU build on Linux runs its intra-op threads on GNU OpenMP, which keeps a thread that
finished its share of a parallel region spinning for ``GOMP_SPINCOUNT`` iterations (300000 by
default) waiting for the next region, and only then sleeps. Alone on its cores that saves a
wake-up per region; beside another process it burns the cores the other needs. Measured here
(2 cores, the default boxes2d training with its data loaded in-process, 60 s runs, iterations per
second of one run alone / of each of two started at once):

- the runtime's default: 1.39 / 0.25 (two together run at 0.18x of one alone);
- ``GOMP_SPINCOUNT=10000``: 1.43 / 0.61 (0.43x), what ``import centerpoint_suite`` sets;
- ``OMP_WAIT_POLICY=PASSIVE`` (never spin): 1.21 / 0.85 (0.69x).

The runtime reads the variable once, when torch is imported, so ``set_spin_default`` acts only if
torch is not imported yet, and never over the user's own ``GOMP_SPINCOUNT`` / ``OMP_WAIT_POLICY``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: iterations an idle OpenMP thread spins before sleeping (the runtime's default is 300000)
SPINCOUNT = "10000"

#: variables through which the user has chosen the wait behaviour already
USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def set_spin_default(environ: MutableMapping[str, str] | None = None, torch_loaded: bool | None = None) -> bool:
    """Set ``GOMP_SPINCOUNT`` to ``SPINCOUNT`` in ``environ`` (default ``os.environ``) unless the
    user set it or ``OMP_WAIT_POLICY``, or torch is loaded already (default: ``"torch" in
    sys.modules``). Returns whether it was set. Child processes (data workers, ``torchrun``'s
    workers started by this one) inherit it."""
    env = os.environ if environ is None else environ
    loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if loaded or any(k in env for k in USER_SETTINGS):
        return False
    env["GOMP_SPINCOUNT"] = SPINCOUNT
    return True
