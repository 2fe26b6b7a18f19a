"""Decoding's products on the CPU: weights packed once, a hand-written kernel for few rows.

`pack(w)` lays a `[K, N]` weight out as `[N/16, K/2, 16, 2]` (zero padded). `packed_matmul(x,
packed, n)` multiplies `x [M, K]` with it: through `rows_matmul.cc` (AVX512-BF16, all cores)
when the rows are few and the kernels run here (`perjax.kernels.cpu_library`), else through
XLA's dot on the same layout. Both give bitwise the same float32 result as XLA's `x @ w`
accumulated in float32 (at two rows or more; XLA's one-row path sums in another order), so
which one runs changes the speed only.
"""
import jax
import jax.numpy as jnp

from perjax.kernels.cpu_library import kernels_available

_TARGET = "perjax_rows_matmul"
# Up to this many rows the kernel is at least as fast as XLA's product (1.6-2.4x at 16 rows,
# 1.2-1.4x at 64, about even at 256); at a prefill's 2,048 rows XLA's is faster.
ROW_LIMIT = 256


def pack(w) -> jax.Array:
  """`[K, N]` -> `[ceil(N/16), ceil(K/2), 16, 2]`, zero padded: each 16-column block's inputs
  in pairs, the order the kernel reads them."""
  K, N = w.shape
  w = jnp.pad(w, ((0, K % 2), (0, -N % 16)))
  return w.reshape(w.shape[0] // 2, 2, w.shape[1] // 16, 16).transpose(2, 0, 3, 1)


def pack_transposed(w) -> jax.Array:
  """The same packing of `w.T` for a `[N, K]` weight (the tied embedding as the LM head),
  without materialising the transpose."""
  N, K = w.shape
  w = jnp.pad(w, ((0, -N % 16), (0, K % 2)))
  return w.reshape(w.shape[0] // 16, 16, w.shape[1] // 2, 2).transpose(0, 2, 1, 3)


def packed_matmul(x, packed, n: int):
  """float32 `[M, n]` = `x [M, K]` times the packed weight of `n` output columns."""
  M, K = x.shape
  if M <= ROW_LIMIT and x.dtype == jnp.bfloat16 and packed.dtype == jnp.bfloat16 \
      and kernels_available():
    out = jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct((M, packed.shape[0] * 16), jnp.float32))(
        x, packed)
  else:
    pairs = jnp.pad(x, ((0, 0), (0, K % 2))).reshape(M, -1, 2)
    out = jax.lax.dot_general(pairs, packed.astype(x.dtype), (((1, 2), (1, 3)), ((), ())),
                              preferred_element_type=jnp.float32).reshape(M, -1)
  return out[:, :n]


def worth_packing(dtype) -> bool:
  """Whether decoding in `dtype` should pack its weights: where the kernel runs. Elsewhere (other
  dtypes and backends) the packed layout would only slow XLA's products down."""
  return jnp.dtype(dtype) == jnp.bfloat16 and kernels_available()
