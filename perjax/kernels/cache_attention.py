"""Attention at inference on the CPU (`cache_attention.cc`): a decoding step over its KV cache,
or a prefill over its own keys.

The kernel reads each sequence's keys and values from cache-resident blocks on every core and
skips blocks no query attends, where XLA runs many small batched products and separate softmax
and transpose passes. It sums in another order than XLA, so its output agrees with
`llama.gqa_attention` to bfloat16 rounding, not bit for bit. It has no gradient: training
never calls it.
"""
import jax
import jax.numpy as jnp

from perjax.kernels.cpu_library import kernels_available

_TARGET = "perjax_cache_attention"


def applies(q, k) -> bool:
  """Whether `cache_attention` runs for queries `q [B, T, H, D]` and keys `k`: bfloat16, a head
  size the kernel takes (32, 64, 96 or 128), and the kernels run here."""
  return (q.dtype == jnp.bfloat16 and k.dtype == jnp.bfloat16 and q.shape[-1] % 32 == 0
          and q.shape[-1] <= 128 and kernels_available())


def cache_attention(q, k, v, mask):
  """q `[B, T, H, D]`, k/v `[B, KV, S, D]`, mask `[B, T, S]` (True: attend) -> `[B, T, H, D]`."""
  return jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct(q.shape, q.dtype))(q, k, v, mask)
