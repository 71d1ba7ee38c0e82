"""Two processes generating the same built-in data at once both end with the same complete dataset."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from centerpoint_suite.datasets.synthetic_common import atomic_write_text, is_complete

# each process waits for GO, then generates tiny shapes, people and KITTI sets into the same
# folders and prints a digest of every file it then sees there
SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys, time
    from pathlib import Path
    from centerpoint_suite.datasets.synthetic_kitti import generate_kitti
    from centerpoint_suite.datasets.synthetic_people import generate_people
    from centerpoint_suite.datasets.synthetic_shapes import generate_shapes

    base = Path(sys.argv[1])
    (base / f"READY-{sys.argv[2]}").touch()
    while not (base / "GO").exists():
        time.sleep(0.005)
    roots = [generate_shapes(base / "shapes", num_train=4, num_val=2),
             generate_people(base / "people", num_train=3, num_val=2),
             generate_kitti(base / "kitti", num_train=3, num_val=2)]
    digest = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                digest[str(p.relative_to(base))] = hashlib.sha256(p.read_bytes()).hexdigest()
    print(json.dumps(digest))
    """
)


def test_two_concurrent_generations_agree(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path), str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("READY-*"))) < 2 and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.01)
    (tmp_path / "GO").touch()  # both processes have imported everything: start them together
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    first, second = (json.loads(out) for out, _ in outs)
    assert first == second
    names = {n for n in first if not n.startswith("READY")}
    assert {f"shapes/train/{i:06d}.jpg" for i in range(4)} <= names
    assert {f"kitti/training/label_2/{i:06d}.txt" for i in range(5)} <= names
    assert len([n for n in names if n.startswith("kitti/training/image_2/")]) == 5
    for name in ("shapes", "people", "kitti"):
        done = json.loads((tmp_path / name / "DONE").read_text())
        assert is_complete(tmp_path / name, done)
    assert not [p.name for p in tmp_path.iterdir() if "staging" in p.name or p.suffix == ".tmp"]
    annotations = json.loads((tmp_path / "shapes" / "annotations" / "instances_train.json").read_text())
    assert len(annotations["images"]) == 4


def test_atomic_write_text_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "1")
    atomic_write_text(target, "22")
    assert target.read_text() == "22"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(b"22").hexdigest()
