"""Our checkpoints: one file holds the experiment (task + config), the weights and, for training
runs, everything an exact resume needs (optimizer, AMP scaler, random generators, position).
Writes are atomic (temp file + rename); reads never execute code (``weights_only=True``).
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import Experiment, experiment_from_dict, to_dict
from .errors import UserError

FORMAT = "centerpoint_suite/1"


def save_checkpoint(path: Path, exp: Experiment, model: torch.nn.Module, **state: Any) -> None:
    """Write {format, experiment, model, **state} atomically (a unique temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "experiment": to_dict(exp), "model": model.state_dict(), **state}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def safe_load(path: Path | str, option: str = "--checkpoint") -> Any:
    """``torch.load`` that never runs code from the file, with one-line errors naming it.

    A file whose pickle asks for anything but tensors and plain containers is refused: such a
    file could execute arbitrary code when opened (``weights_only=True``).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{option} {path}: file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file, not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "Unsupported operand" in str(e):
            raise UserError(
                f"{path}: refused: the file holds objects whose loading would run code; only tensors, numbers "
                "and containers are loaded (torch.load weights_only=True)"
            ) from None
        raise UserError(f"{path}: not a readable checkpoint ({first})") from None
    except Exception as e:  # torch raises many kinds for a truncated or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: truncated or not a PyTorch checkpoint ({first})") from None


def load_checkpoint(path: Path | str) -> tuple[Experiment, dict[str, Any]]:
    """Read a checkpoint of ours: (experiment, payload). One-line errors for any other file."""
    path = Path(path)
    payload = safe_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and "state_dict" in payload:
            hint = " (it looks like an original CenterNet checkpoint: use --weights PATH --arch ARCH --task TASK)"
        raise UserError(f"{path}: not a centerpoint_suite checkpoint{hint}")
    try:
        return experiment_from_dict(payload["experiment"]), payload
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: checkpoint experiment unreadable ({type(e).__name__}: {e})") from None


def load_weights(model: torch.nn.Module, state: dict[str, Any], path: Path | str) -> None:
    """``model.load_state_dict`` with a one-line error listing what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for name, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                parts.append(f"{len(items)} {name} (e.g. {', '.join(items[:3])})")
        raise UserError(f"{path}: weights do not fit this network: {'; '.join(parts)}")
    model.load_state_dict(state)


# -- random generators ---------------------------------------------------------------------------
def capture_rng() -> dict[str, Any]:
    """The state of every process-wide random generator, as plain tensors / lists (weights_only safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, cached))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
