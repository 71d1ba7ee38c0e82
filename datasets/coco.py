"""Reader for any COCO-format dataset: an annotation json plus an image folder.

Layout resolved from a root folder and a split name (first match wins):
``ROOT/annotations/<kind>_<split>.json`` with images in ``ROOT/<split>/`` or
``ROOT/images/<split>/``; ``kind`` is ``instances`` (boxes) or ``person_keypoints``.
Fallbacks for other layouts (e.g. mmpose's test data): ROOT may be the annotation json
itself, or a folder without ``annotations/`` holding one COCO annotation json (a json
object; result lists are skipped); images are then looked for in ``ROOT/<split>/``,
``ROOT/images/``, ROOT and its sub-folders (the first holding the first listed image).
Category ids are mapped to contiguous indices in ascending id order; ``iscrowd``
annotations become ignore regions; boxes of zero width or height are skipped (counted, with
a warning). Everything else that is wrong is a ``DataError`` naming the file and the
annotation / image id: a category id the file does not list, a negative width or height, a
NaN or non-numeric coordinate, keypoints of the wrong length, a malformed entry.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from centerpoint_suite.errors import DataError, UserError
from centerpoint_suite.types import Sample

from .images import read_image

__all__ = ["COCO_CLASSES", "CocoSource", "find_annotation", "load_json", "read_image"]

log = logging.getLogger(__name__)

# The 80 COCO detection categories in ascending category-id order (the channel order of the
# original CenterNet COCO models).
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


def is_annotation_json(path: Path) -> bool:
    """Cheap test that a .json file is a COCO annotation file (an object), not a results list."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head[:1] == b"{"


def _find_root_annotation(root: Path, kind: str, split: str | None) -> tuple[Path, str]:
    """Fallback when ROOT has no annotations/ folder: a COCO annotation json directly in ROOT."""
    found = sorted(p for p in root.glob("*.json") if is_annotation_json(p))
    if not found:
        raise DataError(
            f"{root}: no annotations/ folder (expected annotations/{kind}_<split>.json) "
            "and no COCO annotation json in the folder"
        )
    names = ", ".join(p.name for p in found)
    if split is not None:
        named = [p for p in found if p.stem in (split, f"{kind}_{split}")]
        if not named:
            raise DataError(
                f"{root}: no annotation json for split {split!r} (present: {names}); "
                "pass the json file itself as the dataset root"
            )
        return named[0], split
    if len(found) == 1:
        return found[0], found[0].stem
    of_kind = [p for p in found if p.stem.startswith(kind)]
    if len(of_kind) == 1:
        return of_kind[0], of_kind[0].stem
    raise UserError(f"{root}: several annotation files ({names}); choose one with --split or pass the json file")


def find_annotation(root: Path, kind: str, split: str | None) -> tuple[Path, str]:
    """Locate ``annotations/<kind>_<split>.json``; with ``split=None`` take the only (or a val) one.

    Without an ``annotations/`` folder, a COCO annotation json lying in ROOT is used.
    """
    ann_dir = root / "annotations"
    if not ann_dir.is_dir():
        return _find_root_annotation(root, kind, split)
    if split is not None:
        path = ann_dir / f"{kind}_{split}.json"
        if not path.is_file():
            have = sorted(p.name for p in ann_dir.glob(f"{kind}_*.json"))
            raise DataError(f"{path}: annotation file not found; present: {', '.join(have) or 'none'}")
        return path, split
    found = sorted(ann_dir.glob(f"{kind}_*.json"))
    if not found:
        raise DataError(f"{ann_dir}: no {kind}_<split>.json file")
    splits = [p.stem[len(kind) + 1 :] for p in found]
    if len(found) == 1:
        return found[0], splits[0]
    for p, s in zip(found, splits):
        if s.startswith("val"):
            return p, s
    raise UserError(f"{ann_dir}: several splits ({', '.join(splits)}); choose one with --split")


def load_json(path: Path) -> dict:
    """A COCO annotation file as a dict with ``images`` and ``annotations`` lists (DataError naming
    the file, and line:column for malformed json, otherwise)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text (utf-8) json file: {e.reason} at byte {e.start}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    if not text.strip():
        raise DataError(f"{path}: empty annotation file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: malformed json: {e.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: json nested too deeply") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise DataError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations' lists)")
    if not isinstance(data.get("categories", []), list):
        raise DataError(f"{path}: 'categories' must be a list")
    return data


def _short(v: object, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite_numbers(values: object, n: int) -> bool:
    """True when ``values`` is a list of ``n`` finite json numbers (int or float, not bool)."""
    if type(values) is not list or len(values) != n:
        return False
    for v in values:
        t = type(v)
        if t is float:
            if not math.isfinite(v):
                return False
        elif t is not int:
            return False
    return True


def _check_categories(path: Path, cats: list) -> list[dict]:
    seen: set[int] = set()
    for k, c in enumerate(cats):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or not isinstance(c.get("name"), str):
            raise DataError(f"{path}: categories[{k}] needs an integer 'id' and a string 'name'")
        if c["id"] in seen:
            raise DataError(f"{path}: category id {c['id']} listed twice")
        kps = c.get("keypoints")
        if kps is not None and not (isinstance(kps, list) and all(isinstance(n, str) for n in kps)):
            raise DataError(f"{path}: category {c['id']}: 'keypoints' must be a list of joint names")
        seen.add(c["id"])
    return sorted(cats, key=lambda c: c["id"])


def _check_images(path: Path, images: list) -> list[dict]:
    seen: set[int] = set()
    for k, im in enumerate(images):
        if not isinstance(im, dict) or not _is_int(im.get("id")) or not isinstance(im.get("file_name"), str):
            raise DataError(f"{path}: images[{k}] needs an integer 'id' and a string 'file_name'")
        if not im["file_name"]:
            raise DataError(f"{path}: image id {im['id']} has an empty file_name")
        if im["id"] in seen:
            raise DataError(f"{path}: image id {im['id']} listed twice")
        seen.add(im["id"])
    return sorted(images, key=lambda im: im["id"])


def _check_annotation(path: Path, k: int, ann: object, joints_of: dict[int, int]) -> bool:
    """DataError naming file + annotation for a malformed one; False for a box of zero size (skip)."""
    if not isinstance(ann, dict):
        raise DataError(f"{path}: annotations[{k}] is not an object")
    name = f"annotation id {ann.get('id')}" if "id" in ann else f"annotations[{k}]"
    for key in ("category_id", "image_id"):
        if not _is_int(ann.get(key)):
            raise DataError(f"{path}: {name}: '{key}' must be an integer, got {_short(ann.get(key))}")
    if ann["category_id"] not in joints_of:
        raise DataError(
            f"{path}: {name}: unknown category id {ann['category_id']} (the file lists {sorted(joints_of)})"
        )
    num_joints = joints_of[ann["category_id"]]
    box = ann.get("bbox")
    if not _finite_numbers(box, 4):
        raise DataError(f"{path}: {name}: 'bbox' must be 4 finite numbers [x, y, w, h], got {_short(ann.get('bbox'))}")
    if box[2] < 0 or box[3] < 0:
        raise DataError(f"{path}: {name}: negative box width or height {_short(ann['bbox'])}")
    kps = ann.get("keypoints")
    if num_joints and kps:  # absent / empty keypoints: none labelled
        if not _finite_numbers(kps, 3 * num_joints):
            if isinstance(kps, list) and len(kps) == 3 * num_joints:
                got = "a NaN, infinite or non-numeric value"
            else:
                got = f"{len(kps)} values" if isinstance(kps, list) else f"a {type(kps).__name__}"
            raise DataError(
                f"{path}: {name}: 'keypoints' must be {3 * num_joints} finite numbers "
                f"(x, y, v for {num_joints} joints), got {got}"
            )
    return bool(box[2] > 0 and box[3] > 0)


class CocoSource:
    """COCO-format split as a ``SampleSource``.

    root:        dataset folder (see module docstring).
    split:       split name (``train``, ``val``, ``val2017`` ...); None: the only one present.
    kind:        ``instances`` or ``person_keypoints``.
    category_names: keep only these categories (by name) in this order; None keeps all.
    """

    def __init__(
        self,
        root: Path | str,
        split: str | None = None,
        kind: str = "instances",
        category_names: tuple[str, ...] | None = None,
    ) -> None:
        root = Path(root)
        if root.suffix.lower() == ".json" and root.is_file():  # the annotation file itself
            self.root, self.ann_file, self.split = root.parent, root, root.stem
        else:
            self.root = root
            if not self.root.is_dir():
                raise DataError(f"{self.root}: dataset folder not found")
            self.ann_file, self.split = find_annotation(self.root, kind, split)
        data = load_json(self.ann_file)
        self.data = data
        cats = _check_categories(self.ann_file, data.get("categories", []))
        joints_of = {c["id"]: len(c.get("keypoints") or []) for c in cats}  # category id -> joints
        if category_names:
            by_name = {c["name"]: c for c in cats}
            missing = [n for n in category_names if n not in by_name]
            if missing:
                raise DataError(f"{self.ann_file}: categories {missing} not in the file")
            cats = [by_name[n] for n in category_names]
        if not cats:
            raise DataError(f"{self.ann_file}: no categories")
        self.cat_ids = [int(c["id"]) for c in cats]
        self.classes = tuple(str(c["name"]) for c in cats)
        self.categories = cats
        self.num_joints = max(joints_of[c] for c in self.cat_ids)
        if not data["images"]:
            raise UserError(f"{self.ann_file}: empty dataset (no images)")
        self.images = _check_images(self.ann_file, data["images"])
        self.image_dir = self._image_dir(str(data["images"][0]["file_name"]))
        missing = [im["file_name"] for im in self.images if not (self.image_dir / im["file_name"]).is_file()]
        if missing:
            raise DataError(
                f"{self.image_dir}: {len(missing)} image(s) listed in {self.ann_file.name} are missing, "
                f"e.g. {missing[0]}"
            )
        per_image: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        wanted = set(self.cat_ids)
        skipped = []
        for k, ann in enumerate(data["annotations"]):
            has_area = _check_annotation(self.ann_file, k, ann, joints_of)
            if ann["image_id"] not in per_image:
                raise DataError(
                    f"{self.ann_file}: annotation id {ann.get('id')} refers to unknown image {ann['image_id']}"
                )
            if ann["category_id"] not in wanted:  # a category the task did not ask for
                continue
            joints = joints_of[ann["category_id"]]
            if ann.get("keypoints") and joints != self.num_joints:  # checked above against its own joints
                raise DataError(
                    f"{self.ann_file}: annotation id {ann.get('id')}: 'keypoints' on category "
                    f"{ann['category_id']}, which names {joints} joints, not the {self.num_joints} read here"
                )
            if not has_area:
                skipped.append(ann.get("id", f"#{k}"))
                continue
            per_image[ann["image_id"]].append(ann)
        if skipped:
            log.warning(
                "%s: skipped %d annotation(s) with a zero-width or zero-height box (e.g. id %s)",
                self.ann_file,
                len(skipped),
                skipped[0],
            )
        self.skipped = len(skipped)
        self.annotations = per_image

    def _image_dir(self, first_image: str) -> Path:
        for cand in (self.root / self.split, self.root / "images" / self.split, self.root / "images"):
            if cand.is_dir():
                return cand
        if first_image:  # other layouts: ROOT or the sub-folder holding the first listed image
            for cand in [self.root, *sorted(p for p in self.root.iterdir() if p.is_dir())]:
                if (cand / first_image).is_file():
                    return cand
        raise DataError(
            f"{self.root}: image folder for split {self.split!r} not found "
            f"(tried {self.split}/, images/ and the sub-folders holding {first_image or 'the images'})"
        )

    def __len__(self) -> int:
        return len(self.images)

    def image_path(self, index: int) -> Path:
        return self.image_dir / self.images[index]["file_name"]

    def image_id(self, index: int) -> int:
        """Id of image ``index`` (no file read)."""
        return self.images[index]["id"]

    def __getitem__(self, index: int) -> Sample:
        return self.read(index)

    def read(self, index: int, image: np.ndarray | None = None) -> Sample:
        """Sample ``index``; ``image``: the already decoded image file (another reader of the same image)."""
        info = self.images[index]
        path = self.image_path(index)
        image = read_image(path) if image is None else image
        anns = self.annotations[info["id"]]
        cat_index = {cid: i for i, cid in enumerate(self.cat_ids)}
        n = len(anns)
        boxes = np.zeros((n, 4), np.float32)
        classes = np.zeros(n, np.int64)
        ignore = np.zeros(n, bool)
        for i, a in enumerate(anns):
            x, y, w, h = a["bbox"]
            boxes[i] = (x, y, x + w, y + h)
            classes[i] = cat_index[int(a["category_id"])]
            ignore[i] = bool(a.get("iscrowd", 0))
        keypoints = None
        if self.num_joints:
            keypoints = np.zeros((n, self.num_joints, 3), np.float32)
            for i, a in enumerate(anns):
                kp = a.get("keypoints")
                if kp:
                    keypoints[i] = np.asarray(kp, np.float32).reshape(self.num_joints, 3)
        return Sample(image, info["id"], boxes, classes, ignore, keypoints=keypoints, path=str(path))
