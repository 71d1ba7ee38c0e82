"""How long idle OpenMP threads spin before they sleep, set before torch loads its OpenMP runtime.

torch's CPU build on Linux runs its intra-op threads on GNU OpenMP, which keeps a thread that
finished its share of a parallel region spinning for ``GOMP_SPINCOUNT`` iterations (300000 by
default) waiting for the next region, and only then sleeps. Alone on its cores that saves a
wake-up per region; beside another process it burns the cores the other needs. Measured here
(2 cores, the default boxes2d training with its data loaded in-process, 60 s runs, iterations per
second of one run alone / of each of two started at once):

- the runtime's default: 1.39 / 0.25 (two together run at 0.18x of one alone);
- ``GOMP_SPINCOUNT=10000``: 1.43 / 0.61 (0.43x);
- ``OMP_WAIT_POLICY=PASSIVE`` (never spin): 1.21 / 0.85 (0.69x).

Later (AMD EPYC Zen 3, ``benchmarks/bench_concurrent.py``, 90 s runs, one alone then two together):
``GOMP_SPINCOUNT=10000`` 1.210 / 0.459 + 0.467 (0.38x) and 1.202 / 0.469 + 0.469 (0.39x), 3000
1.240 / 0.598 + 0.582 (0.48x), 1000 1.092 / 0.754 + 0.753 (0.69x): spinning 1000 times shares the
cores as well as never spinning. Alone, it costs nothing measurable: 60 s runs alternated
10000, 3000, 1000 twice gave 1.156, 1.209, 1.168 and 1.044, 1.118, 1.146 it/s, and res18's
512x512 forward 289.9, 258.9, 285.6 ms at 10000 against 270.7, 273.1, 296.2 at 1000 (alternated).
So ``import centerpoint_suite`` sets 1000.

The runtime reads the variable once, when torch is imported, so ``set_spin_default`` acts only if
torch is not imported yet, and never over the user's own ``GOMP_SPINCOUNT`` / ``OMP_WAIT_POLICY``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: iterations an idle OpenMP thread spins before sleeping (the runtime's default is 300000)
SPINCOUNT = "1000"

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
