"""Explicit shardings for the train step on a `("data", "groups")` device mesh.

- batch leaves `[accum, B, ...]`: `B` split over `data` (the accumulation axis stays whole);
- personal table and its per-group optimizer state `[G, ...]`: `G` split over `groups`;
- base weights, their optimizer state, the step and the rng: replicated.

The rule when `G` is not a multiple of the `groups` axis size: that leaf is *replicated* (still
correct, just not memory-split). To split it, build the personal modules with
`padded_groups(G, mesh)` rows: the extra rows never get examples, so
`optim.per_group` leaves them and their optimizer state untouched; they only cost memory.
Likewise `B` must be a multiple of the `data` size, or the batch is replicated.

The same step runs on 1 device or N: pass `step_shardings(...)` to
`make_train_step(in_shardings=..., out_shardings=...)` and `place(...)` the state and batches.
"""
import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ("data", "groups")


def make_mesh(groups: int = 1, data: int | None = None, devices=None) -> Mesh:
  """A `("data", "groups")` mesh over `devices` (all by default); `data` defaults to the rest."""
  devices = list(jax.devices() if devices is None else devices)
  data = len(devices) // groups if data is None else data
  if data * groups != len(devices):
    raise ValueError(f"mesh {data} x {groups} does not match {len(devices)} devices")
  return Mesh(np.asarray(devices).reshape(data, groups), AXES)


def padded_groups(num_groups: int, mesh: Mesh) -> int:
  """The smallest table size >= num_groups that splits evenly over the `groups` axis."""
  k = mesh.shape["groups"]
  return math.ceil(num_groups / k) * k


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _table_sharding(x, mesh: Mesh) -> NamedSharding:
  # every personal leaf (and its per-group optimizer state) leads with its module's group axis
  shape = getattr(x, "shape", ())
  if len(shape) >= 1 and shape[0] % mesh.shape["groups"] == 0:
    return NamedSharding(mesh, P("groups"))
  return replicated(mesh)


def state_shardings(state, mesh: Mesh):
  """A TrainState-shaped tree of NamedShardings for `state` (see the module docstring)."""
  table = lambda tree: jax.tree.map(lambda x: _table_sharding(x, mesh), tree)
  rep = lambda tree: jax.tree.map(lambda _: replicated(mesh), tree)
  return state.replace(step=replicated(mesh), personal=table(state.personal),
                       opt_personal=table(state.opt_personal), base=rep(state.base),
                       rest=rep(state.rest), opt_base=rep(state.opt_base))


def batch_shardings(batch: dict, mesh: Mesh) -> dict:
  """NamedShardings for a batch of `[accum, B, ...]` leaves: `B` over `data`."""
  def one(x):
    if np.ndim(x) >= 2 and np.shape(x)[1] % mesh.shape["data"] == 0:
      return NamedSharding(mesh, P(None, "data"))
    return replicated(mesh)
  return jax.tree.map(one, batch)


def step_shardings(state, batch: dict, mesh: Mesh):
  """(in_shardings, out_shardings) for `make_train_step`: (state, batch, rng) -> (state, metrics)."""
  state_sh = state_shardings(state, mesh)
  return (state_sh, batch_shardings(batch, mesh), replicated(mesh)), (state_sh, replicated(mesh))


def place(tree, shardings):
  """`tree` put on the devices as `shardings` say (a thin `jax.device_put`)."""
  return jax.device_put(tree, shardings)
