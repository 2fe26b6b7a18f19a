"""The pure, jitted train step: `(state, batch, rng) -> (state, metrics)`.

Gradients and optimizer state exist only for the trainable parameters: the personal ones
(always), and the base weights only for full fine-tuning. The state is donated, so the step
updates the parameters in place; it compiles once for a fixed batch shape.
"""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from perjax.models.personal import Personal
from perjax.training.optim import per_group


class TrainState(struct.PyTreeNode):
  step: jax.Array
  personal: Any      # nnx.State of Personal variables, leading group axis
  base: Any          # nnx.State of the base weights
  rest: Any          # any other variables
  opt_personal: Any
  opt_base: Any      # None unless the base is trained


def split_model(model):
  """(graphdef, personal, base, rest) in the order `merge_model` expects."""
  return nnx.split(model, Personal, nnx.Param, ...)


def merge_model(graphdef, state: TrainState):
  return nnx.merge(graphdef, state.personal, state.base, state.rest)


class PersonalOptimizer:
  """`optim.per_group(tx)` for each personal module: every module has its own table size and
  reads its own level's group ids, so each row is updated only in steps where its group has
  examples. The optimizer state is {module name: per-group state}; a module with tables shared
  by every group (`PersonalModule.shared`) has {"rows": ..., "shared": ...} instead, its
  shared tables moving in every step (one row, present whenever there are examples)."""

  def __init__(self, tx: optax.GradientTransformation, layout: dict, trainable=None,
               shared: dict | None = None):
    self.layout = layout  # {module name: (level, groups)}, from PersonalStack.layout()
    self.shared = shared or {}  # {module name: shared table names}, PersonalStack.shared_tables()
    self.tx = per_group(tx)
    # the modules this optimizer moves (None: all); the others stay frozen, state included
    self.trainable = set(layout) if trainable is None else set(trainable)
    unknown = self.trainable - set(layout)
    if unknown:
      raise ValueError(f"no personal module(s) {sorted(unknown)} to train; have {list(layout)}")

  def _parts(self, name, params) -> dict:
    """A module's params split into per-group rows and shared tables (non-empty parts)."""
    shared = self.shared.get(name, ())
    parts = {"rows": nnx.State({k: v for k, v in params.items() if k not in shared}),
             "shared": nnx.State({k: v for k, v in params.items() if k in shared})}
    return {k: p for k, p in parts.items() if jax.tree.leaves(p)}

  def init(self, personal) -> dict | None:
    if not self.layout:
      return None
    out = {}
    for name in self.layout:
      params = personal["personal"][name]
      out[name] = ({k: self.tx.init(p) for k, p in self._parts(name, params).items()}
                   if name in self.shared else self.tx.init(params))
    return out

  def update(self, grads, opt_state, personal, group_ids, level_ids=None):
    """(new personal state, new optimizer state)."""
    new_personal = jax.tree.map(lambda x: x, personal)  # a copy whose modules are replaced
    new_opt = {}
    for name, (level, groups) in self.layout.items():
      if name not in self.trainable:
        new_opt[name] = opt_state[name]
        continue
      if level is None:
        ids = group_ids
      elif level_ids is not None and level in level_ids:
        ids = level_ids[level]
      else:  # a single shared row: present whenever there are examples
        ids = jnp.zeros_like(group_ids)
      ids = ids.reshape(-1)
      present = jax.ops.segment_max(jnp.ones_like(ids, jnp.int32), ids, num_segments=groups) > 0
      params = personal["personal"][name]
      if name not in self.shared:
        updates, new_opt[name] = self.tx.update(grads["personal"][name], opt_state[name], params,
                                                present=present)
        new_personal["personal"][name] = optax.apply_updates(params, updates)
        continue
      grads_of, new_opt[name], moved = self._parts(name, grads["personal"][name]), {}, {}
      for part, p in self._parts(name, params).items():
        here = present if part == "rows" else jnp.ones((1,), jnp.bool_)
        updates, new_opt[name][part] = self.tx.update(grads_of[part], opt_state[name][part], p,
                                                      present=here)
        moved.update(optax.apply_updates(p, updates))
      new_personal["personal"][name] = nnx.State(moved)
    return new_personal, new_opt


def personal_layout(model) -> dict:
  return {} if getattr(model, "personal", None) is None else model.personal.layout()


def init_train_state(model, tx: optax.GradientTransformation, *, train_base: bool = False,
                     trainable=None):
  """(graphdef, TrainState, personal_tx, base_tx) for `model`; `trainable` names the personal
  modules to train (None: all)."""
  graphdef, personal, base, rest = split_model(model)
  shared = {} if getattr(model, "personal", None) is None else model.personal.shared_tables()
  personal_tx = PersonalOptimizer(tx, personal_layout(model), trainable, shared)
  base_tx = tx if train_base else None
  state = TrainState(
      step=jnp.zeros((), jnp.int32), personal=personal, base=base, rest=rest,
      opt_personal=personal_tx.init(personal),
      opt_base=base_tx.init(base) if train_base else None)
  return graphdef, state, personal_tx, base_tx


def make_train_step(graphdef, personal_tx, base_tx, objective: Callable, num_groups: int,
                    *, donate: bool = True, in_shardings=None, out_shardings=None):
  """The jitted step. `batch` leaves are `[accum, B, ...]`: gradients are summed over the
  leading micro-batch axis (gradient accumulation) before one optimizer update.

  `objective(model, micro_batch, rng, num_groups) -> (loss, metrics)`; `num_groups` is the
  run's number of groups (the objectives' group means).
  """
  train_base = base_tx is not None
  # Gradients are pinned to their parameters' layout, so the partitioner cannot choose to keep
  # the accumulated gradients (the scan's carry) whole on every device.
  grad_shardings = None
  if in_shardings is not None:
    state_sh = in_shardings[0]
    grad_shardings = (state_sh.personal, state_sh.base) if train_base else (state_sh.personal,)
  like_params = lambda tree: (tree if grad_shardings is None
                              else jax.lax.with_sharding_constraint(tree, grad_shardings))

  def loss_fn(trainable, frozen_base, rest, micro, rng):
    personal, base = trainable if train_base else (trainable[0], frozen_base)
    model = nnx.merge(graphdef, personal, base, rest)
    return objective(model, micro, rng, num_groups)

  def step(state: TrainState, batch: dict, rng):
    trainable = (state.personal, state.base) if train_base else (state.personal,)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def accumulate(grads_sum, xs):
      micro, i = xs
      (loss, metrics), grads = grad_fn(trainable, state.base, state.rest, micro,
                                       jax.random.fold_in(rng, i))
      return like_params(jax.tree.map(jnp.add, grads_sum, grads)), (loss, metrics)

    accum = jax.tree.leaves(batch)[0].shape[0]
    zeros = like_params(jax.tree.map(jnp.zeros_like, trainable))
    grads, (losses, metrics) = jax.lax.scan(accumulate, zeros, (batch, jnp.arange(accum)))
    grads = jax.tree.map(lambda g: g / accum, grads)
    metrics = jax.tree.map(jnp.mean, metrics)

    # A group is updated only in steps where it has examples (see optim.per_group).
    personal, opt_personal = state.personal, state.opt_personal
    if opt_personal is not None:
      personal, opt_personal = personal_tx.update(grads[0], opt_personal, personal,
                                                  batch["group_ids"], batch.get("level_ids"))
    base, opt_base = state.base, state.opt_base
    if train_base:
      updates, opt_base = base_tx.update(grads[1], opt_base, base)
      base = optax.apply_updates(base, updates)
    new_state = state.replace(step=state.step + 1, personal=personal, base=base,
                              opt_personal=opt_personal, opt_base=opt_base)
    metrics = {**metrics, "objective": jnp.mean(losses), "grad_norm": optax.tree.norm(grads)}
    return new_state, metrics

  jit_kwargs = {}
  if in_shardings is not None:
    jit_kwargs = dict(in_shardings=in_shardings, out_shardings=out_shardings)
  return jax.jit(step, donate_argnums=(0,) if donate else (), **jit_kwargs)
