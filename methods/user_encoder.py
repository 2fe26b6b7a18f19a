"""A user encoder in the style of PPlug (Liu et al. 2024, "LLMs + Persona-Plug = Personalized
LLMs"; also User-LLM, Ning et al. 2024): the sentence encoder (`config.encoder`) embeds the
history items the example may see, an input-aware attention pools them, and an MLP projects the
result into `length` embeddings prepended to the LLM's input.

Per example, in the data stage: the `items` items of its pool most similar to its input (dense
retrieval with the same encoder, so the no-leak rule holds: `perjax.pools`), their embeddings
`[items, D]` with a mask, and the input's embedding `[D]`. In the model:

  a_i = softmax_i((W_q x) . (W_k h_i) / sqrt(a)) over the real items
  prefix = W_2 gelu(W_1 (sum_i a_i h_i) + b_1) + b_2, reshaped to [length, d]

All of it is shared by every group (`PersonalModule.shared`): there is no per-user table, so a
user never seen in training is served from their history alone. The granularity decides which
history: the user's own profile, their persona's pooled profiles, or everyone's.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from perjax.errors import ConfigError
from perjax.method import Method, register
from perjax.models.personal import PERSONAL_DTYPE, Personal, PersonalModule
from perjax.registry import MethodInfo
from perjax.retrieval import DenseRetriever, retrieve
from perjax.taxonomy import Granularity, Technique

HISTORY, MASK, QUERY = "user_encoder/history", "user_encoder/history_mask", "user_encoder/query"


class UserEncoder(PersonalModule):
  hooks = ("prefix",)
  shared = ("query", "key", "up", "up_bias", "down", "down_bias")

  def __init__(self, *, groups, dims, rngs, length: int, items: int, encoder_dim: int,
               attention_dim: int, hidden: int):
    del groups  # one shared row whatever the number of groups
    self.prefix_len, self.items, self.encoder_dim = length, items, encoder_dim
    d = dims.hidden_size
    init = lambda *shape: Personal(jax.random.normal(
        rngs.params(), (1, *shape), PERSONAL_DTYPE) / math.sqrt(shape[0]))
    self.query, self.key = init(encoder_dim, attention_dim), init(encoder_dim, attention_dim)
    self.up = init(encoder_dim, hidden)
    self.up_bias = Personal(jnp.zeros((1, hidden), PERSONAL_DTYPE))
    # small output: the prefix starts as near-zero vectors, like a freshly initialised soft prompt
    self.down = Personal(jax.random.normal(rngs.params(), (1, hidden, length * d),
                                           PERSONAL_DTYPE) * 0.02)
    self.down_bias = Personal(jnp.zeros((1, length * d), PERSONAL_DTYPE))

  @property
  def inputs(self):  # a property: a dict attribute would make the graph definition unhashable
    return {HISTORY: (self.items, self.encoder_dim), MASK: (self.items,),
            QUERY: (self.encoder_dim,)}

  def prefix(self, rows):
    dtype = rows["up"].dtype
    history, mask = rows[HISTORY].astype(dtype), rows[MASK] > 0  # [B, M, D], [B, M]
    q = jnp.einsum("bd,bda->ba", rows[QUERY].astype(dtype), rows["query"])
    k = jnp.einsum("bmd,bda->bma", history, rows["key"])
    scores = jnp.einsum("ba,bma->bm", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    scores = jnp.where(mask, scores, -jnp.inf)
    # an example with no history pools nothing (all weights zero), not NaN
    weights = jnp.where(mask, jax.nn.softmax(jnp.where(mask.any(-1, keepdims=True), scores, 0.0),
                                             axis=-1), 0.0).astype(dtype)
    pooled = jnp.einsum("bm,bmd->bd", weights, history)
    h = jax.nn.gelu(jnp.einsum("bd,bdh->bh", pooled, rows["up"]) + rows["up_bias"])
    out = jnp.einsum("bh,bho->bo", h, rows["down"]) + rows["down_bias"]
    return out.reshape(out.shape[0], self.prefix_len, -1)

  def describe(self):
    return {"length": self.prefix_len, "items": self.items, "encoder_dim": self.encoder_dim}


@functools.lru_cache(maxsize=2)
def _retriever(encoder) -> DenseRetriever:
  # one per encoder: the training and evaluation calls share its cache of pool embeddings
  return DenseRetriever(encoder)


def example_inputs(examples, ctx) -> dict:
  """Each example's history embeddings (its `items` most similar pool items), mask and input
  embedding, from the run's sentence encoder."""
  m, want = int(ctx.options["items"]), int(ctx.options["encoder_dim"])
  encoder = ctx.encoder()
  retrieved = retrieve(examples, _retriever(encoder), m, pools=ctx.pools)
  query = np.asarray(encoder.encode([e.input for e in examples]), np.float32).reshape(
      len(examples), -1)
  if query.shape[1] != want:
    raise ConfigError(f"user_encoder.encoder_dim is {want}, but the encoder gives "
                      f"{query.shape[1]}-dim embeddings: set "
                      f"--config.methods.user_encoder.encoder_dim={query.shape[1]}")
  texts = sorted({it.text for items in retrieved for it in items})
  embedded = dict(zip(texts, np.asarray(encoder.encode(texts), np.float32))) if texts else {}
  history = np.zeros((len(examples), m, want), np.float32)
  mask = np.zeros((len(examples), m), np.float32)
  for i, items in enumerate(retrieved):
    for j, it in enumerate(items[:m]):
      history[i, j], mask[i, j] = embedded[it.text], 1.0
  return {HISTORY: history, MASK: mask, QUERY: query}


def personal(options):
  sizes = {k: int(options[k]) for k in ("length", "items", "encoder_dim", "attention_dim",
                                         "hidden")}
  bad = [k for k, v in sizes.items() if v < 1]
  if bad:
    raise ConfigError(f"user_encoder.{bad[0]} must be >= 1, got {sizes[bad[0]]}")
  return functools.partial(UserEncoder, **sizes)


USER_ENCODER = register(Method(
    MethodInfo("user_encoder", Technique.EMBEDDING, tuple(Granularity), "4.3",
               "PPlug (Liu et al. 2024), User-LLM: a shared encoder of the user's history "
               "into prefix embeddings"),
    personal=personal, example_inputs=example_inputs,
    # encoder_dim: all-MiniLM-L6-v2's 384 (config.encoder)
    defaults={"length": 2, "items": 8, "encoder_dim": 384, "attention_dim": 64, "hidden": 256}))
