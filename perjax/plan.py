"""`perjax plan`: the per-device memory of a training step before any run.

Abstract shapes only: the model and its train state are `jax.eval_shape`d (no weights), placed
by `sharding.step_shardings` on a mesh of fake CPU devices, and the jitted step is lowered and
compiled for it. Parameters, optimizer state and personal tables are counted from their shard
shapes; activations are the compiled step's temporary buffers (`memory_analysis()`).

`suggested_fsdp` is found without compiling again: at each power-of-two fsdp the state's shard
bytes are exact (the sharding rules on an abstract mesh), and the activations are scaled by the
batch rows each device holds (they are split over data x fsdp).
"""
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AbstractMesh

from perjax import sharding
from perjax.errors import ConfigError

GIB = 1024 ** 3
_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 1024,
          "mib": 1024 ** 2, "gib": GIB, "tib": 1024 ** 4}


def parse_bytes(text: str) -> int:
  """`"16GiB"`, `"80GB"`, `"512MiB"` or a plain number of bytes."""
  s = str(text).strip().lower().replace(" ", "")
  number = s.rstrip("kmgtib")
  unit = s[len(number):]
  try:
    value = float(number)
  except ValueError:
    value = -1.0
  if unit not in _UNITS or value <= 0:
    raise ConfigError(f"--device-memory {text!r} is not a size such as 16GiB, 80GB or 512MiB")
  return int(value * _UNITS[unit])


def _abstract_training(config, method: str, users: int, rank: int, dtype: str, remat: bool,
                       loss_chunk: int):
  """(graphdef, abstract TrainState, personal_tx, base_tx) of `method` on `config`."""
  from perjax.models.dtypes import parse_dtype
  from perjax.models.llama import Llama
  from perjax.training.model_options import set_training_options
  from perjax.training.optim import make_optimizer
  from perjax.training.step import init_train_state
  personal, train_base = planned_training(method, users, rank)
  made = {}

  def build():
    model = Llama(config, personal=personal, dtype=parse_dtype(dtype),
                  param_dtype=parse_dtype(dtype), rngs=nnx.Rngs(0))
    set_training_options(model, remat=remat, loss_chunk=loss_chunk)
    graphdef, state, personal_tx, base_tx = init_train_state(
        model, make_optimizer("adamw", 1e-4), train_base=train_base)
    made.update(graphdef=graphdef, personal_tx=personal_tx, base_tx=base_tx)
    return state

  state = jax.eval_shape(build)  # the python parts (graphdef, optimizers) are static
  return made["graphdef"], state, made["personal_tx"], made["base_tx"]


def planned_training(method: str, users: int, rank: int):
  """(personal stack builder or None, whether the base trains) of a registered method under
  the LM loss: its personal module at its defaults (`rank` where it has one), or its training
  of the shared base (`base_at`, full fine-tuning)."""
  from perjax.method import get_method, lm_objective
  from perjax.models.personal import single
  m = get_method(method)
  if m.pairwise or (m.objective not in (None, lm_objective)) or not (m.personal or m.base_at):
    raise ConfigError(f"--method {method!r}: plan sizes a step of personal parameters or of the "
                      "base under the LM loss; this method trains neither that way")
  if m.base_at:
    return None, True
  options = {**m.defaults, **({"rank": rank} if "rank" in m.defaults else {})}
  return single(m.personal(options), users, name=method), False


def _abstract_batch(users: int, batch: int, seq: int) -> dict:
  ids = jax.ShapeDtypeStruct((1, batch, seq), jnp.int32)
  return {"input_ids": ids, "loss_mask": ids, "attention_mask": ids,
          "group_ids": jax.ShapeDtypeStruct((1, batch), jnp.int32)}


def _shard_bytes(tree, shardings) -> int:
  """Bytes one device holds of `tree`'s leaves placed with `shardings` (the largest shard)."""
  total = 0
  for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)):
    total += math.prod(s.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
  return total


def _state_bytes(state, mesh) -> dict:
  sh = sharding.state_shardings(state, mesh)
  return {"params_bytes": _shard_bytes(state.base, sh.base) + _shard_bytes(state.rest, sh.rest),
          "opt_bytes": _shard_bytes(state.opt_base, sh.opt_base),
          "personal_bytes": _shard_bytes((state.personal, state.opt_personal),
                                         (sh.personal, sh.opt_personal))}


def _rows_per_device(batch: int, sizes: dict) -> int:
  """The batch rows one device holds (as `sharding.batch_shardings` splits them)."""
  for split in (sizes["data"] * sizes["fsdp"], sizes["data"]):
    if batch % split == 0:
      return batch // split
  return batch


def plan(model: str, method: str, *, users: int, batch: int, seq: int, dtype: str = "bfloat16",
         mesh: str = "fsdp=1", device_memory: int = 16 * GIB, rank: int = 8,
         remat: bool = True, loss_chunk: int = 0) -> dict:
  """The plan's figures (bytes per device); the process must see the mesh's devices."""
  from perjax.models.known_configs import known_config
  from perjax.training.objectives import lm_loss
  from perjax.training.step import make_train_step
  from perjax.method import get_method
  sizes = sharding.parse_mesh(mesh, len(jax.devices()))
  config = known_config(model)
  graphdef, state, personal_tx, base_tx = _abstract_training(config, method, users, rank, dtype,
                                                             remat, loss_chunk)
  device_mesh = sharding.make_mesh(sizes, jax.devices())
  batch_tree = _abstract_batch(users, batch, seq)
  in_sh, out_sh = sharding.step_shardings(state, batch_tree, device_mesh)
  step = make_train_step(graphdef, personal_tx, base_tx, lm_loss, users, in_shardings=in_sh,
                         out_shardings=out_sh)
  rng = jax.eval_shape(lambda: jax.random.key(0))
  compiled = step.lower(state, batch_tree, rng).compile()
  activation = int(compiled.memory_analysis().temp_size_in_bytes)
  parts = _state_bytes(state, device_mesh)
  result = {"model": model, "method": method, "users": users, "batch": batch, "seq": seq,
            "dtype": dtype,
            "rank": rank if "rank" in get_method(method).defaults else None, "remat": remat,
            "loss_chunk": loss_chunk, "mesh": sizes, **parts, "activation_bytes": activation,
            "activation_source": "compiled: memory_analysis().temp_size_in_bytes on fake CPU "
                                 "devices"}
  result["per_device_bytes"] = sum(parts.values()) + activation
  result["per_device_gib"] = result["per_device_bytes"] / GIB
  result["device_memory_bytes"] = device_memory
  result["fits"] = result["per_device_bytes"] <= device_memory
  result["suggested_fsdp"] = _suggest_fsdp(state, sizes, batch, activation, device_memory)
  result["suggested_fsdp_source"] = ("scaled: state shard bytes exact at each fsdp, activations "
                                     "scaled by the batch rows per device")
  return result


def _suggest_fsdp(state, sizes: dict, batch: int, activation: int, device_memory: int,
                  largest: int = 4096):
  """The smallest power-of-two fsdp whose estimated per-device bytes fit (None: none up to
  `largest`)."""
  rows = _rows_per_device(batch, sizes)
  quiet = logging.getLogger(sharding.__name__)
  level, quiet.level = quiet.level, logging.ERROR  # indivisible dims are reported at the plan's mesh
  try:
    fsdp = 1
    while fsdp <= largest:
      trial = {**sizes, "fsdp": fsdp}
      mesh = AbstractMesh(tuple(trial[a] for a in sharding.AXES), sharding.AXES)
      scaled = activation * _rows_per_device(batch, trial) / rows
      if sum(_state_bytes(state, mesh).values()) + scaled <= device_memory:
        return fsdp
      fsdp *= 2
  finally:
    quiet.level = level
  return None
