"""Golden weights and input of ../shared/reference (see its README): each tensor from its own key name."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import torch

from centerpoint_suite.zoo import ORIGINAL_HEAD_KEYS


def golden_tensor(key: str, shape: list[int]) -> torch.Tensor:
    """The golden value of one original state-dict key (RandomState seeded by crc32 of the key)."""
    shape = tuple(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    rs = np.random.RandomState(zlib.crc32(key.encode()))
    if key.endswith("running_var"):
        v = 1 + 0.5 * rs.random_sample(shape)
    elif key.endswith("running_mean"):
        v = 0.1 * rs.standard_normal(shape)
    elif len(shape) == 1 and key.endswith("weight"):
        v = 1 + 0.1 * rs.standard_normal(shape)
    elif len(shape) == 1:
        v = 0.1 * rs.standard_normal(shape)
    else:
        v = rs.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return torch.from_numpy(np.asarray(v, dtype=np.float32))


def golden_state_dict(keys_json: Path) -> dict[str, torch.Tensor]:
    """{original key: golden tensor} for a ``<name>.keys.json`` file."""
    keys = json.loads(Path(keys_json).read_text())
    return {k: golden_tensor(k, s) for k, s in keys.items()}


def golden_input(h: int, w: int) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(1).standard_normal((1, 3, h, w)).astype(np.float32))


def reference_entry(reference_dir: Path, name: str) -> dict:
    return json.loads((reference_dir / "index.json").read_text())[name]


def our_heads(entry: dict) -> dict[str, int]:
    """{our head name: channels} of an index.json entry."""
    return {ORIGINAL_HEAD_KEYS[k]: c for k, c in entry["heads"].items()}
