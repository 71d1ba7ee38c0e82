"""The numba kernels run with numba's bounds checking on random inputs: no index leaves its array.

numba does not bounds-check by default (an out-of-range index is a silent write or a read of
garbage); here a fresh process compiles every kernel with NUMBA_BOUNDSCHECK=1 and a private
cache, so an out-of-range index raises IndexError and fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from centerpoint_suite.centers import center_targets
    from centerpoint_suite.datasets.kitti import KittiObjects
    from centerpoint_suite.tasks.mono3d.eval import evaluate_kitti
    from centerpoint_suite.tasks.pose2d.targets import build_pose_targets
    from centerpoint_suite.types import OutputGeometry, Sample

    rng = np.random.default_rng(0)
    geo = OutputGeometry(np.array([[0.25, 0, -4], [0, 0.25, -2]], np.float32), (12, 20))
    for _ in range(30):
        n = int(rng.integers(0, 8))
        xy = rng.uniform(-40, 120, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(0, 60, (n, 2))], 1).astype(np.float32)
        kps = np.concatenate([rng.uniform(-40, 120, (n, 5, 2)), rng.integers(0, 3, (n, 5, 1))], 2).astype(np.float32)
        s = Sample(np.zeros((60, 100, 3), np.uint8), 1, boxes, rng.integers(-1, 3, n), rng.random(n) < 0.4,
                   keypoints=kps)
        center_targets(s, geo, 3, 4)
        s.classes[:] = 0
        build_pose_targets(s, geo, 5, 4, None)

    def frame(n, score):
        types = rng.choice(["Car", "Pedestrian", "Cyclist", "Van", "DontCare"], n)
        xy = rng.uniform(0, 300, (n, 2))
        return KittiObjects(types, rng.uniform(0, 1, n), rng.integers(0, 3, n), rng.uniform(-3, 3, n),
                            np.concatenate([xy, xy + rng.uniform(5, 80, (n, 2))], 1), rng.uniform(1, 4, (n, 3)),
                            np.stack([rng.uniform(-9, 9, n), np.full(n, 1.6), rng.uniform(5, 40, n)], 1),
                            rng.uniform(-3, 3, n), rng.random(n) if score else None)

    sizes = [int(k) for k in rng.integers(0, 6, 12)]
    m = evaluate_kitti([frame(k, False) for k in sizes], [frame(int(rng.integers(0, 6)), True) for _ in sizes])
    assert len(m) > 0
    print("ok")
    """
)


def test_kernels_stay_in_bounds(tmp_path) -> None:
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
