"""Personal parameters as plugins: group-stacked NNX modules that act at named decoder hooks.

A method in `methods/` brings a `PersonalModule` subclass. Its tables are `Personal` variables
with a leading group axis, `[G, ...]`, or `[G, L, ...]` for tables with one slice per decoder
layer (named in `layered`). It lists the hook points where it acts in `hooks` and implements the
matching methods:

  hook                  method                            acts on
  "prefix"              prefix(rows) -> [B, n, d]          vectors prepended to the input (n = prefix_len)
  "embed"               embed(x, rows) -> x                the token embeddings [B, T, d]
  "proj.q" .. "proj.down" project(name, y, x, rows) -> y   a linear projection's output y of input x
  "residual"            residual(h, rows) -> h             the residual stream after each layer
  "final"               final(h, rows) -> h                the final hidden state (after the final norm)

`rows` are each example's rows of the module's tables, picked by its group id inside the jitted
step (layered tables sliced to the current layer) and passed through `prepare` (cast to the
compute dtype, constants folded in). The core knows hook points, not kinds of parameters:
training, checkpoints, export and sharding see only `Personal` variables.

Several modules act at once (in the order they were composed); each may sit at its own grouping
level (`level`: None is the run's granularity, "global" a single shared row, or any other
granularity whose ids the caller passes in `level_ids`).

A module may also hold tables shared by every group (`shared`: one row, `[1, ...]`, trained by
every group's examples, e.g. a generic embedding or an encoder's projector), and read
per-example inputs (`inputs`: arrays computed from each example in the data stage, e.g. its
history's sentence embeddings). Per-example inputs travel with the examples' ids of other
levels, in `level_ids` ({key: [B, ...] array}), and reach the module in its rows.
"""
import dataclasses
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from perjax.errors import ConfigError

PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")
HOOK_POINTS = ("prefix", "embed", "residual", "final") + tuple(f"proj.{p}" for p in PROJECTIONS)
# Personal parameters are trained, so they keep float32 master values whatever the base's
# storage dtype (mixed precision: they are cast to the compute dtype where they are used).
PERSONAL_DTYPE = jnp.float32


def parse_targets(text, method: str) -> tuple[str, ...]:
  """A method's `targets` option ("q,v") as projection names."""
  targets = tuple(t.strip() for t in str(text).split(",") if t.strip())
  unknown = sorted(set(targets) - set(PROJECTIONS))
  if unknown or not targets:
    raise ConfigError(f"{method}.targets: unknown or empty target(s) {unknown or targets}; "
                      f"choose from {list(PROJECTIONS)}")
  return targets


@dataclasses.dataclass(frozen=True)
class LowRankDelta:
  """One group's low-rank delta (peft's LoRA): `tables` {f"{t}_a": [L, d_in, r], f"{t}_b":
  [L, r, d_out]} acting as `y + x a b * alpha / rank` on each target projection t."""
  rank: int
  alpha: float
  targets: tuple[str, ...]
  tables: dict

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


class OptionsMismatch(ConfigError):
  """Exported rows a module could hold under other options: `what` differs; `options` are the
  method options that would make it fit ({name: value})."""

  def __init__(self, what: str, options: Mapping):
    super().__init__(what)
    self.what, self.options = what, dict(options)


class Personal(nnx.Param):
  """A personal parameter: leading axis = group (user, persona, or the one global group)."""


@dataclasses.dataclass(frozen=True)
class Dims:
  """The decoder geometry a personal module is shaped by."""
  num_layers: int
  hidden_size: int
  projections: Mapping[str, tuple[int, int]]  # name -> (input features, output features)


class PersonalModule(nnx.Module):
  """Base class of personal-parameter plugins (see the module docstring).

  Subclasses set `hooks` (and `layered`, `prefix_len` where they apply) in `__init__`, create
  their `Personal` tables with `groups` rows, and override the hook methods they list.
  `describe()` returns the options an export records; `adapt_rows` maps rows exported under
  other options onto this module's (e.g. a different scale), identity by default.
  """
  hooks: tuple[str, ...] = ()
  layered: tuple[str, ...] = ()
  prefix_len: int = 0
  level: str | None = None
  # tables with one row serving every group (they couple the groups that train them)
  shared: tuple[str, ...] = ()
  # per-example inputs the module reads from its rows: {key: shape of one example's array}
  # (a class attribute or property: a dict instance attribute would not be hashable static data)
  inputs: Mapping[str, tuple[int, ...]] = {}

  def tables(self) -> dict[str, jax.Array]:
    return {name: v[...] for name, v in vars(self).items() if isinstance(v, Personal)}

  @property
  def groups(self) -> int:
    """The rows of its per-group tables (1 for a module of shared tables only)."""
    rows = [t.shape[0] for k, t in self.tables().items() if k not in self.shared]
    return rows[0] if rows else 1

  def prepare(self, rows: dict, dtype) -> dict:
    """Gathered rows -> what the hooks use. Elementwise only (it sees per-layer slices and
    layer-major stacks alike)."""
    return {k: v.astype(dtype) for k, v in rows.items()}

  def describe(self) -> dict:
    return {}

  def adapt_rows(self, rows: dict, exported: dict) -> dict:
    del exported
    return rows

  # -- export capabilities (optional): the core's exporters ask the module, never its type ---
  def merge_into(self, layers: dict, rows: dict) -> dict | None:
    """The base's stacked layer weights `layers` ({field: [L, ...]}, perjax layout, float32)
    with one group's `rows` (its tables' rows) folded in, computing what the module does, for
    a merged export (`perjax export --format merged`); None where the module cannot be folded
    into the weights."""
    del layers, rows
    return None

  @classmethod
  def as_low_rank(cls, options: dict, rows: dict) -> "LowRankDelta | None":
    """One group's `rows` of a module with `options` (its `describe()`) as a low-rank delta on
    target projections (`perjax export --format peft`, also from an exported group folder);
    None where the module is not one."""
    del options, rows
    return None

  def low_rank_delta(self, rows: dict) -> "LowRankDelta | None":
    return type(self).as_low_rank(self.describe(), rows)

  def low_rank_rows(self, delta: "LowRankDelta") -> dict | None:
    """The rows that make this module act as `delta` (a peft adapter as `init.adapter`), or None
    where it cannot hold one; a delta it could hold under other options is a ConfigError
    naming them."""
    del delta
    return None

  def prefix(self, rows):
    raise NotImplementedError

  def embed(self, x, rows):
    raise NotImplementedError

  def project(self, name, y, x, rows):
    raise NotImplementedError

  def residual(self, h, rows):
    raise NotImplementedError

  def final(self, h, rows):
    raise NotImplementedError


# A composed method's module to build: (name, level, factory(groups=, dims=, rngs=)).
ModuleFactory = Callable[..., PersonalModule]


@dataclasses.dataclass(frozen=True)
class ModuleSpec:
  name: str
  level: str | None
  factory: ModuleFactory


class PersonalStack(nnx.Module):
  """The personal modules of a model, in composition order, each an attribute by name."""

  def __init__(self, modules: Mapping[str, PersonalModule]):
    for name, module in modules.items():
      bad = [h for h in module.hooks if h not in HOOK_POINTS]
      if bad:
        raise ConfigError(f"personal module {name!r} names unknown hook point(s) {bad}; "
                          f"hook points: {list(HOOK_POINTS)}")
      setattr(self, name, module)
    self.names = tuple(modules)

  def modules(self) -> list[tuple[str, PersonalModule]]:
    return [(n, getattr(self, n)) for n in self.names]

  def acting(self, hook: str) -> list[tuple[str, PersonalModule]]:
    return [(n, m) for n, m in self.modules() if hook in m.hooks]

  @property
  def prefix_len(self) -> int:
    return sum(m.prefix_len for _, m in self.acting("prefix"))

  def layout(self) -> dict[str, tuple[str | None, int]]:
    """{module name: (level, groups)}: what the optimizer and the batches must match."""
    return {n: (m.level, m.groups) for n, m in self.modules()}

  def shared_tables(self) -> dict[str, tuple[str, ...]]:
    """{module name: its tables shared by every group}, for modules that have any."""
    return {n: tuple(m.shared) for n, m in self.modules() if m.shared}

  def gather(self, group_ids, dtype, *, level_ids=None, per_layer: bool, num_layers: int):
    """Each example's rows of every module: {"unlayered": {name: rows of its tables without a
    layer axis}, "layers": ...}, where "layers" is one {name: rows} per layer (`per_layer`, for
    an unrolled layer loop) or {name: rows stacked [L, B, ...]} (for the layer scan). Per layer, each layer's slice is
    gathered on its own, so the gradient flows back into `[G, ...]` slices, never through a
    `[B, L, ...]` stack of every row."""
    out_unlayered, stacked = {}, {}
    per = [dict() for _ in range(num_layers)]
    for name, m in self.modules():
      ids = ids_for(m, group_ids, level_ids)
      row = lambda k, t: t[jnp.zeros_like(ids) if k in m.shared else ids]
      tables = m.tables()
      flat = {k: t for k, t in tables.items() if k not in m.layered}
      out_unlayered[name] = m.prepare({k: row(k, t) for k, t in flat.items()}, dtype) if flat else {}
      out_unlayered[name].update(example_inputs(name, m, level_ids))
      layered = {k: tables[k] for k in m.layered}
      if not layered:
        continue
      if per_layer:
        for i in range(num_layers):
          per[i][name] = m.prepare({k: row(k, t[:, i]) for k, t in layered.items()}, dtype)
      else:
        rows = m.prepare({k: row(k, t) for k, t in layered.items()}, dtype)
        stacked[name] = {k: jnp.swapaxes(v, 0, 1) for k, v in rows.items()}
    return {"unlayered": out_unlayered, "layers": per if per_layer else stacked}


def example_inputs(name: str, module: PersonalModule, level_ids=None) -> dict:
  """The per-example inputs `module` declares, from `level_ids`; a missing one is an error."""
  missing = [k for k in module.inputs if k not in (level_ids or {})]
  if missing:
    raise ConfigError(f"personal module {name!r} reads per-example input(s) {missing}, which "
                      "were not given (level_ids); they come from its method's example_inputs")
  return {k: jnp.asarray(level_ids[k]) for k in module.inputs}


def per_example_array(values) -> np.ndarray:
  """One per-example array of `level_ids`: group ids as int32, inputs as float32."""
  a = np.asarray(values)
  return a.astype(np.int32) if np.issubdtype(a.dtype, np.integer) else a.astype(np.float32)


def ids_for(module: PersonalModule, group_ids, level_ids=None):
  """The group ids `module` reads: the run's for level None, else its level's."""
  if module.level is None:
    return group_ids
  if level_ids is not None and module.level in level_ids:
    return jnp.asarray(level_ids[module.level])
  if module.groups == 1:  # a single shared row (global level) needs no ids
    return jnp.zeros_like(group_ids)
  raise ConfigError(f"a personal module acts at level {module.level!r}, but no group ids of "
                    "that level were given (level_ids)")


def build_stack(specs, groups_of_level: Mapping[str | None, int], dims: Dims,
                rngs: nnx.Rngs) -> PersonalStack:
  """The `PersonalStack` of `specs` (ModuleSpec), each with its level's number of groups."""
  modules = {}
  for spec in specs:
    groups = groups_of_level[spec.level]
    if groups < 1:
      raise ConfigError(f"personal parameters need at least one group, got {groups}")
    module = spec.factory(groups=groups, dims=dims, rngs=rngs)
    module.level = spec.level
    modules[spec.name] = module
  return PersonalStack(modules)


def stack_builder(specs, groups_of_level) -> Callable[[Dims, nnx.Rngs], PersonalStack] | None:
  """What `Llama(personal=...)` takes: a builder of the stack, or None without modules."""
  specs = tuple(specs)
  if not specs:
    return None
  return lambda dims, rngs: build_stack(specs, groups_of_level, dims, rngs)


def single(factory: ModuleFactory, groups: int, name: str = "personal") -> Callable:
  """The builder for one module at the run's level: `Llama(config, personal=single(...))`."""
  return stack_builder([ModuleSpec(name, None, factory)], {None: groups})

