"""Consistency checks between dataset splits, run by the commands before any work is done."""

from __future__ import annotations

from .errors import UserError
from .task import SampleSource


def _describe(source: SampleSource) -> str:
    """The file (COCO annotation json) or folder a split was read from."""
    ann_file = getattr(source, "ann_file", None)
    return str(ann_file if ann_file is not None else source.root)


def check_same_classes(train: SampleSource, val: SampleSource | None) -> None:
    """UserError unless the val split lists the same classes, in the same order, as the train split.

    The model's heatmap channel c is class c of the train split; the evaluator maps channel c
    to class c of the val split, so any difference would score detections as the wrong
    category (a silently wrong number).
    """
    if val is None or tuple(train.classes) == tuple(val.classes):
        return
    only_train = [c for c in train.classes if c not in val.classes]
    only_val = [c for c in val.classes if c not in train.classes]
    if only_train or only_val:
        diff = f"only in train: {only_train or 'none'}; only in val: {only_val or 'none'}"
    else:
        diff = "same classes in another order"
    raise UserError(
        f"train split {_describe(train)} and val split {_describe(val)} list different classes ({diff}); "
        f"choose the classes with --set 'task.classes=(...)' (read by name from both splits)"
    )
