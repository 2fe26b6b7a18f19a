"""perjax's CPU kernels against XLA's code for the same work, one op at a time (best of 20 calls
after a warm-up): the product of 16 rows with SmolLM2-135M's weights (the decoding step's
shapes, and the LM head), and attention at a decoding step and at a batch-16 prefill.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/cpu_kernels.py
  ... cpu_kernels.py --tiny   # 2 calls each, no LM head: the smoke test
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import perjax.models.llama as llama
from perjax.cli.environment import apply_command_defaults
from perjax.kernels import cache_attention, cpu_library, rows_matmul

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken


CALLS = 2 if "--tiny" in sys.argv[1:] else 20


def best(fn, *args) -> float:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(CALLS):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return min(times)


def products(rng):
  print("| product, 16 rows | weights | XLA | kernel | kernel's weight read | speed-up |")
  print("|---|---|---|---|---|---|")
  plain = jax.jit(lambda x, w: jax.lax.dot_general(
      x, w, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32))
  shapes = {"q/k/v fused": (576, 960), "o": (576, 576), "gate/up fused": (576, 3072),
            "down": (1536, 576), "LM head": (576, 49152)}
  if CALLS < 20:
    del shapes["LM head"]  # its 56 MB of random weights take longer to draw than to time
  for name, (K, N) in shapes.items():
    w = jnp.asarray(rng.standard_normal((K, N)) / 30, jnp.bfloat16)
    x = jnp.asarray(rng.standard_normal((16, K)), jnp.bfloat16)
    kernel = jax.jit(lambda x, p, n=N: rows_matmul.packed_matmul(x, p, n))
    t_xla, t_kernel = best(plain, x, w), best(kernel, x, rows_matmul.pack(w))
    print(f"| {name} [{K}, {N}] | {w.nbytes / 1e6:.2f} MB | {t_xla * 1e3:.3f} ms | "
          f"{t_kernel * 1e3:.3f} ms | {w.nbytes / t_kernel / 1e9:.1f} GB/s | "
          f"{t_xla / t_kernel:.2f}x |", flush=True)


def attention(rng):
  print("\n| attention (SmolLM2-135M: 9 heads, 3 KV heads, 64 values) | XLA | kernel | speed-up |")
  print("|---|---|---|---|")
  for name, (T, S) in {"decoding step, 16 rows, 160 cached slots": (1, 160),
                       "prefill, 16 rows x 128 tokens, causal": (128, 128)}.items():
    q = jnp.asarray(rng.standard_normal((16, T, 9, 64)), jnp.bfloat16)
    k, v = (jnp.asarray(rng.standard_normal((16, 3, S, 64)), jnp.bfloat16) for _ in "kv")
    mask = jnp.broadcast_to(jnp.arange(S)[None, :] <= (S - T + jnp.arange(T))[:, None],
                            (16, T, S))
    xla = jax.jit(lambda q, k, v, m: llama.gqa_attention(q, k, v, m, 3))
    t_xla, t_kernel = best(xla, q, k, v, mask), best(
        jax.jit(cache_attention.cache_attention), q, k, v, mask)
    print(f"| {name} | {t_xla * 1e6:.0f} us | {t_kernel * 1e6:.0f} us | "
          f"{t_xla / t_kernel:.2f}x |", flush=True)


if __name__ == "__main__":
  if not cpu_library.kernels_available():
    raise SystemExit("the CPU kernels do not run here (AVX512-BF16, a C++ compiler and one CPU "
                     "device are needed)")
  rng = np.random.default_rng(0)
  products(rng)
  attention(rng)
