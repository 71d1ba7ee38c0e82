"""Reader for any COCO-format dataset: an annotation json plus an image folder.

Layout resolved from a root folder and a split name (first match wins):
``ROOT/annotations/<kind>_<split>.json`` with images in ``ROOT/<split>/`` or
``ROOT/images/<split>/``; ``kind`` is ``instances`` (boxes) or ``person_keypoints``.
Fallbacks for other layouts (e.g. mmpose's test data): ROOT may be the annotation json
itself, or a folder without ``annotations/`` holding one COCO annotation json (a json
object; result lists are skipped); images are then looked for in ``ROOT/<split>/``,
``ROOT/images/``, ROOT and its sub-folders (the first holding the first listed image).
Category ids are mapped to contiguous indices in ascending id order; ``iscrowd``
annotations become ignore regions; boxes with no area are skipped (counted).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from centerpoint_suite.errors import DataError, UserError
from centerpoint_suite.types import Sample

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
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: malformed json: {e.msg}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror}") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations' lists)")
    return data


def read_image(path: Path | str) -> np.ndarray:
    """BGR uint8 (H, W, 3); DataError naming the file when missing or undecodable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: image missing or not decodable")
    return img


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
        cats = sorted(data.get("categories", []), key=lambda c: c["id"])
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
        cat_index = {cid: i for i, cid in enumerate(self.cat_ids)}
        images = data["images"]
        if not images:
            raise UserError(f"{self.ann_file}: empty dataset (no images)")
        self.image_dir = self._image_dir(str(images[0].get("file_name", "")))
        self.images = sorted(images, key=lambda im: im["id"])
        missing = [im["file_name"] for im in self.images if not (self.image_dir / im["file_name"]).is_file()]
        if missing:
            raise DataError(
                f"{self.image_dir}: {len(missing)} image(s) listed in {self.ann_file.name} are missing, "
                f"e.g. {missing[0]}"
            )
        per_image: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        skipped = 0
        for k, ann in enumerate(data["annotations"]):
            try:
                cid, iid, box = int(ann["category_id"]), int(ann["image_id"]), ann["bbox"]
                if len(box) != 4:
                    raise ValueError("bbox needs 4 numbers")
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"{self.ann_file}: annotation #{k} (id {ann.get('id')}) malformed: {e}") from None
            if cid not in cat_index:
                continue
            if iid not in per_image:
                raise DataError(f"{self.ann_file}: annotation id {ann.get('id')} refers to unknown image {iid}")
            if box[2] <= 0 or box[3] <= 0:
                skipped += 1
                continue
            per_image[iid].append(ann)
        if skipped:
            log.info("%s: skipped %d annotation(s) with an empty box", self.ann_file, skipped)
        self.skipped = skipped
        self.annotations = per_image
        self.num_joints = 0
        for c in cats:
            if c.get("keypoints"):
                self.num_joints = len(c["keypoints"])

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

    def __getitem__(self, index: int) -> Sample:
        info = self.images[index]
        path = self.image_path(index)
        image = read_image(path)
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
