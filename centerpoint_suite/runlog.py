"""What a training run writes besides checkpoints, in one place and on rank 0 only: one JSON
line per epoch in ``OUT/log.jsonl``, TensorBoard event files in ``OUT/tensorboard/`` when the
``tensorboard`` package is installed (losses and learning rate every ``log_every`` iterations,
epoch records, validation metrics and a few decoded validation images), and user hooks.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

Hook = Callable[[dict], None]


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        log.debug("tensorboard not installed: no event files")
        return None
    return SummaryWriter(str(folder))


class RunLog:
    """Rank 0's log of a run. On other ranks (``enabled=False``) every method does nothing.

    out_dir: run folder; tensorboard: write event files when the package is installed;
    hooks: callables receiving every epoch record (the dict written to log.jsonl).
    """

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True, hooks: list[Hook] | None = None):
        self.out_dir, self.enabled = Path(out_dir), enabled
        self.hooks = hooks or []
        self.history: list[dict] = []
        self._tb = None
        if enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                self._tb = _tensorboard_writer(self.out_dir / "tensorboard")

    @property
    def wants_images(self) -> bool:
        return self._tb is not None

    def step(self, iteration: int, parts: dict[str, float], lr: float) -> None:
        """Per-iteration losses (averaged over processes) and learning rate."""
        if self._tb is None:
            return
        for k, v in parts.items():
            self._tb.add_scalar(f"train/{k}", v, iteration)
        self._tb.add_scalar("train/lr", lr, iteration)

    def epoch(self, record: dict) -> None:
        """One line of log.jsonl, the same scalars in TensorBoard, then the hooks."""
        if not self.enabled:
            return
        self.history.append(record)
        with open(self.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = int(record.get("iteration", 0))
            for k, v in record.items():
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and "/" in k:
                    self._tb.add_scalar(k if k.startswith(("train/", "val/")) else f"val/{k}", v, step)
            self._tb.flush()
        for hook in self.hooks:
            hook(record)

    def images(self, iteration: int, pictures: list[tuple[str, np.ndarray]]) -> None:
        """Decoded validation images (BGR uint8, as ``Task.draw`` returns them)."""
        if self._tb is None:
            return
        for name, img in pictures:
            self._tb.add_image(f"val/{name}", np.ascontiguousarray(img[..., ::-1]), iteration, dataformats="HWC")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
