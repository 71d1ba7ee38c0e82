"""Original CenterNet model-zoo checkpoints -> our networks.

An original checkpoint is ``{"epoch": int, "state_dict": {key: tensor}, ...}`` (keys maybe
prefixed ``module.`` by DataParallel). Trunk keys equal ours under ``body.``; head keys use
the original short names, which this module (and only this module) translates:

- single-stack networks: ``hm.0.weight`` -> ``heads.0.heatmap.0.weight`` (same Sequential
  layout: 3x3 conv, ReLU, 1x1 conv);
- hourglass: ``hm.<stack>.0.conv.weight`` -> ``heads.<stack>.heatmap.0.weight`` and
  ``hm.<stack>.1.weight`` -> ``heads.<stack>.heatmap.2.weight``.

DLA checkpoints also carry the unused ImageNet classifier ``base.fc.*``, which is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from typing import Any

import torch
from torch import Tensor

from .errors import UserError
from .models import build_network
from .models.base import CenterNetModel

# original short head key -> our head name
ORIGINAL_HEAD_KEYS: dict[str, str] = {
    "hm": "heatmap",
    "wh": "size",
    "reg": "offset",
    "dep": "depth",
    "rot": "rotation",
    "dim": "dimensions",
    "hps": "joint_offsets",
    "hm_hp": "joint_heatmap",
    "hp_offset": "joint_offset",
}
OUR_HEAD_KEYS: dict[str, str] = {v: k for k, v in ORIGINAL_HEAD_KEYS.items()}

# original arch names (``--arch res_18``, ``hourglass``) -> our registered names
ORIGINAL_ARCHS: dict[str, str] = {
    "res_18": "res18",
    "res_34": "res34",
    "res_50": "res50",
    "res_101": "res101",
    "resdcn_18": "resdcn18",
    "resdcn_34": "resdcn34",
    "resdcn_50": "resdcn50",
    "resdcn_101": "resdcn101",
    "dla_34": "dla34",
    "hourglass": "hourglass104",
}

IGNORED_PREFIXES = ("base.fc.",)  # DLA's ImageNet classifier, unused by the detector
_SHOW = 8  # keys listed per category in a mismatch message

_HEAD_RE = re.compile(r"^(" + "|".join(sorted(ORIGINAL_HEAD_KEYS, key=len, reverse=True)) + r")\.(.+)$")
_STACKED_RE = re.compile(r"^(\d+)\.(0\.conv|1)\.(weight|bias)$")


def _map_key(key: str, stacked: bool) -> str | None:
    """Our state-dict key for one original key (None: ignored)."""
    if key.startswith(IGNORED_PREFIXES):
        return None
    m = _HEAD_RE.match(key)
    if m is None:
        return "body." + key
    ours, rest = ORIGINAL_HEAD_KEYS[m.group(1)], m.group(2)
    if stacked:
        s = _STACKED_RE.match(rest)
        if s is None:
            return f"heads.?.{ours}.{rest}"  # unexpected layout: reported as an unexpected key
        layer = "0" if s.group(2) == "0.conv" else "2"
        return f"heads.{s.group(1)}.{ours}.{layer}.{s.group(3)}"
    if rest in ("weight", "bias"):  # head_conv 0: a bare 1x1 conv instead of a Sequential
        return f"heads.0.{ours}.0.{rest}"
    return f"heads.0.{ours}.{rest}"


def _strip_module(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in state_dict.items():
        out[k[len("module.") :] if k.startswith("module.") else k] = v
    return out


def convert_original_state_dict(
    state_dict: Mapping[str, Tensor], model: CenterNetModel, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """Translate an original CenterNet state dict to ``model``'s keys, checking every key and shape.

    state_dict: original keys (optionally ``module.``-prefixed), tensors.
    model:      the network to load into (its state dict defines the expected keys/shapes).
    source:     name used in error messages (e.g. the checkpoint path).
    Returns a state dict that ``model.load_state_dict(..., strict=True)`` accepts.
    Raises UserError listing the first missing / unexpected / mis-shaped keys (in the
    original naming where possible). ``num_batches_tracked`` buffers absent from old
    checkpoints are filled with zeros.
    """
    stacked = getattr(model, "num_stacks", 1) > 1
    expected = model.state_dict()
    converted: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    for key, value in _strip_module(state_dict).items():
        ours = _map_key(key, stacked)
        if ours is None:
            continue
        if ours not in expected:
            unexpected.append(key)
            continue
        converted[ours] = value
        origin[ours] = key
    missing = []
    for key, ref in expected.items():
        if key in converted:
            continue
        if key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros(ref.shape, dtype=ref.dtype)
        else:
            missing.append(_original_name(key, stacked))
    misshaped = [
        f"{origin[k]}: {tuple(v.shape)} in checkpoint, {tuple(expected[k].shape)} in {type(model.body).__name__}"
        for k, v in converted.items()
        if k in origin and tuple(v.shape) != tuple(expected[k].shape)
    ]
    for k, v in converted.items():  # e.g. half-precision checkpoints into a float32 network
        if v.dtype != expected[k].dtype:
            converted[k] = v.to(expected[k].dtype)
    if missing or unexpected or misshaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
                parts.append(f"{len(items)} {label}: " + ", ".join(items[:_SHOW]) + more)
        heads = ", ".join(f"{h} ({OUR_HEAD_KEYS.get(h, '?')})={c}" for h, c in model.heads_spec.items())
        raise UserError(
            f"{source}: does not match the network ({type(model.body).__name__}, heads {heads}): "
            + "; ".join(parts)
            + ". Check the arch and the task (classes, joints) the checkpoint was trained for."
        )
    return converted


def _original_name(key: str, stacked: bool) -> str:
    """Best-effort original name of one of our keys (for error messages)."""
    if key.startswith("body."):
        return key[len("body.") :]
    parts = key.split(".")  # heads.<stack>.<name>.<layer>.<param>
    if len(parts) == 5 and parts[0] == "heads":
        short = OUR_HEAD_KEYS.get(parts[2], parts[2])
        if stacked:
            layer = "0.conv" if parts[3] == "0" else "1"
            return f"{short}.{parts[1]}.{layer}.{parts[4]}"
        return f"{short}.{parts[3]}.{parts[4]}"
    return key


def _task_heads(task: Any) -> dict[str, int]:
    """{our head name: channels} from a task object, a registered task name or a dict."""
    if isinstance(task, Mapping):
        heads = dict(task)
    elif isinstance(task, str):
        from . import tasks as _tasks  # noqa: F401  (registers the task plugins)
        from .registry import TASKS

        try:
            cls = TASKS.get(task)
        except KeyError as exc:
            raise UserError(str(exc.args[0])) from None
        heads = cls().heads()
    elif hasattr(task, "heads"):
        heads = dict(task.heads())
    else:
        raise UserError(f"task must be a task object, a registered task name or a heads dict, not {task!r}")
    bad = [h for h in heads if h not in OUR_HEAD_KEYS]
    if bad:
        raise UserError(f"heads {bad} have no original CenterNet counterpart; known: {sorted(OUR_HEAD_KEYS)}")
    return heads


def _infer_head_conv(state_dict: Mapping[str, Tensor], stacked: bool) -> int | None:
    key = "hm.0.0.conv.weight" if stacked else "hm.0.weight"
    w = state_dict.get(key)
    if w is not None and getattr(w, "ndim", 0) == 4 and w.shape[-1] == 3:
        return int(w.shape[0])
    if "hm.weight" in state_dict and not stacked:
        return 0  # a bare 1x1 conv head (head_conv 0 in the original)
    return None


def read_original_checkpoint(path: str | PathLike) -> dict[str, Tensor]:
    """Read the state dict of an original checkpoint file (``module.`` prefixes removed)."""
    from .checkpoint import safe_load

    obj = safe_load(path, "--weights")
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise UserError(
            f"{path}: expected an original CenterNet checkpoint {{'epoch', 'state_dict': {{key: tensor}}}} "
            "or a plain state dict"
        )
    return _strip_module(obj)


def load_original_checkpoint(
    path: str | PathLike, arch: str, task: Any, head_conv: int | None = None
) -> CenterNetModel:
    """Build ``arch`` with ``task``'s heads and load an original CenterNet checkpoint into it.

    path:      e.g. ``ctdet_coco_dla_2x.pth``.
    arch:      our network name (``dla34``, ``resdcn18``, ``hourglass104``, ...) or the
               original one (``dla_34``, ``resdcn_18``, ``hourglass``).
    task:      a task object (``.heads()``), a registered task name, or {our head name: channels}.
    head_conv: hidden channels of the heads; None reads them from the checkpoint.
    Returns the network in eval mode; ``model(x)`` with x (N, 3, H, W) gives the raw
    (pre-sigmoid) maps {our head name: (N, C, H/4, W/4)} of the last stack.
    Raises UserError naming ``path`` on an unreadable or mismatched checkpoint.
    """
    arch = ORIGINAL_ARCHS.get(arch, arch)
    heads = _task_heads(task)
    state = read_original_checkpoint(path)
    if isinstance(task, str):  # a bare task name: class / joint counts follow the checkpoint
        found = _head_channels(state)
        heads = {name: found.get(name, ch) for name, ch in heads.items()}
    stacked = arch.startswith("hourglass")
    if head_conv is None:
        head_conv = _infer_head_conv(state, stacked)
    try:
        with torch.device("meta"):  # no time spent initialising weights the checkpoint replaces
            # the original's heatmap heads are hm and hm_hp (our heatmap, joint_heatmap)
            heatmaps = tuple(h for h in heads if h in ("heatmap", "joint_heatmap"))
            model = build_network(arch, heads, head_conv=head_conv, heatmap_heads=heatmaps)
    except KeyError as exc:
        raise UserError(f"{path}: {exc.args[0]}") from None
    converted = convert_original_state_dict(state, model, source=str(path))
    model.load_state_dict(converted, strict=True, assign=True)
    return model.eval()


def _head_channels(state: Mapping[str, Tensor]) -> dict[str, int]:
    """{our head name: output channels} read from the last layer of each original head."""
    out: dict[str, int] = {}
    for key, value in state.items():
        m = _HEAD_RE.match(key)
        if m and key.endswith("weight") and getattr(value, "ndim", 0) == 4 and value.shape[-1] == 1:
            out[ORIGINAL_HEAD_KEYS[m.group(1)]] = int(value.shape[0])
    return out


# Pre-processing of the original CenterNet per task: normalisation preset, test input, mode.
ORIGINAL_PRESETS: dict[str, dict[str, Any]] = {
    "boxes2d": {"normalization": "original_coco", "test_input_hw": (512, 512), "test_mode": "keep_res"},
    "pose2d": {"normalization": "original_coco", "test_input_hw": (512, 512), "test_mode": "keep_res"},
    "mono3d": {"normalization": "original_kitti", "test_input_hw": (384, 1280), "test_mode": "fixed"},
}


def original_experiment(arch: str, task_name: str, weights: str | PathLike):
    """An Experiment that runs an original model-zoo checkpoint as the original code did.

    The task's class list follows the checkpoint (80 channels: the COCO categories), the
    pre-processing follows ``ORIGINAL_PRESETS`` (BGR input, the original's mean/std, COCO
    tested at ``--keep_res`` resolution, KITTI at 384x1280).
    """
    from dataclasses import replace

    from .config import DataConfig, Experiment, ModelConfig
    from .datasets.coco import COCO_CLASSES
    from .registry import TASKS

    arch = ORIGINAL_ARCHS.get(arch, arch)
    try:
        task = TASKS.get(task_name)()
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    channels = _head_channels(read_original_checkpoint(weights))
    n = channels.get("heatmap")
    if n is not None and n != len(task.classes):
        names = COCO_CLASSES if n == len(COCO_CLASSES) else tuple(f"class{i}" for i in range(n))
        task = task.with_classes(names)
    preset = ORIGINAL_PRESETS.get(task_name, ORIGINAL_PRESETS["boxes2d"])
    data = replace(DataConfig(), **preset)
    return Experiment(task=task, data=data, model=ModelConfig(arch=arch, weights=str(weights), channels_last=False))


def load_original_weights(model: CenterNetModel, path: str | PathLike) -> CenterNetModel:
    """Load an original CenterNet checkpoint into an already built network (strict)."""
    converted = convert_original_state_dict(read_original_checkpoint(path), model, source=str(path))
    model.load_state_dict(converted, strict=True)
    return model
