"""P-RLHF's user model (Li et al. 2024) as a personal module: a user embedding of `length`
vectors prepended to the input (the "prefix" hook), either a generic embedding shared by every
group plus a per-group offset (`individual`) or a per-group mixture of shared cluster embeddings
(`cluster`). The methods `user_model` and `pdpo` build it; their docstrings say how it trains.
"""
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from perjax.errors import ConfigError
from perjax.models.personal import PERSONAL_DTYPE, Personal, PersonalModule

KINDS = ("individual", "cluster")


class Fixed(nnx.Variable):
  """A table kept at its initial value (not trained, not checkpointed: rebuilt from the seed)."""


class UserModel(PersonalModule):
  hooks = ("prefix",)

  def __init__(self, *, groups, dims, rngs, length: int, kind: str, clusters: int,
               learn_shared: bool):
    self.prefix_len, self.kind, self.learn_shared = length, kind, learn_shared
    table = Personal if learn_shared else Fixed
    shape = (length, dims.hidden_size)
    if kind == "individual":
      self.generic = table(jax.random.normal(rngs.params(), (1, *shape), PERSONAL_DTYPE) * 0.02)
      self.offset = Personal(jnp.zeros((groups, *shape), PERSONAL_DTYPE))
    else:
      self.clusters = table(
          jax.random.normal(rngs.params(), (1, clusters, *shape), PERSONAL_DTYPE) * 0.02)
      self.mixing = Personal(jnp.zeros((groups, clusters), PERSONAL_DTYPE))
    shared = ("generic",) if kind == "individual" else ("clusters",)
    self.shared = shared if learn_shared else ()

  def _shared(self, rows, name):
    if self.learn_shared:
      return rows[name]  # [B, ...]: the one row, gathered for every example
    dtype = rows["offset" if self.kind == "individual" else "mixing"].dtype
    return getattr(self, name)[...].astype(dtype)  # [1, ...], broadcast over the batch

  def prefix(self, rows):
    if self.kind == "individual":
      return self._shared(rows, "generic") + rows["offset"]
    mixing = rows["mixing"]
    weights = jax.nn.softmax(mixing.astype(jnp.float32), axis=-1).astype(mixing.dtype)
    clusters = self._shared(rows, "clusters")
    clusters = jnp.broadcast_to(clusters, (mixing.shape[0],) + clusters.shape[1:])
    return jnp.einsum("bk,bknd->bnd", weights, clusters)

  def describe(self):
    out = {"length": self.prefix_len, "kind": self.kind, "learn_shared": self.learn_shared}
    return out if self.kind == "individual" else {**out, "clusters": self.mixing[...].shape[1]}


def user_model_factory(method: str):
  """A method's `personal` slot building a `UserModel` from its options."""
  return lambda options: _build(options, method)


def _build(options, method: str):
  length, kind, clusters = int(options["length"]), str(options["kind"]), int(options["clusters"])
  if length < 1:
    raise ConfigError(f"{method}.length must be >= 1, got {length}")
  if kind not in KINDS:
    raise ConfigError(f"{method}.kind must be one of {list(KINDS)}, got {kind!r}")
  if kind == "cluster" and clusters < 1:
    raise ConfigError(f"{method}.clusters must be >= 1, got {clusters}")
  return functools.partial(UserModel, length=length, kind=kind, clusters=clusters,
                           learn_shared=bool(options["learn_shared"]))


USER_MODEL_DEFAULTS = {"length": 4, "kind": "individual", "clusters": 4, "learn_shared": True}
