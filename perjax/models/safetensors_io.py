"""Reads the `*.safetensors` weights of a Hugging Face model folder into numpy arrays.

Kept framework-free (name -> np.ndarray) so every model family's loader can map names its own way.
"""
import json
from pathlib import Path

import numpy as np
from safetensors import safe_open

from perjax.errors import PerjaxError

_INDEX = "model.safetensors.index.json"


def safetensors_files(folder: str | Path) -> list[Path]:
  """The weight files of `folder`: the shards its index names, else every `*.safetensors`."""
  folder = Path(folder)
  index = folder / _INDEX
  if index.exists():
    weight_map = json.loads(index.read_text())["weight_map"]
    files = [folder / f for f in sorted(set(weight_map.values()))]
    missing = [f.name for f in files if not f.exists()]
    if missing:
      raise PerjaxError(f"{folder}: {_INDEX} names missing shard(s) {', '.join(missing)}")
    return files
  files = sorted(folder.glob("*.safetensors"))
  if not files:
    raise PerjaxError(f"{folder}: no *.safetensors weights found")
  return files


def read_safetensors(folder: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
  """All tensors of `folder` (sharded or not) as name -> array, keeping the stored dtype.

  With `prefix`, only names starting with it are read (e.g. one tower of a larger checkpoint).
  """
  out: dict[str, np.ndarray] = {}
  for path in safetensors_files(folder):
    with safe_open(str(path), framework="numpy") as f:
      for name in f.keys():
        if not name.startswith(prefix):
          continue
        if name in out:
          raise PerjaxError(f"{path}: tensor {name!r} appears in more than one shard")
        out[name] = f.get_tensor(name)
  return out
