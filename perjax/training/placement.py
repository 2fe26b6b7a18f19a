"""Where the training step runs. By default on every local device, data parallel (the batch's
rows split over them, the state replicated); `config.mesh` names another mesh, and a
`jax.distributed` run spans every process's devices. A batch whose rows do not split over all
local devices uses the most of them that it splits over, and says so in one line."""
import sys

import jax
import numpy as np

from perjax.training.across_processes import AcrossProcesses


def data_devices(rows: int, devices) -> list:
  """The first k of `devices`, k the largest count that divides `rows`."""
  devices = list(devices)
  k = max(d for d in range(1, len(devices) + 1) if rows % d == 0)
  return devices[:k]


def placement(state, example_batch: dict, mesh_spec: str = "") -> AcrossProcesses | None:
  """The step's layout over devices, or None for one device (no shardings to give)."""
  if mesh_spec or jax.process_count() > 1:
    return AcrossProcesses(state, example_batch, mesh_spec)
  local = jax.local_devices()
  rows = np.shape(example_batch["group_ids"])[1]  # [accum, B]: B splits over the devices
  devices = data_devices(rows, local)
  if len(devices) < len(local):
    print(f"training on {len(devices)} of {len(local)} devices: a batch of {rows} rows splits "
          f"evenly over no more (set train.batch_size to a multiple of {len(local)} to use "
          "all)", file=sys.stderr)
  return AcrossProcesses(state, example_batch, devices=devices) if len(devices) > 1 else None
