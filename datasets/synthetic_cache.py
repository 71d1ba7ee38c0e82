"""The output folder of a synthetic generator: written once, reused, safe under concurrency.

``ROOT/DONE`` is the completeness marker: a folder without it (an interrupted run) or with
other parameters is cleaned and generated again; a folder whose marker matches is reused.

Concurrent generations (two trainings starting at once) are safe: a generation holds the
file lock ``ROOT.lock`` (next to ROOT), writes into a uniquely named staging folder beside
ROOT, moves the finished files into ROOT with renames and writes ``DONE`` last; a process
that waited for the lock finds ``DONE`` and reuses the data. Staging folders left by a killed
run are removed by the next generation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from filelock import FileLock

from centerpoint_suite.errors import UserError

IMAGE_NAME = re.compile(r"^\d{6}\.(jpg|png)$")


def _canonical(params: dict) -> dict:
    return json.loads(json.dumps(params, sort_keys=True))


def is_complete(root: Path, params: dict) -> bool:
    """True when ``root/DONE`` exists and records exactly ``params``."""
    done = Path(root) / "DONE"
    if not done.is_file():
        return False
    try:
        return json.loads(done.read_text(encoding="utf-8")) == _canonical(params)
    except (OSError, ValueError):
        return False


def clean_outputs(root: Path, files: Sequence[str], image_dirs: Sequence[str]) -> None:
    """Remove what a generator writes into ``root`` (marker first), before generating again.

    Refuses (UserError) to delete an image folder holding files the generator does not
    write, so pointing a generator at a real dataset folder cannot destroy it.
    """
    root = Path(root)
    (root / "DONE").unlink(missing_ok=True)
    for d in image_dirs:
        folder = root / d
        if not folder.exists():
            continue
        foreign = [p.name for p in folder.iterdir() if not IMAGE_NAME.match(p.name)]
        if foreign:
            raise UserError(
                f"{folder}: holds files a synthetic generator did not write (e.g. {foreign[0]}); "
                "refusing to overwrite it: choose an empty folder"
            )
        shutil.rmtree(folder)
    for f in files:
        (root / f).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temporary file in the same folder and a
    rename: readers see the old file or the whole new one, and concurrent writers never share a
    temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{_unique()}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as f:  # "x": never shares a file with another writer
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unique() -> str:
    """A name part no other process or call uses: pid + random hex."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def mark_complete(root: Path, params: dict) -> None:
    """Write ``root/DONE`` (the generation parameters) atomically; call it last."""
    atomic_write_text(Path(root) / "DONE", json.dumps(_canonical(params), sort_keys=True, indent=1) + "\n")


LOCK_TIMEOUT_S = 6 * 3600.0  # a full default generation takes minutes; never wait forever


@contextlib.contextmanager
def generation_lock(root: Path) -> Iterator[None]:
    """Hold the file lock ``<root>.lock`` (an OS lock, released when the process dies)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root.parent / f"{root.name}.lock"), timeout=LOCK_TIMEOUT_S)
    with lock:
        yield


def _staging_prefix(root: Path) -> str:
    return f".{root.name}.staging-"


@contextlib.contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A new, uniquely named folder beside ``root`` to generate into; removed on exit.

    Call under :func:`generation_lock`: staging folders of ``root`` left by killed runs are
    removed first (no live generation of ``root`` can own them while the lock is held).
    """
    root = Path(root)
    for stale in root.parent.glob(_staging_prefix(root) + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root.parent / (_staging_prefix(root) + _unique())
    tmp.mkdir()  # fails if it exists: the name is this call's alone
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staging: Path, root: Path, entries: Sequence[str], params: dict) -> None:
    """Move ``entries`` (paths relative to both folders) from ``staging`` into ``root`` by renames,
    then write ``root/DONE``. The destinations must not exist (cleaned beforehand)."""
    root = Path(root)
    for rel in entries:
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(Path(staging) / rel, dst)
    mark_complete(root, params)
