"""Training objectives. Each maps (logits, batch) to a scalar loss and metrics.

Losses are a *sum over groups of each group's mean token loss*, so the gradient a group's
personal parameters receive is exactly what training that group alone would give it.

Objectives follow the train step's signature `(model, micro_batch, rng, num_groups)`. With
gradient accumulation a group's mean must run over its tokens in *all* micro-batches, not be a
mean of per-micro means: `batching.make_batch` stores each example's group token total (divided
by the number of micro-batches, since the step averages micro-batch gradients) as `group_tokens`.
"""
import jax
import jax.numpy as jnp


def token_nll(logits, input_ids):
  """Per-position negative log-likelihood of the next token: [B, T-1]."""
  B, T, V = logits.shape
  # Every position is scored against the next token (the last against a dummy, dropped after),
  # so the [B, T, V] logits are never sliced into a copy.
  targets = jnp.concatenate([input_ids[:, 1:], jnp.zeros((B, 1), input_ids.dtype)], axis=1)
  nll = _cross_entropy(logits.astype(jnp.float32).reshape(B * T, V), targets.reshape(B * T))
  return nll.reshape(B, T)[:, :-1]


@jax.custom_vjp
def _cross_entropy(logits, labels):
  """-log softmax(logits)[label] per row of float32 logits [N, V], labels [N]."""
  return _cross_entropy_fwd(logits, labels)[0]


def _cross_entropy_fwd(logits, labels):
  peak = jnp.max(logits, axis=-1, keepdims=True)
  # The sum of exponentials as a product with a ones vector: XLA's CPU backend runs this row
  # reduction over the vocabulary about twice as fast as a dot than as a reduce.
  total = jax.lax.dot_general(jnp.exp(logits - peak), jnp.ones((logits.shape[-1], 1), jnp.float32),
                              (((1,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)
  normaliser = (jnp.log(total) + peak)[:, 0]
  picked = jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  return normaliser - picked, (logits, normaliser, labels)


def _cross_entropy_bwd(residuals, grad):
  # d/dlogits = (softmax - one_hot(label)) * grad, in one pass over the logits: autodiff would
  # also materialise a zero [N, V] array to scatter the picked logits' gradient into.
  logits, normaliser, labels = residuals
  one_hot = labels[:, None] == jnp.arange(logits.shape[-1])[None, :]
  dlogits = (jnp.exp(logits - normaliser[:, None]) - one_hot) * grad[:, None]
  return dlogits, None


_cross_entropy.defvjp(_cross_entropy_fwd, _cross_entropy_bwd)


def forward(model, rows, *, base_only: bool = False):
  """Logits `[B, T, V]` of a batch's rows, each with its groups' personal parameters (or
  none: `base_only`)."""
  return model(rows["input_ids"], group_ids=rows["group_ids"],
               attention_mask=rows["attention_mask"], level_ids=rows.get("level_ids"),
               base_only=base_only)


def chunked_token_nll(model, hidden, input_ids, chunk: int):
  """`token_nll` from the final hidden states `[B, T, d]`, applying the LM head to `chunk` rows
  at a time: the `[B*T, V]` float32 logits are never materialised, in the forward pass or the
  backward (each chunk's logits are recomputed there, `jax.checkpoint`)."""
  B, T, d = hidden.shape
  targets = jnp.concatenate([input_ids[:, 1:], jnp.zeros((B, 1), input_ids.dtype)], axis=1)
  n = B * T
  chunks = -(-n // chunk)
  pad = chunks * chunk - n  # padding rows score a dummy label and are dropped below
  h = jnp.pad(hidden.reshape(n, d), ((0, pad), (0, 0))).reshape(chunks, chunk, d)
  y = jnp.pad(targets.reshape(n), (0, pad)).reshape(chunks, chunk)

  @jax.checkpoint
  def one(weight, h_c, y_c):
    return _cross_entropy(model.head_logits(h_c, weight), y_c)

  weight = model.head_weight()
  _, nll = jax.lax.scan(lambda carry, xs: (carry, one(weight, *xs)), None, (h, y))
  return nll.reshape(-1)[:n].reshape(B, T)[:, :-1]


def rows_token_nll(model, rows, *, base_only: bool = False):
  """[B, T-1] next-token NLL of a batch's rows: through the whole logits, or chunk by chunk
  when the model's `loss_chunk` is set."""
  chunk = getattr(model, "loss_chunk", 0)
  if not chunk:
    return token_nll(forward(model, rows, base_only=base_only), rows["input_ids"])
  hidden, _ = model.forward(jnp.asarray(rows["input_ids"]), group_ids=rows["group_ids"],
                            attention_mask=rows["attention_mask"],
                            level_ids=rows.get("level_ids"), base_only=base_only,
                            hidden_only=True)
  return chunked_token_nll(model, hidden, jnp.asarray(rows["input_ids"]), chunk)


def sequence_logprobs(model, rows, *, base_only: bool = False):
  """[B] summed log-probs of each row's response tokens (`loss_mask`), as the LM loss sees them:
  the preference objectives' and evaluation's log p(response | prompt)."""
  weights = rows["loss_mask"][:, 1:].astype(jnp.float32)
  return -jnp.sum(rows_token_nll(model, rows, base_only=base_only) * weights, axis=1)


def group_mean_loss(per_token, weights, group_ids, num_groups: int, group_tokens=None):
  """sum_g mean(per_token over group g's weighted tokens), and the total mean for reporting.

  `group_tokens` [B] (optional): each example's group token count to divide by, instead of the
  count within this micro-batch (see the module docstring).
  """
  tok_sum = jnp.sum(per_token * weights, axis=1)
  tok_cnt = jnp.sum(weights, axis=1)
  mean = _reported_mean(per_token, weights, tok_sum, tok_cnt)
  if group_tokens is not None:
    group_tokens = jnp.asarray(group_tokens, jnp.float32)
    return jnp.sum(jnp.where(group_tokens > 0, tok_sum / jnp.maximum(group_tokens, 1e-9), 0.0)), mean
  g_sum = jax.ops.segment_sum(tok_sum, group_ids, num_segments=num_groups)
  g_cnt = jax.ops.segment_sum(tok_cnt, group_ids, num_segments=num_groups)
  loss = jnp.sum(jnp.where(g_cnt > 0, g_sum / jnp.maximum(g_cnt, 1.0), 0.0))
  return loss, mean


def _reported_mean(per_token, weights, tok_sum, tok_cnt):
  """The mean token loss, in two passes: the first pass's mean plus the mean deviation from it.
  A float32 sum of ~10^4 token losses near ln(V) rounds at ~10^-6 of the mean, and a
  different reduction order (another mesh) moves it by that much; the deviations are small, so
  their sum is exact to far below that. Reporting only: no gradient flows through it."""
  count = jnp.maximum(jnp.sum(tok_cnt), 1.0)
  first = jax.lax.stop_gradient(jnp.sum(tok_sum) / count)
  return first + jnp.sum((per_token - first) * weights) / count


def lm_loss(model, batch, rng, num_groups: int):
  """Causal LM loss on the target tokens (`loss_mask` marks them; prompt tokens are masked)."""
  nll = rows_token_nll(model, batch)
  weights = batch["loss_mask"][:, 1:].astype(jnp.float32)
  del rng  # deterministic objective
  loss, mean = group_mean_loss(nll, weights, batch["group_ids"], num_groups,
                               batch.get("group_tokens"))
  return loss, {"loss": mean}


def pair_rows(batch) -> dict:
  """A preference batch's `chosen` and `rejected` rows, each with the pair's ids at other
  levels and its modules' per-example inputs (they serve both responses)."""
  extra = {"level_ids": batch["level_ids"]} if "level_ids" in batch else {}
  return {k: {**batch[k], **extra} for k in ("chosen", "rejected")}


def pair_loss(losses, margin, batch):
  """(loss, metrics) of per-pair `losses` and reward `margin`s: the sum over groups of each
  group's mean over its real pairs (`group_pairs` counts a group's pairs in the whole
  accumulated batch), so groups train independently as under `lm_loss`."""
  real = batch["real"].astype(jnp.float32)
  loss = jnp.sum(real * losses / jnp.maximum(batch["group_pairs"], 1e-9))
  n = jnp.maximum(jnp.sum(real), 1.0)
  return loss, {"loss": jnp.sum(real * losses) / n,
                "reward_accuracy": jnp.sum(real * (margin > 0)) / n}
