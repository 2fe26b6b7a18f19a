"""The CPU attention kernel for inference (`perjax.kernels.cache_attention`) against perjax's
XLA attention: decoding steps, causal prefills with left padding, any mask; and a tiny model's
cached decoding with and without it."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import perjax.models.llama as llama
from perjax.kernels import cache_attention, cpu_library

needs_kernel = pytest.mark.skipif(
    not cpu_library.kernels_available(),
    reason="the CPU kernels need AVX512-BF16, a C++ compiler and one CPU device")

BF16_STEP = 2.0 ** -7  # bfloat16's relative spacing


def _inputs(B, T, H, KV, D, S, mask_kind, seed=0):
  rng = np.random.default_rng(seed)
  q = jnp.asarray(rng.standard_normal((B, T, H, D)), jnp.bfloat16)
  k = jnp.asarray(rng.standard_normal((B, KV, S, D)), jnp.bfloat16)
  v = jnp.asarray(rng.standard_normal((B, KV, S, D)), jnp.bfloat16)
  if mask_kind == "causal":  # a prefill of left-padded rows: row 0's first 3 tokens are padding
    mask = np.arange(S)[None, None, :] <= np.arange(T)[None, :, None]
    mask = np.broadcast_to(mask, (B, T, S)).copy()
    mask[0, :, :3] = False  # so row 0's first 3 queries attend nothing at all
  else:
    mask = rng.random((B, T, S)) < 0.7
  return q, k, v, jnp.asarray(mask)


@needs_kernel
@pytest.mark.parametrize("B,T,H,KV,D,S,mask_kind", [
    (5, 1, 6, 2, 64, 37, "random"),     # decoding steps, a cache not a multiple of 16 slots
    (3, 19, 6, 3, 64, 19, "causal"),    # a prefill
    (2, 7, 4, 4, 32, 40, "random"),     # no grouping, the smallest head size
    (2, 5, 8, 1, 96, 16, "random"),     # one KV head for 8 query heads
    (3, 1, 3, 1, 128, 1, "random"),     # a one-slot cache
])
def test_kernel_matches_xla_attention_to_rounding(B, T, H, KV, D, S, mask_kind):
  q, k, v, mask = _inputs(B, T, H, KV, D, S, mask_kind)
  want = np.asarray(jax.jit(lambda *a: llama.gqa_attention(*a, KV))(q, k, v, mask), np.float32)
  got = np.asarray(jax.jit(cache_attention.cache_attention)(q, k, v, mask), np.float32)
  # the same bfloat16 value, or the neighbouring one
  np.testing.assert_allclose(got, want, rtol=BF16_STEP, atol=BF16_STEP * np.abs(want).max())
  assert np.mean(got != want) < 0.01


def test_applies_only_where_the_kernel_fits():
  q = jnp.zeros((2, 1, 4, 64), jnp.bfloat16)
  assert not cache_attention.applies(q.astype(jnp.float32), q.astype(jnp.float32))
  odd = jnp.zeros((2, 1, 4, 14), jnp.bfloat16)  # a head size the kernel does not take
  assert not cache_attention.applies(odd, odd)
  assert cache_attention.applies(q, q) == cpu_library.kernels_available()


@needs_kernel
def test_cached_decoding_of_a_tiny_model_with_and_without_the_kernel(monkeypatch):
  """Prefill and three decoding steps of a bfloat16 model with 32-value heads: logits within a
  few bfloat16 steps of the XLA path's (padding positions aside), the kernel in one program
  and not in the other."""
  config = llama.tiny_llama_config(head_dim=32)
  model = llama.Llama(config, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(3, config.vocab_size, (4, 8)), jnp.int32)
  mask = jnp.ones_like(ids).at[1, :3].set(0)  # one left-padded row

  def run(ids, mask):
    cache = model.init_cache(4, 12)
    logits, cache = model.forward(ids, attention_mask=mask, cache=cache, cache_index=0)
    steps = [logits]
    for i in range(3):
      token = jnp.argmax(steps[-1][:, -1:], axis=-1).astype(jnp.int32)
      logits, cache = model.forward(token, attention_mask=jnp.ones_like(token), cache=cache,
                                    cache_index=8 + i)
      steps.append(logits)
    return jnp.concatenate(steps, axis=1)

  # a fresh function for each trace: jit would reuse the first program for the same one
  program = lambda: jax.jit(lambda *a: run(*a)).lower(ids, mask).compile()
  with_kernel = program()
  monkeypatch.setattr(cache_attention, "applies", lambda q, k: False)
  without = program()
  assert "perjax_cache_attention" in with_kernel.as_text()
  assert "perjax_cache_attention" not in without.as_text()
  got, want = (np.asarray(p(ids, mask), np.float32) for p in (with_kernel, without))
  real = np.concatenate([np.asarray(mask, bool), np.ones((4, 3), bool)], axis=1)
  np.testing.assert_allclose(got[real], want[real], rtol=0,
                             atol=4 * BF16_STEP * np.abs(want).max())
