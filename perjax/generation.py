"""Jitted KV-cache generation for batches of prompts of different lengths.

Prompts are left-padded to a bucketed length, so calls with similar prompts reuse one compiled
program; prefill and the whole decode loop (`lax.while_loop`) run inside a single jit. Each row
carries its own group id, so one batch mixes users' personal parameters.
"""
import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from perjax.beam_search import beam_search_ids
from perjax.bounded_inputs import fit_prompts, prompt_limit
from perjax.errors import ConfigError
from perjax.kernels.rows_matmul import worth_packing
from perjax.models.personal import per_example_array
from perjax.models.weight_bits import stored_as_bits


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """temperature 0 is greedy; top_k 0 and top_p 1.0 switch those filters off. `num_beams` > 1
  is beam search (perjax.beam_search; deterministic, so temperature 0), its hypotheses scored by
  summed log-probability over length ** length_penalty."""
  max_new_tokens: int = 32
  temperature: float = 0.0
  top_k: int = 0
  top_p: float = 1.0
  num_beams: int = 1
  length_penalty: float = 1.0

  def __post_init__(self):
    bad = sampling_problem(self)
    if bad:
      raise ConfigError(bad)


def sampling_problem(s: SamplingConfig) -> str | None:
  """The first invalid field of `s`, as a one-line message naming it; None when all are fine."""
  is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
  if not is_int(s.max_new_tokens) or s.max_new_tokens < 1:
    return f"max_new_tokens must be an integer >= 1, got {s.max_new_tokens!r}"
  if not isinstance(s.temperature, (int, float)) or not 0 <= s.temperature < float("inf"):
    return f"temperature must be a finite number >= 0 (0 = greedy), got {s.temperature!r}"
  if not is_int(s.top_k) or s.top_k < 0:
    return f"top_k must be an integer >= 0 (0 = off), got {s.top_k!r}"
  if not isinstance(s.top_p, (int, float)) or not 0 < s.top_p <= 1:
    return f"top_p must be in (0, 1] (1 = off), got {s.top_p!r}"
  if not is_int(s.num_beams) or s.num_beams < 1:
    return f"num_beams must be an integer >= 1 (1 = no beam search), got {s.num_beams!r}"
  if s.num_beams > 1 and (s.temperature != 0 or s.top_k or s.top_p < 1):
    return "beam search (num_beams > 1) is deterministic: it takes no temperature, top_k or top_p"
  if not isinstance(s.length_penalty, (int, float)) or not abs(s.length_penalty) < float("inf"):
    return f"length_penalty must be a finite number, got {s.length_penalty!r}"
  return None


def bucket_length(n: int, multiple: int = 32) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def left_pad(prompts, length: int, pad_id: int, rows: int | None = None):
  """(ids, mask) `[rows, length]` int32: each prompt right-aligned, so every row's last prompt
  token sits at `length - 1`. Rows beyond the prompts (`rows` > len) are filler: one dummy real
  token each, so no row attends to nothing."""
  rows = len(prompts) if rows is None else rows
  ids = np.full((rows, length), pad_id, np.int32)
  mask = np.zeros((rows, length), np.int32)
  mask[len(prompts):, -1] = 1
  for row, p in enumerate(prompts):
    ids[row, length - len(p):] = p
    mask[row, length - len(p):] = 1
  return ids, mask


def _filter_logits(logits, sampling: SamplingConfig):
  if sampling.top_k:
    kth = jax.lax.top_k(logits, sampling.top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if sampling.top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # keep the smallest prefix whose mass reaches top_p (the first token always stays)
    exclusive_mass = jnp.cumsum(probs, axis=-1) - probs
    cutoff = jnp.min(jnp.where(exclusive_mass < sampling.top_p, sorted_logits, jnp.inf),
                     axis=-1, keepdims=True)
    logits = jnp.where(logits < cutoff, -jnp.inf, logits)
  return logits


def _next_token(logits, rng, sampling: SamplingConfig):
  if sampling.temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = _filter_logits(logits / sampling.temperature, sampling)
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "sampling", "eos_ids", "pad_id"))
def _generate(graphdef, state, layers, packed_head, ids, mask, group_ids, level_ids, rng, *,
              sampling, eos_ids, pad_id):
  model = nnx.merge(graphdef, state)
  B, P = ids.shape
  start = model.prefix_len + P  # first slot after the prompt
  # per-layer weights decode in the unrolled loop; without them, the layer scan over the
  # model's own stacked weights, with a stacked cache
  cache = model.init_cache(B, start + sampling.max_new_tokens, stacked=layers is None)
  # once: every step uses the same rows
  rows = model.gather_personal(group_ids, per_layer=layers is not None, level_ids=level_ids)
  logits, cache = model.forward(ids, attention_mask=mask, group_ids=group_ids, cache=cache,
                                cache_index=0, last_logits_only=True, layers=layers, rows=rows,
                                packed_head=packed_head)
  positions = model.prefix_len + jnp.sum(mask, axis=1).astype(jnp.int32)
  out = jnp.full((B, sampling.max_new_tokens), pad_id, jnp.int32)
  eos = jnp.asarray(eos_ids, jnp.int32)

  def pick(last_logits, i, done):
    token = _next_token(last_logits, jax.random.fold_in(rng, i), sampling)
    token = jnp.where(done, pad_id, token)
    return token, done | jnp.isin(token, eos)

  # Each iteration picks token i and runs the forward pass that predicts token i + 1; the last
  # token is picked after the loop. (A `lax.cond` around the forward pass, skipping it on the
  # last iteration, made XLA copy the whole KV cache at every step.)
  def cond(carry):
    i, _, _, _, done, _ = carry
    return (i < sampling.max_new_tokens - 1) & ~jnp.all(done)

  def body(carry):
    i, last_logits, cache, out, done, positions = carry
    token, done = pick(last_logits, i, done)
    out = out.at[:, i].set(token)
    logits, cache = model.forward(
        token[:, None], attention_mask=jnp.ones((B, 1), jnp.int32), group_ids=group_ids,
        cache=cache, cache_index=start + i, positions=positions[:, None], layers=layers,
        rows=rows, packed_head=packed_head)
    return i + 1, logits[:, 0], cache, out, done, positions + 1

  done = jnp.zeros((B,), jnp.bool_)
  carry = (jnp.int32(0), logits[:, -1], cache, out, done, positions)
  i, last_logits, _, out, done, _ = jax.lax.while_loop(cond, body, carry)
  token, _ = pick(last_logits, i, done)  # all pad when every row had already stopped
  return out.at[:, i].set(token)


class Generator:
  """Generation for one model; compiled programs are cached by (batch, bucket, sampling)."""

  def __init__(self, model, tokenizer=None, *, bucket: int = 32, stop_at_eos: bool = True,
               share_base: bool | None = None):
    # see `refresh`; None: share unless on the CPU with the base stored as plain arrays
    self.share_base = share_base
    self.refresh(model)
    self.config = model.config
    self.tokenizer = tokenizer
    self.bucket = bucket
    self.prefix_len = int(getattr(model, "prefix_len", 0))  # personal prefix slots before the prompt
    # Benchmarks switch EOS off so every row decodes the full length, like min_new_tokens.
    self.eos_ids = tuple(model.config.eos_token_ids) if stop_at_eos else ()

  def refresh(self, model) -> None:
    """Take new parameter values (e.g. after training): no recompilation when the structure
    is the same; a new structure (adapters merged into a higher rank) compiles anew."""
    self.graphdef = nnx.graphdef(model)
    self.state = nnx.state(model)
    if self.shares_base(model):  # decode from the model's own weights: no second copy
      self.layers = self.packed_head = None
      return
    # Per-layer weight arrays (one more copy of the base weights): the unrolled decoding
    # loop reads them in place instead of slicing the stacked weights at every step. Packed
    # for the CPU decoding kernel where it runs (bitwise the same logits, faster).
    packed = worth_packing(model.dtype)
    self.layers = model.unstacked_layers(pack_weights=packed)
    self.packed_head = model.packed_head() if packed else None

  def shares_base(self, model) -> bool:
    """Whether decoding reads the model's stacked weights in the layer scan (no copy) rather
    than a per-layer copy. The copy is the CPU's fast path for a plain base: slicing a plain
    bfloat16 stack there widens all of it to float32 (`models.weight_bits`). A base stored as
    bits slices one layer at a time, and accelerators slice in place, so those share."""
    if self.share_base is not None:
      return self.share_base
    return jax.default_backend() != "cpu" or stored_as_bits(model)

  def refresh_personal(self, model) -> None:
    """Take new personal parameter values only (the base is unchanged, so its per-layer copy
    is kept): what swapping users' rows in and out of the table needs."""
    self.state = nnx.state(model)

  def generate_ids(self, prompts: Sequence[Sequence[int]], *, group_ids=None, level_ids=None,
                   sampling: SamplingConfig = SamplingConfig(), seed: int = 0) -> list[list[int]]:
    """New token ids for each prompt, cut after the first EOS (EOS included)."""
    if not len(prompts):
      return []
    if any(len(p) == 0 for p in prompts):
      raise ConfigError("an empty prompt cannot be continued")
    B = len(prompts)
    P = bucket_length(max(len(p) for p in prompts), self.bucket)
    ids, mask = left_pad(prompts, P, self.config.pad_token_id)
    group_ids = np.zeros((B,), np.int32) if group_ids is None else np.asarray(group_ids, np.int32)
    eos_ids = self.eos_ids or (-1,)
    level_ids = {k: per_example_array(v) for k, v in (level_ids or {}).items()}
    if sampling.num_beams > 1:  # every prompt's row repeated once per beam
      beams = lambda a: np.repeat(np.asarray(a), sampling.num_beams, axis=0)
      out = beam_search_ids(
          self.graphdef, self.state, self.layers, self.packed_head, beams(ids), beams(mask),
          beams(group_ids),
          {k: beams(v) for k, v in level_ids.items()}, num_beams=sampling.num_beams,
          max_new_tokens=sampling.max_new_tokens, eos_ids=eos_ids,
          pad_id=int(self.config.pad_token_id), length_penalty=float(sampling.length_penalty))
    else:
      out = _generate(self.graphdef, self.state, self.layers, self.packed_head, ids, mask,
                      group_ids, level_ids, jax.random.key(seed), sampling=sampling,
                      eos_ids=eos_ids, pad_id=int(self.config.pad_token_id))
    out = np.asarray(out)
    results = []
    for row in out:
      tokens = row.tolist()
      for j, t in enumerate(tokens):
        if t in eos_ids:
          tokens = tokens[:j + 1]
          break
      results.append(tokens)
    return results

  def encode_prompts(self, texts: Sequence[str], *, chat: bool = True,
                     system: "str | Sequence[str | None] | None" = None, reserve: int = 0,
                     max_tokens: int | None = None) -> list[list[int]]:
    """Token ids of each (chat-formatted) prompt, cut to fit the model's context less
    `reserve` tokens for the answer, and to `max_tokens` if given (see `bounded_inputs`).
    `system` is one system message for every text, or one per text (None or "": none)."""
    tok = self.tokenizer
    systems = [system] * len(texts) if system is None or isinstance(system, str) else system
    if len(systems) != len(texts):
      raise ValueError(f"{len(systems)} system messages for {len(texts)} prompts")
    if chat and tok.chat_template:
      messages = [([{"role": "system", "content": s}] if s else []) +
                  [{"role": "user", "content": t}] for t, s in zip(texts, systems)]
      ids = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                     return_dict=False) for m in messages]
    else:
      ids = [tok(t).input_ids for t in texts]
    limit = prompt_limit(self.config.max_position, reserve=reserve, prefix=self.prefix_len,
                         max_tokens=max_tokens)
    why = (f"the model's context of {self.config.max_position}"
           f"{f' less {reserve} for the answer' if reserve else ''}"
           f"{', or eval.max_prompt_tokens' if max_tokens else ''}")
    return fit_prompts(ids, limit, why=why)

  def generate(self, texts: Sequence[str], *, group_ids=None, chat: bool = True,
               system: str | None = None, sampling: SamplingConfig = SamplingConfig(),
               seed: int = 0) -> list[str]:
    """Decoded continuations (special tokens dropped) for each text."""
    prompts = self.encode_prompts(texts, chat=chat, system=system,
                                  reserve=sampling.max_new_tokens)
    outs = self.generate_ids(prompts, group_ids=group_ids, sampling=sampling, seed=seed)
    return [self.tokenizer.decode(o, skip_special_tokens=True) for o in outs]
