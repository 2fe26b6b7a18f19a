"""Log-likelihood of fixed continuations (a task's labels) after each prompt, and of each
prompt's own target (`target_logprobs`: the gold output), jitted.

Ranking a closed label set by likelihood is how small LMs are usually scored on classification:
the answer is always a label, and it is the answer the LM loss was trained to produce. Each
prompt is prefilled once into a KV cache; the cache is repeated for the L candidates, which run
as one [B * L, T] continuation. Prompts are left-padded to a bucketed length and batches padded
to a fixed size, so one program serves a whole evaluation.
"""
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from perjax.generation import bucket_length, left_pad
from perjax.models.personal import per_example_array


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _score(graphdef, state, layers, packed_head, ids, mask, group_ids, level_ids, cont,
           cont_mask):
  """[B, L] summed log-probs of the L continuations `cont` [L, T] after each prompt [B, P]."""
  model = nnx.merge(graphdef, state)
  B, P = ids.shape
  L, T = cont.shape
  start = model.prefix_len + P
  cache = model.init_cache(B, start + T, stacked=layers is None)  # see generation._generate
  last, cache = model.forward(ids, attention_mask=mask, group_ids=group_ids, level_ids=level_ids,
                              cache=cache, cache_index=0, last_logits_only=True, layers=layers,
                              packed_head=packed_head)
  rep = lambda x, axis: jnp.repeat(x, L, axis=axis)  # row b * L + l: prompt b, candidate l
  # batch-major, but for a stacked cache's keys and values `[L, B, ...]`
  cache = jax.tree.map(lambda x: rep(x, 1 if x.ndim == 5 else 0), cache)
  tokens, tmask = jnp.tile(cont, (B, 1)), jnp.tile(cont_mask, (B, 1))
  logits, _ = model.forward(tokens, attention_mask=tmask, group_ids=rep(group_ids, 0),
                            level_ids={k: rep(v, 0) for k, v in level_ids.items()},
                            cache=cache, cache_index=start, layers=layers, packed_head=packed_head)
  # token j is predicted by the logits before it: the prompt's last one for j = 0
  logits = jnp.concatenate([rep(last, 0), logits[:, :-1]], axis=1)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  picked = jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
  return jnp.sum(picked * tmask, axis=1).reshape(B, L)


def continuation_logprobs(generator, prompts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[int]], *, group_ids=None,
                          level_ids=None,
                          batch_size: int = 4) -> np.ndarray:
  """[N, L] log p(continuation | prompt) for token-id prompts and candidate continuations,
  each prompt with its group's personal parameters."""
  n, L = len(prompts), len(continuations)
  if not n:
    return np.zeros((0, L), np.float32)
  pad = generator.config.pad_token_id
  T = max(len(c) for c in continuations)
  cont = np.full((L, T), pad, np.int32)
  cont_mask = np.zeros((L, T), np.int32)
  for i, c in enumerate(continuations):
    cont[i, :len(c)], cont_mask[i, :len(c)] = c, 1
  group_ids = np.zeros((n,), np.int32) if group_ids is None else np.asarray(group_ids, np.int32)
  out = []
  for s in range(0, n, batch_size):
    chunk = prompts[s:s + batch_size]
    P = bucket_length(max(len(p) for p in chunk), generator.bucket)
    ids, mask = left_pad(chunk, P, pad, rows=batch_size)  # a fixed batch size: filler rows
    groups = np.zeros((batch_size,), np.int32)
    groups[:len(chunk)] = group_ids[s:s + batch_size]
    levels = {}
    for level, ids_of in (level_ids or {}).items():  # ids, or per-example inputs
      values = per_example_array(ids_of)
      levels[level] = np.zeros((batch_size,) + values.shape[1:], values.dtype)
      levels[level][:len(chunk)] = values[s:s + batch_size]
    scores = _score(generator.graphdef, generator.state, generator.layers, generator.packed_head,
                    ids, mask, groups, levels, cont, cont_mask)
    out.append(np.asarray(scores)[:len(chunk)])
  return np.concatenate(out)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _rows_logprobs(graphdef, state, rows):
  from perjax.training.objectives import sequence_logprobs
  return sequence_logprobs(nnx.merge(graphdef, state), rows)


def target_logprobs(generator, rows: Sequence[tuple[list, list]], *, group_ids=None,
                    level_ids=None, batch_size: int = 8) -> np.ndarray:
  """[N] summed log p(target | prompt) of `(ids, loss_mask)` rows (a prompt then its own
  target, as `batching.pack_example` packs them), each with its group's personal parameters:
  one full forward pass per row, the loss's `sequence_logprobs`. Rows are batched by length,
  right-padded to a bucketed length and to a fixed batch size (filler rows dropped), so a few
  programs serve a whole evaluation."""
  from perjax.bounded_inputs import length_batches
  from perjax.training import batching
  n = len(rows)
  group_ids = np.zeros((n,), np.int32) if group_ids is None else np.asarray(group_ids, np.int32)
  pad = generator.config.pad_token_id
  out = np.zeros((n,), np.float64)
  for batch in tqdm(length_batches([len(r[0]) for r in rows], batch_size, generator.bucket),
                    desc="gold likelihood", dynamic_ncols=True):
    T = bucket_length(max(len(rows[i][0]) for i in batch), generator.bucket)
    chunk = [tuple(rows[i]) + (int(group_ids[i]),) for i in batch]
    chunk += [([], [], 0)] * (batch_size - len(chunk))  # filler rows, dropped below
    packed = {k: v[0] for k, v in batching.make_batch(chunk, T, pad).items()}
    if level_ids:  # filler rows read row 0 (and zero inputs)
      packed["level_ids"] = {}
      for level, ids_of in level_ids.items():
        values = per_example_array(ids_of)
        packed["level_ids"][level] = np.zeros((batch_size,) + values.shape[1:], values.dtype)
        packed["level_ids"][level][:len(batch)] = values[batch]
    scores = _rows_logprobs(generator.graphdef, generator.state, packed)
    out[batch] = np.asarray(scores, np.float64)[:len(batch)]
  return out
