"""Optimizers for personal parameters: one independent optimizer per group.

`per_group(tx)` runs `tx` on each row of the leading group axis separately (vmapped), with its own
state (moments *and* step count) per group, and leaves a group's row and state untouched in a step
where it has no examples. So for Adam-family optimizers too, training G groups together follows
exactly the trajectory each group would follow alone on its own batches.
"""
import jax
import jax.numpy as jnp
import optax

from perjax.errors import ConfigError
from perjax.registry import OPTIMIZERS


def per_group(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """Wrap `tx` so it acts per row of the leading group axis. `update` needs `present` [G] bool."""

  def init(params):
    return jax.vmap(tx.init)(params)

  def update(updates, state, params=None, *, present, **extra):
    del extra

    def one(u, s, p):
      return tx.update(u, s, p)

    new_updates, new_state = jax.vmap(one)(updates, state, params)

    def keep_absent(new, old):  # rows of absent groups: no update, state unchanged
      mask = present.reshape((-1,) + (1,) * (new.ndim - 1))
      return jnp.where(mask, new, old)

    new_updates = jax.tree.map(lambda u: keep_absent(u, jnp.zeros_like(u)), new_updates)
    new_state = jax.tree.map(
        lambda n, o: keep_absent(n, o) if hasattr(n, "ndim") and n.ndim >= 1 else n,
        new_state, state)
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(init, update)


def learning_rate(peak: float, schedule: str = "constant", steps: int = 1, warmup: int = 0):
  """The learning rate over `steps` updates: `peak` (a float: the optimizer's plain form) or an
  optax schedule of the update count, rising linearly from 0 over `warmup` updates and then
  `schedule`: constant, or a linear or cosine decay to 0 at `steps`. Under `per_group` the
  count is each group's own, so a row decays over the updates it receives."""
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
  if schedule == "constant" and not warmup:
    return peak
  after = SCHEDULES[schedule](peak, max(steps - warmup, 1))
  if not warmup:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


SCHEDULES = {
    "constant": lambda peak, n: optax.constant_schedule(peak),
    "linear": lambda peak, n: optax.linear_schedule(peak, 0.0, n),
    "cosine": lambda peak, n: optax.cosine_decay_schedule(peak, n),
}


# Each registered optimizer: (learning_rate, *, weight_decay) -> optax transformation. Weight
# decay is decoupled from the gradient statistics (as AdamW's) and 0 builds the plain optimizer;
# one that cannot decay refuses a non-zero value rather than ignore it.
@OPTIMIZERS.register("sgd")
def _sgd(learning_rate, *, weight_decay=0.0):
  if not weight_decay:
    return optax.sgd(learning_rate)
  # plain SGD has no statistics to decouple from: this is its usual L2 decay
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate))


@OPTIMIZERS.register("adam")
def _adam(learning_rate, *, weight_decay=0.0):
  if weight_decay:
    raise ConfigError(f"optimizer 'adam' takes no weight_decay (got {weight_decay}); use adamw, "
                      "Adam with decoupled weight decay")
  return optax.adam(learning_rate)


@OPTIMIZERS.register("adamw")
def _adamw(learning_rate, *, weight_decay=0.0):
  return optax.adamw(learning_rate, weight_decay=weight_decay)


def make_optimizer(name: str, learning_rate: float, *, weight_decay: float = 0.0,
                   grad_clip: float = 0.0) -> optax.GradientTransformation:
  """A registered optax optimizer by name (`sgd`, `adam`, `adamw`), with `weight_decay` and,
  when `grad_clip` > 0, the gradient clipped to that global norm first. Under `per_group` the
  norm is each group's own (in each personal module), so a group trains as it would alone."""
  tx = OPTIMIZERS.get(name)(learning_rate, weight_decay=weight_decay)
  if grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
  return tx
