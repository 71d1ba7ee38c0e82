"""Building blocks shared by the built-in synthetic dataset generators.

Image arrays are (H, W, 3) uint8 in BGR channel order (what ``cv2.imwrite`` expects);
coordinates are original image pixels, x right, y down, pixel centres at integers.

The generators write a COCO-style folder::

    ROOT/annotations/<kind>_train.json   ROOT/train/000000.jpg ...
    ROOT/annotations/<kind>_val.json     ROOT/val/000000.jpg ...
    ROOT/DONE                            written last: the generation parameters as json

``ROOT/DONE`` is the completeness marker: a folder without it (an interrupted run) or with
other parameters is cleaned and generated again; a folder whose marker matches is reused.

Concurrent generations (two trainings starting at once) are safe: a generation holds the
file lock ``ROOT.lock`` (next to ROOT), writes into a uniquely named staging folder beside
ROOT, moves the finished files into ROOT with renames and writes ``DONE`` last; a process
that waited for the lock finds ``DONE`` and reuses the data. Staging folders left by a killed
run are removed by the next generation.
Every image draws from its own random generator seeded by (seed, split, index), so a split
does not depend on the size of the other split and images can be generated in any order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock

from centerpoint_suite.errors import UserError

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
IMAGE_NAME = re.compile(r"^\d{6}\.(jpg|png)$")
JPEG_QUALITY = 95


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of ``split``: independent of every other image.

    ``split`` is any name; train / val / test have fixed codes, others a CRC32 of the name.
    """
    code = SPLIT_CODES.get(split, zlib.crc32(split.encode("utf-8")))
    return np.random.default_rng(np.random.SeedSequence([int(seed), code, int(index)]))


def image_name(index: int) -> str:
    """File name of image ``index`` inside its split folder (``000042.jpg``)."""
    return f"{index:06d}.jpg"


def jittered_size(rng: np.random.Generator, image_size: tuple[int, int], vary: bool) -> tuple[int, int]:
    """(height, width) of one image: ``image_size`` or, with ``vary``, each side scaled by 0.7..1.3."""
    h, w = int(image_size[0]), int(image_size[1])
    if not vary:
        return h, w
    f = rng.uniform(0.7, 1.3, 2)
    return max(32, round(h * f[0])), max(32, round(w * f[1]))


# ----------------------------------------------------------------------------- backgrounds


def _ramp(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W) float32 coordinate along a random direction, normalised to about -0.5..0.5."""
    theta = rng.uniform(0.0, np.pi)
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    ys = np.arange(h, dtype=np.float32)[:, None] - h / 2
    xs = np.arange(w, dtype=np.float32)[None, :] - w / 2
    return (xs * c + ys * s) / np.float32(max(h, w))


def _gradient(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    return _ramp(rng, h, w)[..., None] * rng.normal(0.0, amp, 3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    cells = int(rng.integers(3, 17))
    gh, gw = max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w))
    grid = rng.normal(0.0, amp * 0.6, (gh, gw, 3)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _stripes(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    period = rng.uniform(6.0, 48.0) / max(h, w)
    wave = np.sin(_ramp(rng, h, w) * np.float32(2 * np.pi / period) + np.float32(rng.uniform(0, 2 * np.pi)))
    if rng.random() < 0.5:  # hard-edged stripes, softened by a pixel
        wave = cv2.GaussianBlur(np.sign(wave).astype(np.float32), (0, 0), 0.8)
    return wave[..., None] * rng.normal(0.0, amp * 0.5, 3).astype(np.float32)


def _blobs(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    # drawn and blurred at quarter resolution, then enlarged (smooth anyway, 10x cheaper)
    sh, sw = max(4, h // 4), max(4, w // 4)
    layer = np.zeros((sh, sw, 3), np.float32)
    n = int(rng.integers(3, 13))
    centres = rng.uniform((0, 0), (sw, sh), (n, 2))
    radii = rng.uniform(0.04, 0.2, n) * min(sh, sw)
    colours = rng.normal(0.0, amp, (n, 3))
    for (x, y), r, col in zip(centres, radii, colours):
        cv2.circle(layer, (int(x), int(y)), max(1, int(r)), col.tolist(), -1)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.03 * min(sh, sw) + 0.3)
    return cv2.resize(layer, (w, h), interpolation=cv2.INTER_LINEAR)


def _checker(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    cell = rng.uniform(8.0, 40.0)
    ys = (np.arange(h) // cell).astype(np.int32)[:, None]
    xs = (np.arange(w) // cell).astype(np.int32)[None, :]
    sign = (((xs + ys) & 1) * 2 - 1).astype(np.float32)
    sign = cv2.GaussianBlur(sign, (0, 0), 1.0)
    return sign[..., None] * rng.normal(0.0, amp * 0.35, 3).astype(np.float32)


TEXTURES: dict[str, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    "gradient": _gradient,
    "noise": _smooth_noise,
    "stripes": _stripes,
    "blobs": _blobs,
    "checker": _checker,
}


def textured_background(
    rng: np.random.Generator,
    height: int,
    width: int,
    contrast: float = 1.0,
    kinds: Sequence[str] | None = None,
) -> np.ndarray:
    """A random textured background, (height, width, 3) uint8 BGR.

    A base colour plus one to three layers picked from ``kinds`` (default: all of
    ``TEXTURES``: gradient, smooth noise, stripes, blurred blobs, checker) and a fine grain.
    ``contrast`` scales the texture amplitude (1.0: roughly +-40 grey levels), so objects
    drawn with ``contrasting_colour`` stay clearly visible.
    """
    names = list(kinds) if kinds is not None else list(TEXTURES)
    unknown = [k for k in names if k not in TEXTURES]
    if unknown:
        raise UserError(f"unknown background texture(s) {unknown}; choose from {sorted(TEXTURES)}")
    h, w = int(height), int(width)
    amp = 40.0 * float(contrast)
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.uniform(35.0, 220.0, 3).astype(np.float32)
    n_layers = int(rng.integers(1, min(3, len(names)) + 1))
    for k in rng.choice(len(names), n_layers, replace=False):
        img += TEXTURES[names[int(k)]](rng, h, w, amp)
    # fine grain: uniform noise of std 3 * contrast from random bytes (cheaper than normals)
    grain = np.frombuffer(rng.bytes(h * w), np.uint8).reshape(h, w, 1).astype(np.float32)
    img += (grain - np.float32(127.5)) * np.float32(3.0 * contrast / 73.9)
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- colours


def contrasting_colour(
    rng: np.random.Generator, avoid: np.ndarray | Sequence[Sequence[float]], candidates: int = 24
) -> np.ndarray:
    """A random colour far from every colour in ``avoid``.

    avoid: (K, 3) colours (same channel order as the image; K may be 0).
    Returns (3,) uint8: the one of ``candidates`` uniform random colours whose smallest
    Euclidean distance to ``avoid`` is largest.
    """
    cand = rng.integers(0, 256, (candidates, 3)).astype(np.float32)
    ref = np.asarray(avoid, np.float32).reshape(-1, 3)
    if len(ref) == 0:
        return cand[0].astype(np.uint8)
    dist = np.linalg.norm(cand[:, None, :] - ref[None, :, :], axis=2).min(axis=1)
    return cand[int(np.argmax(dist))].astype(np.uint8)


def shade(colour: np.ndarray | Sequence[float], factor: float) -> np.ndarray:
    """``colour`` scaled by ``factor`` (darker < 1 < lighter), (3,) uint8."""
    return np.clip(np.asarray(colour, np.float32) * factor, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- masks -> COCO fields


def mask_bbox(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[float] | None:
    """COCO ``[x, y, w, h]`` of the nonzero pixels of ``mask`` (placed at offset x0, y0).

    As pycocotools does for masks: a box covering pixel columns x..x+w-1; None when empty.
    """
    if not mask.any():
        return None
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return [float(x + x0), float(y + y0), float(w), float(h)]


def mask_polygons(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[list[float]]:
    """COCO polygon segmentation (outer contours only) of a binary mask placed at (x0, y0)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append((c.reshape(-1, 2) + (x0, y0)).reshape(-1).astype(np.float64).tolist())
    return polys


# ----------------------------------------------------------------------------- output folder


def generator_params(
    generator: str, version: int, num_train: int, num_val: int, image_size: tuple[int, int], seed: int, vary_size: bool
) -> dict:
    """What determines a COCO-style generator's output (recorded in ``ROOT/DONE``)."""
    return {
        "generator": generator,
        "version": version,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "seed": int(seed),
        "vary_size": bool(vary_size),
    }


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


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode ``image`` (BGR uint8) as JPEG (quality 95) or PNG by the suffix of ``path``."""
    flags = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), image, flags):
        raise UserError(f"{path}: cannot write image")


def write_coco_json(
    path: Path, images: list[dict], annotations: list[dict], categories: list[dict], description: str
) -> None:
    """Write a COCO annotation file (no dates or other run-dependent fields: byte-reproducible)."""
    data = {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    atomic_write_text(path, json.dumps(data, separators=(",", ":")))  # one-shot: the fast C encoder


def generate_coco_files(
    root: Path,
    params: dict,
    splits: dict[str, int],
    render: Callable[[np.random.Generator, int, int], tuple[np.ndarray, list[dict[str, dict]]]],
    image_hw: Callable[[np.random.Generator], tuple[int, int]],
    categories: dict[str, list[dict]],
    description: str,
) -> Path:
    """Drive a generator writing one or several annotation files per split: reuse a complete
    ``root``, else clean it and write every split.

    params:     everything that determines the output (recorded in ``root/DONE``).
    splits:     split name -> number of images.
    image_hw:   draws (height, width) of one image from its generator.
    render:     (rng, height, width) -> (image (H, W, 3) uint8, objects); an object maps an
                annotation kind to its annotation dict (without ``id``/``image_id``) in the file of
                that kind. An object gets one id, the same in every file it appears in. Called
                with the same rng right after ``image_hw``.
    categories: annotation kind (file prefix: ``instances``, ``person_keypoints``) -> its
                categories; one ``annotations/<kind>_<split>.json`` per kind and split.
    """
    root = Path(root)
    if is_complete(root, params):
        return root
    with generation_lock(root):
        if is_complete(root, params):  # another process generated it while we waited
            return root
        ann_files = [f"annotations/{kind}_{s}.json" for s in splits for kind in categories]
        clean_outputs(root, ann_files, list(splits))
        with staging_folder(root) as stage:
            for split, count in splits.items():
                folder = stage / split
                folder.mkdir(parents=True)
                images: list[dict] = []
                anns: dict[str, list[dict]] = {kind: [] for kind in categories}
                next_id = 1
                for i in range(int(count)):
                    rng = image_rng(params["seed"], split, i)
                    h, w = image_hw(rng)
                    img, objs = render(rng, h, w)
                    name = image_name(i)
                    write_image(folder / name, img)
                    images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
                    for obj in objs:
                        for kind, ann in obj.items():
                            anns[kind].append({"id": next_id, "image_id": i + 1, **ann})
                        next_id += 1
                for kind, cats in categories.items():
                    path = stage / "annotations" / f"{kind}_{split}.json"
                    write_coco_json(path, images, anns[kind], cats, description)
            publish(stage, root, [*splits, *ann_files], params)
    return root


def generate_coco_folder(
    root: Path,
    params: dict,
    kind: str,
    splits: dict[str, int],
    render: Callable[[np.random.Generator, int, int], tuple[np.ndarray, list[dict]]],
    image_hw: Callable[[np.random.Generator], tuple[int, int]],
    categories: list[dict],
    description: str,
) -> Path:
    """:func:`generate_coco_files` for a generator writing one annotation file per split.

    kind:   annotation file prefix (``instances`` or ``person_keypoints``).
    render: (rng, height, width) -> (image (H, W, 3) uint8, annotation dicts without
            ``id``/``image_id``).
    """

    def render_one(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, list[dict[str, dict]]]:
        img, objs = render(rng, h, w)
        return img, [{kind: obj} for obj in objs]

    return generate_coco_files(root, params, splits, render_one, image_hw, {kind: categories}, description)
