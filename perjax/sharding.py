"""Explicit shardings for the train step on a `("data", "fsdp", "tensor", "groups")` mesh.

- batch leaves `[accum, B, ...]`: `B` split over `data` x `fsdp` (the accumulation axis stays
  whole); with a `B` that does not divide, over `data` alone, or replicated;
- personal table and its per-group optimizer state `[G, ...]`: `G` split over `groups`;
- base weights: by name, through logical axes (`BASE_DIMS`, `LOGICAL_AXES`), as MaxText's
  logical_axis_rules do: the heads of q/k/v/o and the MLP's intermediate dim on `tensor`, the
  model dim d on `fsdp`, the layer axis never split. Their optimizer moments follow them;
- the step, the rng and any other variables: replicated.

A dim that does not divide its axis is not split on that axis (one warning names the leaf);
the step stays correct, the leaf just takes more memory.

The rule when `G` is not a multiple of the `groups` axis size: that leaf is *replicated*. To split
it, build the personal modules with `padded_groups(G, mesh)` rows: the extra rows never get
examples, so `optim.per_group` leaves them and their optimizer state untouched.

The same step runs on 1 device or N: pass `step_shardings(...)` to
`make_train_step(in_shardings=..., out_shardings=...)` and `place(...)` the state and batches.
"""
import logging
import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from perjax.errors import ConfigError

AXES = ("data", "fsdp", "tensor", "groups")

# Each base leaf's dims by logical name (perjax layout: layer stacks are [L, in, out]).
_PROJ_IN = ("layers", "embed", "heads")
BASE_DIMS = {
    "embed": ("vocab", "embed"),
    "lm_head": ("embed", "vocab"),
    "final_norm": ("embed",),
    "layers/attn_norm": ("layers", "embed"),
    "layers/mlp_norm": ("layers", "embed"),
    "layers/q": _PROJ_IN, "layers/k": _PROJ_IN, "layers/v": _PROJ_IN,
    "layers/o": ("layers", "heads", "embed"),
    "layers/q_bias": ("layers", "heads"), "layers/k_bias": ("layers", "heads"),
    "layers/v_bias": ("layers", "heads"),
    "layers/gate": ("layers", "embed", "mlp"), "layers/up": ("layers", "embed", "mlp"),
    "layers/down": ("layers", "mlp", "embed"),
}
# Logical dim -> mesh axis (None: never split).
LOGICAL_AXES = {"layers": None, "embed": "fsdp", "vocab": "tensor", "heads": "tensor",
                "mlp": "tensor"}
_CPU_HINT = "on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=N"
_log = logging.getLogger(__name__)
_warned: set = set()


def parse_mesh_sizes(spec: str) -> dict[str, int]:
  """`"data=2,fsdp=4"` -> every axis's size (the ones not named are 1)."""
  sizes = dict.fromkeys(AXES, 1)
  named = set()
  for part in str(spec).split(","):
    name, eq, value = part.strip().partition("=")
    name = name.strip()
    if not eq or not name:
      raise ConfigError(f"mesh {spec!r}: {part.strip()!r} is not AXIS=SIZE "
                        f"(axes: {', '.join(AXES)})")
    if name not in sizes:
      raise ConfigError(f"mesh {spec!r}: unknown axis {name!r} (axes: {', '.join(AXES)})")
    if name in named:
      raise ConfigError(f"mesh {spec!r}: axis {name!r} is given twice")
    try:
      size = int(value)
    except ValueError:
      raise ConfigError(f"mesh {spec!r}: the size of {name!r} must be an integer, "
                        f"got {value.strip()!r}") from None
    if size < 1:
      raise ConfigError(f"mesh {spec!r}: the size of {name!r} must be >= 1, got {size}")
    sizes[name] = size
    named.add(name)
  return sizes


def parse_mesh(spec: str, device_count: int) -> dict[str, int]:
  """`parse_mesh_sizes(spec)`, whose sizes must multiply to `device_count`."""
  sizes = parse_mesh_sizes(spec)
  total = math.prod(sizes.values())
  if total != device_count:
    raise ConfigError(f"mesh {spec!r} has {total} device(s) but {device_count} are used "
                      f"({_CPU_HINT})")
  return sizes


def make_mesh(spec: str | dict | None = None, devices=None, *, groups: int | None = None,
              data: int | None = None) -> Mesh:
  """A mesh over the four `AXES` and `devices` (all by default). `spec` is a `parse_mesh`
  string or an {axis: size} dict; without it, `groups` (default 1) and `data` (default: the
  rest of the devices) give a data x groups mesh."""
  devices = list(jax.devices() if devices is None else devices)
  if spec is None:
    groups = groups or 1
    spec = {"groups": groups, "data": len(devices) // groups if data is None else data}
  if isinstance(spec, dict):
    spec = ",".join(f"{k}={v}" for k, v in spec.items())
  sizes = parse_mesh(spec, len(devices))
  return Mesh(np.asarray(devices).reshape([sizes[a] for a in AXES]), AXES)


def mesh_devices(spec: str) -> tuple[dict[str, int], list]:
  """(sizes, the first that many visible devices) for a mesh that may use fewer devices than
  are visible (`perjax bench train --mesh data=1` on 8 devices)."""
  sizes = parse_mesh_sizes(spec)
  need, visible = math.prod(sizes.values()), jax.devices()
  if need > len(visible):
    raise ConfigError(f"mesh {spec!r} needs {need} devices but {len(visible)} are visible "
                      f"({_CPU_HINT})")
  return sizes, visible[:need]


def padded_groups(num_groups: int, mesh: Mesh) -> int:
  """The smallest table size >= num_groups that splits evenly over the `groups` axis."""
  k = mesh.shape["groups"]
  return math.ceil(num_groups / k) * k


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _warn_once(path: str, dim: int, size: int, axis: str, axis_size: int) -> None:
  key = (path, dim, size, axis, axis_size)
  if key not in _warned:
    _warned.add(key)
    _log.warning(f"base leaf {path!r}: dim {dim} ({size}) does not divide mesh axis {axis!r} "
                 f"({axis_size}); not split on {axis!r}")


def _fallback_dims(path: str, shape: tuple, mesh: Mesh) -> tuple:
  """A leaf the table does not know: `fsdp` on its largest dividing dim (never a layer axis)."""
  dims = [None] * len(shape)
  k = mesh.shape["fsdp"]
  first = 1 if path.startswith("layers/") else 0
  candidates = [i for i in range(first, len(shape)) if shape[i] % k == 0]
  if k > 1 and candidates:
    dims[max(candidates, key=lambda i: shape[i])] = "fsdp"
  return tuple(dims)


def leaf_sharding(path: str, shape: tuple, mesh: Mesh) -> NamedSharding:
  """The sharding of the base leaf at perjax `path` (`"layers/q"`, `"embed"`, ...) of `shape`;
  it depends only on these three, so a loader can place each leaf straight into its shards."""
  shape = tuple(shape)
  logical = BASE_DIMS.get(path)
  if logical is None or len(logical) != len(shape):
    return NamedSharding(mesh, P(*_fallback_dims(path, shape, mesh)))
  spec = []
  for dim, (name, size) in enumerate(zip(logical, shape)):
    axis = LOGICAL_AXES[name]
    if axis is None or mesh.shape[axis] == 1:
      spec.append(None)
    elif size % mesh.shape[axis]:
      _warn_once(path, dim, size, axis, mesh.shape[axis])
      spec.append(None)
    else:
      spec.append(axis)
  return NamedSharding(mesh, P(*spec))


def leaf_path(key_path) -> str:
  """The perjax name of a leaf from its pytree key path: its dict keys joined by '/' (an
  optimizer moment `[0].mu['layers']['q'].value` is named like its parameter, `layers/q`)."""
  return "/".join(str(k.key) for k in key_path if isinstance(k, jax.tree_util.DictKey))


def base_shardings(tree, mesh: Mesh):
  """`leaf_sharding` for every leaf of a base-shaped tree (the base, or its optimizer state)."""
  def one(key_path, x):
    shape = tuple(getattr(x, "shape", ()))
    return leaf_sharding(leaf_path(key_path), shape, mesh) if shape else replicated(mesh)
  return jax.tree_util.tree_map_with_path(one, tree)


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
                       opt_personal=table(state.opt_personal),
                       base=base_shardings(state.base, mesh), rest=rep(state.rest),
                       opt_base=base_shardings(state.opt_base, mesh))


def batch_shardings(batch: dict, mesh: Mesh) -> dict:
  """NamedShardings for a batch of `[accum, B, ...]` leaves: `B` over `data` x `fsdp`."""
  def one(x):
    shape = getattr(x, "shape", None) or np.shape(x)  # arrays or abstract ShapeDtypeStructs
    rows = shape[1] if len(shape) >= 2 else None
    for axes in (("data", "fsdp"), ("data",)):
      if rows is not None and rows % math.prod(mesh.shape[a] for a in axes) == 0:
        return NamedSharding(mesh, P(None, axes))
    return replicated(mesh)
  return jax.tree.map(one, batch)


def step_shardings(state, batch: dict, mesh: Mesh):
  """(in_shardings, out_shardings) for `make_train_step`: (state, batch, rng) -> (state, metrics)."""
  state_sh = state_shardings(state, mesh)
  return (state_sh, batch_shardings(batch, mesh), replicated(mesh)), (state_sh, replicated(mesh))


def place(tree, shardings):
  """`tree` put on the devices as `shardings` say (a thin `jax.device_put`)."""
  return jax.device_put(tree, shardings)


def bytes_on_device(tree, device) -> int:
  """Bytes of `tree`'s arrays resident on `device` (the sum of its shards there)."""
  total = 0
  for x in jax.tree.leaves(tree):
    for shard in getattr(x, "addressable_shards", ()):
      if shard.device == device:
        total += shard.data.nbytes
  return total
