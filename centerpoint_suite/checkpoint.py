"""Our checkpoints: one file holds the experiment (task + config), weights and training state,
so eval / predict need nothing else. Writes are atomic (temp file + rename)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .config import Experiment, experiment_from_dict, to_dict
from .errors import UserError

FORMAT = "centerpoint_suite/1"


def save_checkpoint(path: Path, exp: Experiment, model: torch.nn.Module, **state: Any) -> None:
    """Write {format, experiment, model, **state} atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "experiment": to_dict(exp), "model": model.state_dict(), **state}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path | str) -> tuple[Experiment, dict[str, Any]]:
    """Read a checkpoint of ours: (experiment, payload). Clear errors for other files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--checkpoint {path}: file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and "state_dict" in payload:
            hint = " (it looks like an original CenterNet checkpoint: use --weights PATH --arch ARCH --task TASK)"
        raise UserError(f"{path}: not a centerpoint_suite checkpoint{hint}")
    return experiment_from_dict(payload["experiment"]), payload
