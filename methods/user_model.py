"""P-RLHF's user model (Li et al. 2024, "Personalized Language Modeling from Personalized Human
Feedback"): a user embedding of `length` vectors prepended to the input embeddings.

  kind=individual  e_g = e_0 + o_g: a generic embedding e_0 shared by every group plus a learned
                   offset o_g per group (zero at the start, so an unseen user, whose fallback row
                   is never trained, gets the generic embedding)
  kind=cluster     e_g = sum_k softmax(w_g)_k c_k: a mixture of K cluster embeddings shared by
                   every group, with learned mixing logits w_g per group (uniform at the start)

At user granularity a group is a user (P-RLHF's individual user model); at persona granularity a
persona, whose mixture over the clusters (`kind=cluster`) is P-RLHF's cluster-based model. The
shared tables train on every group's examples; `learn_shared=false` keeps them at their random
start, so each group's row trains independently of the others. Trained with the LM loss, or with
a preference objective (`user_model+dpo`, or `pdpo`: DPO with the base model as reference).
"""
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.models.personal import PERSONAL_DTYPE, Personal, PersonalModule
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

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


def personal(options):
  length, kind, clusters = int(options["length"]), str(options["kind"]), int(options["clusters"])
  if length < 1:
    raise ConfigError(f"user_model.length must be >= 1, got {length}")
  if kind not in KINDS:
    raise ConfigError(f"user_model.kind must be one of {list(KINDS)}, got {kind!r}")
  if kind == "cluster" and clusters < 1:
    raise ConfigError(f"user_model.clusters must be >= 1, got {clusters}")
  return functools.partial(UserModel, length=length, kind=kind, clusters=clusters,
                           learn_shared=bool(options["learn_shared"]))


DEFAULTS = {"length": 4, "kind": "individual", "clusters": 4, "learn_shared": True}

USER_MODEL = register(Method(
    MethodInfo("user_model", Technique.EMBEDDING, (Granularity.USER, Granularity.PERSONA), "4.3",
               "P-RLHF user model: generic embedding + per-user offset, or a mixture of "
               "cluster embeddings (Li et al. 2024)"),
    personal=personal, defaults=DEFAULTS))
