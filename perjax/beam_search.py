"""Beam search on the KV cache, one jitted program per (batch, bucket, beams, length), as LaMP
and PPlug decode (4 beams).

Each prompt becomes `num_beams` rows of one batch (its user's personal rows repeated), and the
whole search runs inside a `lax.while_loop`:

- a step scores every (beam, next token) of an example by the beam's summed log-probability;
- among its best `num_beams * (1 + #EOS ids)` candidates (enough for `num_beams` that do not
  end), those ending in EOS within the first `num_beams` ranks become finished hypotheses,
  scored `sum / length ** length_penalty` (length: tokens generated, EOS included);
- the best `num_beams` others carry on, and the cache rows are reordered to their parents;
- an example is done once it holds `num_beams` finished hypotheses and its best live beam,
  normalised at the current length, scores below the worst of them;
- at `max_new_tokens` the live beams are finished too, and the best hypothesis is returned.
"""
import functools

import jax
import jax.numpy as jnp
from flax import nnx

NEG = -1e30  # a score no hypothesis reaches (finite, so sums and comparisons stay exact)


def _normalised(sums, length, length_penalty):
  return sums / jnp.power(length.astype(jnp.float32), length_penalty)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_beams", "max_new_tokens",
                                             "eos_ids", "pad_id", "length_penalty"))
def beam_search_ids(graphdef, state, layers, packed_head, ids, mask, group_ids, level_ids, *,
                    num_beams, max_new_tokens, eos_ids, pad_id, length_penalty):
  """`[B, max_new_tokens]` token ids of each row's best hypothesis, padded after its end.
  `ids`/`mask`/`group_ids`/`level_ids` are already repeated `num_beams` times per example."""
  model = nnx.merge(graphdef, state)
  BK, P = ids.shape
  K, N = num_beams, max_new_tokens
  B = BK // K
  start = model.prefix_len + P
  cache = model.init_cache(BK, start + N, stacked=layers is None)  # see generation._generate
  rows = model.gather_personal(group_ids, per_layer=layers is not None, level_ids=level_ids)
  logits, cache = model.forward(ids, attention_mask=mask, group_ids=group_ids, cache=cache,
                                cache_index=0, last_logits_only=True, layers=layers, rows=rows,
                                packed_head=packed_head)
  positions = model.prefix_len + jnp.sum(mask, axis=1).astype(jnp.int32)
  eos = jnp.asarray(eos_ids, jnp.int32)
  n_cand = K * (1 + len(eos_ids))
  ranks = jnp.arange(n_cand)

  # every beam starts as the prompt: only beam 0 may expand at the first step
  sums = jnp.where(jnp.arange(K)[None, :] == 0, 0.0, NEG) * jnp.ones((B, 1))
  alive_tokens = jnp.full((B, K, N), pad_id, jnp.int32)
  done_tokens = jnp.full((B, K, N), pad_id, jnp.int32)
  done_scores = jnp.full((B, K), NEG)
  finished = jnp.zeros((B,), jnp.bool_)

  def expand(i, last_logits, sums, alive_tokens, done_tokens, done_scores, finished):
    """Step i: pick token i of every beam; returns the new beams and their parents."""
    V = last_logits.shape[-1]
    logp = jax.nn.log_softmax(last_logits.astype(jnp.float32), axis=-1).reshape(B, K, V)
    scores = (sums[:, :, None] + logp).reshape(B, K * V)
    vals, flat = jax.lax.top_k(scores, min(n_cand, K * V))
    parent, token = flat // V, (flat % V).astype(jnp.int32)
    is_eos = jnp.isin(token, eos)
    history = jnp.take_along_axis(alive_tokens, parent[:, :, None], axis=1)
    history = history.at[:, :, i].set(token)
    # finished hypotheses: EOS within the first K ranks, merged with the earlier ones
    new_done = jnp.where(is_eos & (ranks[None, :vals.shape[1]] < K) & ~finished[:, None]
                         & (vals > NEG / 2), _normalised(vals, i + 1, length_penalty), NEG)
    all_scores = jnp.concatenate([done_scores, new_done], axis=1)
    all_tokens = jnp.concatenate([done_tokens, history], axis=1)
    done_scores, keep = jax.lax.top_k(all_scores, K)
    done_tokens = jnp.take_along_axis(all_tokens, keep[:, :, None], axis=1)
    # the best K candidates that do not end carry on
    order = jnp.argsort(jnp.where(is_eos, n_cand + ranks[None, :vals.shape[1]],
                                  ranks[None, :vals.shape[1]]), axis=1)[:, :K]
    sums = jnp.take_along_axis(jnp.where(is_eos, NEG, vals), order, axis=1)
    parent = jnp.take_along_axis(parent, order, axis=1)
    token = jnp.take_along_axis(token, order, axis=1)
    alive_tokens = jnp.take_along_axis(history, order[:, :, None], axis=1)
    # done: K finished, and no live beam can still beat the worst of them at this length
    best_alive = _normalised(jnp.max(sums, axis=1), i + 1, length_penalty)
    full = done_scores[:, -1] > NEG / 2
    finished = finished | (full & (best_alive < done_scores[:, -1]))
    return sums, alive_tokens, done_tokens, done_scores, finished, parent, token

  def cond(carry):
    i, *_, finished, _ = carry
    return (i < N - 1) & ~jnp.all(finished)

  def body(carry):
    i, last_logits, cache, sums, alive_tokens, done_tokens, done_scores, finished, pos = carry
    sums, alive_tokens, done_tokens, done_scores, finished, parent, token = expand(
        i, last_logits, sums, alive_tokens, done_tokens, done_scores, finished)
    src = (jnp.arange(B)[:, None] * K + parent).reshape(BK)  # each new beam's cache row
    cache = jax.tree.map(lambda a: a[src], cache)
    logits, cache = model.forward(
        token.reshape(BK, 1), attention_mask=jnp.ones((BK, 1), jnp.int32), group_ids=group_ids,
        cache=cache, cache_index=start + i, positions=pos[:, None], layers=layers, rows=rows,
        packed_head=packed_head)
    return (i + 1, logits[:, 0], cache, sums, alive_tokens, done_tokens, done_scores, finished,
            pos + 1)

  carry = (jnp.int32(0), logits[:, -1], cache, sums, alive_tokens, done_tokens, done_scores,
           finished, positions)
  i, last_logits, _, sums, alive_tokens, done_tokens, done_scores, finished, _ = \
      jax.lax.while_loop(cond, body, carry)
  sums, alive_tokens, done_tokens, done_scores, finished, _, _ = expand(
      i, last_logits, sums, alive_tokens, done_tokens, done_scores, finished)
  # the live beams end here (length i + 1), unless the example was already done
  live = jnp.where(finished[:, None] | (sums < NEG / 2), NEG,
                   _normalised(sums, i + 1, length_penalty))
  scores = jnp.concatenate([done_scores, live], axis=1)
  tokens = jnp.concatenate([done_tokens, alive_tokens], axis=1)
  best = jnp.argmax(scores, axis=1)
  return jnp.take_along_axis(tokens, best[:, None, None], axis=1)[:, 0]
