"""Experiments: one flat, typed record per run, loaded from a Python file in configs/ and
overridable from the command line with ``--set section.field=value``.

A config file defines ``CONFIG = Experiment(...)``. ``--config`` takes a path or the name of a
file in configs/ (e.g. ``boxes2d_synthetic``). Experiments round-trip through plain dicts, so
a checkpoint carries the experiment that made it.
"""

from __future__ import annotations

import ast
import importlib.util
import traceback
import types
import typing
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .registry import TASKS
from .transforms import AugmentConfig


@dataclass(frozen=True)
class DataConfig:
    """root: dataset folder (None: the task's built-in synthetic data, generated once and reused).
    input_hw: train input size (h, w), multiple of 32. test_input_hw / test_mode: see EvalResize.
    workers: data loading processes; in training an upper bound (one per 4 cores on the CPU, cores - 1
    with a GPU; see ``loading``) unless ``train.threads`` is set.
    cache_gb: keep decoded training images in memory up to this many gigabytes per reading process
    (0: decode every time); see ``image_cache``."""

    root: str | None = None
    train_split: str | None = "train"
    val_split: str | None = "val"
    input_hw: tuple[int, int] = (512, 512)
    test_input_hw: tuple[int, int] = (512, 512)
    test_mode: str = "fixed"
    normalization: str = "imagenet_rgb"
    augment: AugmentConfig = AugmentConfig()
    workers: int = 2
    cache_gb: float = 0.0

    def __post_init__(self) -> None:
        if not self.cache_gb >= 0:
            raise UserError(f"data.cache_gb={self.cache_gb}: must be >= 0 (gigabytes; 0: no cache)")


@dataclass(frozen=True)
class ModelConfig:
    """arch: registered network; head_conv None: the network's default; weights: original
    CenterNet checkpoint to initialise from; pretrained: ImageNet backbone (needs the weights).
    frozen_bn: batch-norm layers use their running statistics in training too and never update
    them (small per-process batches; a multi-process run then equals the 1-process run).
    sync_bn: batch-norm statistics over all processes of a distributed GPU run (SyncBatchNorm).
    winograd: on CPU, train 3x3 stride-1 convolutions of 64+ channels on maps of 16x16 or more
    as Winograd F(4x4, 3x3) (forward and both gradients; ``models/winograd_train.py``).
    bn_relu_kernel: on CPU, train each batch norm that a ReLU directly follows as one layer of
    numba kernels (float64 sums, fewer passes over the map; ``models/bn_relu.py``)."""

    arch: str = "small"
    head_conv: int | None = None
    pretrained: bool = False
    weights: str | None = None
    channels_last: bool = True
    frozen_bn: bool = False
    sync_bn: bool = False
    winograd: bool = True
    bn_relu_kernel: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """batch_size: the global batch, split over the processes of a distributed run.
    checkpoint_every: also write ``last.pth`` every this many iterations (0: at epoch ends only).
    log_every: iterations between TensorBoard loss points (when tensorboard is installed).
    threads: intra-op threads of each training process; 0: the usable cores left after the data
    workers (threads + workers <= cores, ``data.workers`` then an upper bound), or
    ``OMP_NUM_THREADS`` when set; > 0: this many, with ``data.workers`` as given (see ``loading``).
    lr_schedule: "step" (x ``lr_gamma`` at each of ``lr_steps``, in epochs) or "linear" (from
    ``lr`` down to 0 at the end of the run: of its epochs, or of ``time_budget_min`` when that comes
    first; the schedule found best for a fixed budget by Li et al., "Budgeted Training", 2020).
    ema_decay: > 0: validate, checkpoint and deploy an exponential moving average of the weights
    with this decay per iteration (see ``ema``); 0: the trained weights themselves."""

    epochs: int = 70
    batch_size: int = 32
    lr: float = 1.25e-4
    lr_schedule: str = "step"
    lr_steps: tuple[int, ...] = (45, 60)
    lr_gamma: float = 0.1
    warmup_iters: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    amp: bool = False
    device: str = "auto"
    seed: int = 0
    val_every: int = 1
    time_budget_min: float = 0.0  # > 0: stop after this many minutes; lr steps follow time progress
    checkpoint_every: int = 1000
    log_every: int = 20
    tensorboard: bool = True
    threads: int = 0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("step", "linear"):
            raise UserError(f"train.lr_schedule={self.lr_schedule!r}: unknown; use 'step' or 'linear'")
        if not 0 <= self.ema_decay < 1:
            raise UserError(f"train.ema_decay={self.ema_decay}: must be in [0, 1) (0: no average; e.g. 0.999)")


@dataclass(frozen=True)
class TestConfig:
    """k: detections per image. scales: test scales (several: multi-scale testing, see
    ``multiscale``), whose detections are merged by ``merge``: "soft_nms_gaussian" (the
    original's), "soft_nms_linear" or "nms", with IoU threshold ``nms_iou`` (linear / nms),
    gaussian ``soft_nms_sigma``, drop under ``nms_score_threshold``, and the original's
    pixel-inclusive box areas when ``nms_plus_one``. score_threshold: for drawing."""

    k: int = 100
    flip_test: bool = False
    batch_size: int = 8
    score_threshold: float = 0.3
    scales: tuple[float, ...] = (1.0,)
    merge: str = "soft_nms_gaussian"
    nms_iou: float = 0.5
    soft_nms_sigma: float = 0.5
    nms_score_threshold: float = 0.001
    nms_plus_one: bool = False


@dataclass(frozen=True)
class Experiment:
    task: Any
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    test: TestConfig = TestConfig()


CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _configs_package_dir() -> Path:
    spec = importlib.util.find_spec("centerpoint_suite.configs")
    if spec is None or not spec.submodule_search_locations:
        return CONFIG_DIR
    return Path(list(spec.submodule_search_locations)[0])


def list_configs() -> list[str]:
    return sorted(p.stem for p in _configs_package_dir().glob("*.py") if not p.stem.startswith("_"))


def load_config(ref: str) -> Experiment:
    """Load ``CONFIG`` from a file path or a config name in configs/."""
    path = Path(ref)
    if not path.suffix and not path.exists():
        path = _configs_package_dir() / f"{ref}.py"
    if not path.is_file():
        raise UserError(f"--config {ref}: no such file; built-in configs: {', '.join(list_configs())}")
    spec = importlib.util.spec_from_file_location(f"_centerpoint_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the file is user code: report where it failed
        line = _error_line(e, path)
        where = f"{path}:{line}" if line else str(path)
        detail = e.msg if isinstance(e, SyntaxError) else str(e)
        raise UserError(f"{where}: error while loading config: {type(e).__name__}: {detail}") from None
    cfg = getattr(module, "CONFIG", None)
    if not isinstance(cfg, Experiment):
        raise UserError(f"{path}: must define CONFIG = Experiment(...)")
    return cfg


def _error_line(error: BaseException, path: Path) -> int | None:
    """Line of ``path`` where ``error`` arose: a SyntaxError's own line, else the innermost
    traceback frame running ``path``."""
    if isinstance(error, SyntaxError) and error.lineno:
        return int(error.lineno)
    line = None
    target = str(Path(path).resolve())
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if str(Path(frame.f_code.co_filename).resolve()) == target:
            line = lineno
    return line


def default_config(task_name: str, real_data: bool = False) -> Experiment:
    """The task's built-in experiment: ``configs/<task>_synthetic.py`` for the built-in data,
    or the task's standard recipe for real data (``Task.real_config``, e.g. boxes2d_coco).

    A composite ``a+b`` uses ``configs/a_b_synthetic.py`` when there is one; otherwise the first
    task's experiment with the composite of every sub-task's configured task.
    """
    from .composite import SEP, Composite

    names = [n.strip() for n in task_name.split(SEP)]
    classes = [TASKS.get(n) for n in names]  # clear error for unknown tasks
    if len(names) == 1:
        own = classes[0].real_config if real_data else None
        return load_config(own or f"{task_name}_synthetic")
    own = "_".join(names) + "_synthetic"
    if not real_data and own in list_configs():
        return load_config(own)
    subs = [default_config(n, real_data) for n in names]
    return replace(subs[0], task=Composite(tasks=tuple(e.task for e in subs)))


def _coerce(value: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null") and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        return _coerce(value, others[0], key)
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if typ in (int, float, str):
            return typ(value)
        if origin is tuple:
            parsed = ast.literal_eval(value) if value.strip()[:1] in "([" else [v for v in value.split(",") if v]
            if not isinstance(parsed, list | tuple):
                parsed = [parsed]
            inner = args[0] if args else str
            return tuple(_coerce(str(v), inner, key) for v in parsed)
    except (ValueError, SyntaxError) as e:
        raise UserError(f"--set {key}={value}: cannot read as {getattr(typ, '__name__', typ)}: {e}") from None
    return ast.literal_eval(value)


def _field_types(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints.get(f.name, Any) for f in fields(obj) if f.init}


def apply_override(obj: Any, path: list[str], value: str, key: str) -> Any:
    from .composite import Composite

    if not is_dataclass(obj):
        raise UserError(f"--set {key}: {'.'.join(path)} is not a settable field")
    types_ = _field_types(obj)
    name = path[0]
    if isinstance(obj, Composite) and name not in types_ and len(path) > 1:  # task.<sub-task>.<field>
        return obj.with_task(name, apply_override(obj.task(name), path[1:], value, key))
    if name not in types_:
        raise UserError(f"--set {key}: unknown field {name!r}; fields: {', '.join(types_)}")
    if len(path) == 1:
        if is_dataclass(getattr(obj, name)):
            raise UserError(f"--set {key}: {name} is a section; set one of its fields")
        return replace(obj, **{name: _coerce(value, types_[name], key)})
    return replace(obj, **{name: apply_override(getattr(obj, name), path[1:], value, key)})


def apply_overrides(cfg: Experiment, items: tuple[str, ...] | list[str]) -> Experiment:
    """Apply ``section.field=value`` strings (e.g. ``train.batch_size=8``, ``task.max_objects=64``)."""
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item}: expected key=value, e.g. train.batch_size=8")
        key, value = item.split("=", 1)
        cfg = apply_override(cfg, key.strip().split("."), value.strip(), key)
    return cfg


def to_dict(obj: Any) -> Any:
    from .task import Task

    if is_dataclass(obj):
        out = {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, Task):  # record which task, for task_from_dict
            out = {"name": obj.name, **out}
        return out
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    return obj


def _from_dict(cls: Any, data: Any) -> Any:
    if not is_dataclass(cls) or not isinstance(data, dict):
        return data
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in fields(cls):
        if f.name not in data or not f.init:
            continue
        typ = hints.get(f.name, Any)
        val = data[f.name]
        kw[f.name] = _typed(typ, val)
    return cls(**kw)


def _typed(typ: Any, val: Any) -> Any:
    if is_dataclass(typ):
        return _from_dict(typ, val)
    origin = typing.get_origin(typ)
    if origin is tuple and isinstance(val, list):
        args = typing.get_args(typ)
        inner = args[0] if args else Any
        return tuple(_typed(inner, v) for v in val)
    if origin in (typing.Union, types.UnionType):
        for a in typing.get_args(typ):
            if a is type(None):
                continue
            if typing.get_origin(a) is tuple and isinstance(val, list):
                return _typed(a, val)
    return val


def task_from_dict(data: dict) -> Any:
    from .composite import SEP, composite_from_dict

    data = dict(data)
    name = data.pop("name")
    if SEP in name:
        return composite_from_dict(data, task_from_dict)
    return _from_dict(TASKS.get(name), data)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of an experiment (``train.lr``, ``task.classes`` ...) -> plain values."""
    data = to_dict(obj) if is_dataclass(obj) else obj
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def experiment_differences(old: Experiment, new: Experiment, ignore: tuple[str, ...] = ()) -> list[str]:
    """``key: old -> new`` for every field that differs, except keys under a prefix in ``ignore``."""
    a, b = flatten(old), flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if any(key == p or key.startswith(p + ".") for p in ignore):
            continue
        if a.get(key) != b.get(key):
            diffs.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return diffs


def experiment_from_dict(data: dict) -> Experiment:
    return Experiment(
        task=task_from_dict(data["task"]),
        data=_from_dict(DataConfig, data.get("data", {})),
        model=_from_dict(ModelConfig, data.get("model", {})),
        train=_from_dict(TrainConfig, data.get("train", {})),
        test=_from_dict(TestConfig, data.get("test", {})),
    )


__all__ = [
    "DataConfig",
    "Experiment",
    "ModelConfig",
    "TestConfig",
    "TrainConfig",
    "apply_overrides",
    "default_config",
    "experiment_differences",
    "experiment_from_dict",
    "list_configs",
    "load_config",
    "to_dict",
]
