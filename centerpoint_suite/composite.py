"""Composite tasks: several task plugins on one network, named with ``+`` (``boxes2d+pose2d``).

Nothing here knows a particular task. Each sub-task keeps its own heads, targets, losses,
decoder, evaluator and reader, under its own prefix:

- heads and targets ``<task>.<name>`` (``boxes2d.heatmap``, ``pose2d.joint_heatmap``);
- loss parts ``<task>/<part>``; the total is the weighted sum of the sub-task totals, or with
  ``uncertainty`` the learned weighting of Kendall, Gal and Cipolla (CVPR 2018):
  ``sum_i exp(-s_i) * w_i * L_i + s_i`` with one learned log-variance ``s_i`` per task;
- metrics ``<task>/<key>`` (``boxes2d/bbox/AP``, ``pose2d/keypoints/AP``).

Data: every sub-task opens the same dataset root / split with its own reader (a COCO root with
``instances_<split>.json`` and ``person_keypoints_<split>.json`` gives boxes2d its 80-class boxes
and pose2d its people with joints); ``CompositeSource`` pairs their samples by image id, so each
sub-task sees exactly the objects it understands, in its own class indices.

Predictions: one ``Predictions`` per image holding every sub-task's detections, sorted by
score, with ``extras["task"]`` (index of the sub-task) and classes offset into ``classes`` (the
sub-tasks' class lists one after the other); ``split`` gives back a sub-task's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import UserError
from .registry import TASKS
from .task import SampleSource, Task
from .types import BatchMeta, OutputGeometry, Predictions, Sample

SEP = "+"


def split_prefixed(maps: dict[str, Any], name: str) -> dict[str, Any]:
    """The entries ``<name>.<key>`` of ``maps`` as ``{key: value}``."""
    head = name + "."
    return {k[len(head) :]: v for k, v in maps.items() if k.startswith(head)}


def prefixed(maps: dict[str, Any], name: str, sep: str = ".") -> dict[str, Any]:
    return {f"{name}{sep}{k}": v for k, v in maps.items()}


class CompositeSource:
    """The sub-tasks' readers of one dataset split, paired by image id.

    sources: sub-task name -> its reader, in task order; the first one's images set the order.
    An image that another reader does not list gets no objects for that task.
    """

    def __init__(self, sources: dict[str, SampleSource]) -> None:
        self.parts = dict(sources)
        first = next(iter(self.parts.values()))
        self.root = first.root
        self.classes = tuple(c for s in self.parts.values() for c in s.classes)
        self._ids = [first.image_id(i) for i in range(len(first))]
        self._index: dict[str, dict[Any, int]] = {}
        for name, src in list(self.parts.items())[1:]:
            self._index[name] = {src.image_id(i): i for i in range(len(src))}

    def __len__(self) -> int:
        return len(self._ids)

    def image_id(self, index: int) -> Any:
        return self._ids[index]

    def __getitem__(self, index: int) -> Sample:
        return self.read(index)

    def read(self, index: int, image: np.ndarray | None = None) -> Sample:
        """Every reader's sample of image ``index``; the image file is decoded once."""
        names = list(self.parts)
        first = self.parts[names[0]].read(index, image)
        parts = {names[0]: first}
        for name in names[1:]:
            j = self._index[name].get(self._ids[index])
            parts[name] = self.parts[name].read(j, first.image) if j is not None else _no_objects(first)
        return Sample(
            first.image,
            first.image_id,
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, bool),
            calib=first.calib,
            path=first.path,
            parts=parts,
        )


def _no_objects(like: Sample) -> Sample:
    return Sample(
        like.image, like.image_id, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool),
        calib=like.calib, path=like.path,
    )  # fmt: skip


@dataclass(frozen=True)
class Composite(Task):
    """Several tasks on one network (see the module docstring).

    tasks:       the sub-tasks, in order (their names joined by ``+`` name the composite).
    weights:     loss weight per sub-task (empty: 1 each).
    uncertainty: learn the per-task weighting (log-variances, saved in checkpoints).
    """

    tasks: tuple[Any, ...] = ()
    weights: tuple[float, ...] = ()
    uncertainty: bool = False
    max_objects: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if len(names) < 2:
            raise UserError("a composite task needs at least two tasks, e.g. boxes2d+pose2d")
        if len(set(names)) != len(names):
            raise UserError(f"task {SEP.join(names)}: each task may appear once")
        formats = {t.dataset_format for t in self.tasks}
        if len(formats) > 1:
            detail = ", ".join(f"{t.name} reads {t.dataset_format}" for t in self.tasks)
            raise UserError(f"task {SEP.join(names)}: {detail}; their data cannot meet in one sample")
        if self.weights and len(self.weights) != len(self.tasks):
            raise UserError(f"task.weights: {len(self.weights)} weights for {len(self.tasks)} tasks")
        object.__setattr__(self, "max_objects", max(t.max_objects for t in self.tasks))

    # -- identity ------------------------------------------------------------------------------
    @property
    def name(self) -> str:  # type: ignore[override]
        return SEP.join(t.name for t in self.tasks)

    @property
    def dataset_format(self) -> str:  # type: ignore[override]
        return self.tasks[0].dataset_format

    @property
    def classes(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(c for t in self.tasks for c in t.classes)

    def task(self, name: str) -> Any:
        for t in self.tasks:
            if t.name == name:
                return t
        raise UserError(f"task {self.name} has no sub-task {name!r}")

    def with_task(self, name: str, new: Any) -> Composite:
        return replace(self, tasks=tuple(new if t.name == name else t for t in self.tasks))

    def _offsets(self) -> list[int]:
        out, n = [], 0
        for t in self.tasks:
            out.append(n)
            n += len(t.classes)
        return out

    # -- network -------------------------------------------------------------------------------
    def heads(self) -> dict[str, int]:
        return {k: v for t in self.tasks for k, v in prefixed(t.heads(), t.name).items()}

    def heatmap_heads(self) -> tuple[str, ...]:
        return tuple(f"{t.name}.{h}" for t in self.tasks for h in t.heatmap_heads())

    # -- data ----------------------------------------------------------------------------------
    def open_dataset(self, root: Path, split: str | None) -> CompositeSource:
        return CompositeSource({t.name: t.open_dataset(root, split) for t in self.tasks})

    def default_data(self, cache_dir: Path) -> Path:
        from .datasets import synthetic_data_for

        generate = synthetic_data_for({t.name for t in self.tasks})
        if generate is None:
            raise UserError(f"task {self.name}: no built-in data for this combination; give --data DIR")
        return generate(Path(cache_dir))

    def with_classes(self, classes: tuple[str, ...]) -> Composite:
        raise UserError(f"task {self.name}: set the classes of each sub-task (task.<name>.classes)")

    def for_source(self, source: SampleSource) -> Composite:
        if not isinstance(source, CompositeSource):
            raise UserError(f"task {self.name} needs the readers of every sub-task (Composite.open_dataset)")
        return replace(self, tasks=tuple(t.for_source(source.parts[t.name]) for t in self.tasks))

    def flip_pairs(self) -> tuple[tuple[int, int], ...] | None:
        """Flip augmentation only when every sub-task allows it (each swaps its own left/right)."""
        return () if all(t.flip_pairs() is not None for t in self.tasks) else None

    def calibration(self, image_hw: tuple[int, int], path: Path | None = None) -> np.ndarray | None:
        found = [c for c in (t.calibration(image_hw, path) for t in self._calibrated(path)) if c is not None]
        return found[0] if found else None

    def _calibrated(self, path: Path | None) -> list[Any]:
        if path is None:
            return list(self.tasks)
        takers = []
        for t in self.tasks:
            try:
                t.calibration((1, 1), path)
                takers.append(t)
            except UserError:
                continue
        if not takers:
            raise UserError(f"--calib {path}: no sub-task of {self.name} takes a calibration")
        return takers

    # -- training ------------------------------------------------------------------------------
    def build_targets(self, sample: Sample, geometry: OutputGeometry) -> dict[str, np.ndarray]:
        if sample.parts is None:
            raise UserError(f"task {self.name}: the sample of {sample.path or sample.image_id} has no per-task parts")
        out: dict[str, np.ndarray] = {}
        for t in self.tasks:
            out.update(prefixed(t.build_targets(sample.parts[t.name], geometry), t.name))
        return out

    def loss_parameters(self) -> dict[str, float]:
        params = {f"{t.name}.{k}": v for t in self.tasks for k, v in t.loss_parameters().items()}
        if self.uncertainty:
            params.update({f"log_var.{t.name}": 0.0 for t in self.tasks})
        return params

    def loss(
        self, preds: dict[str, Tensor], targets: dict[str, Tensor], params: dict[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        params = params or {}
        weights = self.weights or (1.0,) * len(self.tasks)
        out: dict[str, Tensor] = {}
        total: Tensor | float = 0.0
        for t, w in zip(self.tasks, weights):
            sub = t.loss(split_prefixed(preds, t.name), split_prefixed(targets, t.name), split_prefixed(params, t.name))
            out.update(prefixed(sub, t.name, "/"))
            if self.uncertainty:
                s = params[f"log_var.{t.name}"]
                total = total + torch.exp(-s) * w * sub["loss"] + s
                out[f"{t.name}/log_var"] = s
            else:
                total = total + w * sub["loss"]
        out["loss"] = total
        return out

    # -- inference -----------------------------------------------------------------------------
    def decode(self, preds: dict[str, Tensor], meta: BatchMeta, k: int = 100) -> list[Predictions]:
        per_task = [t.decode(split_prefixed(preds, t.name), meta, k) for t in self.tasks]
        return [self.merge([sub[i] for sub in per_task]) for i in range(len(meta))]

    def decode_tensors(self, preds: dict[str, Tensor], k: int = 100, scale: float = 1.0) -> dict[str, Tensor]:
        """Every sub-task's exportable detections under its prefix (``boxes2d.boxes`` ...)."""
        out: dict[str, Tensor] = {}
        for t in self.tasks:
            out.update(prefixed(t.decode_tensors(split_prefixed(preds, t.name), k, scale), t.name))
        return out

    def detection_fields(self) -> dict[str, str]:
        return {
            f"{t.name}.{key}": f"{t.name}: {text}" for t in self.tasks for key, text in t.detection_fields().items()
        }

    def to_predictions(self, dets: dict[str, np.ndarray], meta: BatchMeta, scale: float = 1.0) -> list[Predictions]:
        per_task = [t.to_predictions(split_prefixed(dets, t.name), meta, scale) for t in self.tasks]
        return [self.merge([sub[i] for sub in per_task]) for i in range(len(meta))]

    def merge(self, parts: list[Predictions]) -> Predictions:
        """One image's sub-task predictions (task order) as one, sorted by score."""
        keys: dict[str, tuple[int, ...]] = {}
        for p in parts:
            for key, v in p.extras.items():
                shape = tuple(np.asarray(v).shape[1:])
                if keys.setdefault(key, shape) != shape:
                    raise ValueError(f"extras {key!r} differ in shape between sub-tasks: {keys[key]} vs {shape}")
        extras: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        for p in parts:
            for key, shape in keys.items():
                v = p.extras.get(key)
                missing = np.full((len(p), *shape), np.nan, np.float32)
                extras[key].append(np.asarray(v, np.float32) if v is not None else missing)
        offsets = self._offsets()
        task_index = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
        merged = Predictions(
            parts[0].image_id,
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
            np.concatenate([p.classes + off for p, off in zip(parts, offsets)]).astype(np.int64),
            {**{key: np.concatenate(v) for key, v in extras.items()}, "task": task_index},
        )
        order = np.argsort(-merged.scores, kind="stable")
        return merged.select(order)

    def split(self, pred: Predictions, name: str) -> Predictions:
        """Sub-task ``name``'s own predictions of one image (its class indices, its extras)."""
        i = [t.name for t in self.tasks].index(name)
        sub = pred.select(pred.extras["task"] == i)
        sub.classes = sub.classes - self._offsets()[i]
        extras = {}
        for key, v in sub.extras.items():
            if key == "task":
                continue
            if len(v) and np.issubdtype(np.asarray(v).dtype, np.floating) and np.isnan(v).all():
                continue  # another sub-task's field, filled with NaN here
            extras[key] = v
        sub.extras = extras
        return sub

    def merges_scales(self) -> bool:
        """Across test scales a composite merges per class of ``classes`` (each task's classes are
        distinct there), every extra (joints, task index) following its box."""
        return all(t.merges_scales() for t in self.tasks)

    def merge_flip(self, preds: dict[str, Tensor], flipped: dict[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for t in self.tasks:
            merged = t.merge_flip(split_prefixed(preds, t.name), split_prefixed(flipped, t.name))
            out.update(prefixed(merged, t.name))
        return out

    def oracle_maps(self, targets: dict[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for t in self.tasks:
            out.update(prefixed(t.oracle_maps(split_prefixed(targets, t.name)), t.name))
        return out

    # -- results -------------------------------------------------------------------------------
    def evaluate(self, source, predictions: list[Predictions], out_dir: Path | None = None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for t in self.tasks:
            sub_dir = Path(out_dir) / t.name if out_dir is not None else None
            sub = [self.split(p, t.name) for p in predictions]
            metrics.update(prefixed(t.evaluate(source.parts[t.name], sub, sub_dir), t.name, "/"))
        return metrics

    def write_results(self, source, predictions: list[Predictions], path: Path) -> None:
        for t in self.tasks:
            part = source.parts[t.name] if source is not None else None
            t.write_results(part, [self.split(p, t.name) for p in predictions], Path(path) / t.name)

    def draw(self, image: np.ndarray, predictions: Predictions, score_threshold: float = 0.3) -> np.ndarray:
        for t in self.tasks:
            image = t.draw(image, self.split(predictions, t.name), score_threshold)
        return image

    def primary_metric(self) -> str:
        """The first sub-task's primary metric (picks ``best.pth``)."""
        return f"{self.tasks[0].name}/{self.tasks[0].primary_metric()}"


def create_task(name: str, **params: Any) -> Any:
    """A registered task, or a composite ``a+b`` of registered tasks (each with its defaults)."""
    if SEP not in name:
        return TASKS.get(name)(**params)
    tasks = tuple(TASKS.get(n.strip())() for n in name.split(SEP))
    return Composite(tasks=tasks, **params)


def composite_from_dict(data: dict, task_from_dict) -> Composite:
    """Inverse of ``config.to_dict`` for a composite (``task_from_dict`` reads each sub-task)."""
    kw = {f.name: data[f.name] for f in fields(Composite) if f.init and f.name in data and f.name != "tasks"}
    if "weights" in kw:
        kw["weights"] = tuple(kw["weights"])
    return Composite(tasks=tuple(task_from_dict(d) for d in data["tasks"]), **kw)
