"""Where the batch-16 generation bench spends its time: the whole call (1 and 32 new tokens,
best of 3 after a warm-up) with one part of each layer switched off, and the projections'
matrix products alone at the decoding (16 rows) and prefill (16 x 128 rows) sizes. A switched
off part gives wrong tokens; only the time counts.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/generate_parts.py base   # also: noattn, nonorm, norope
  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/generate_parts.py matmuls
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import perjax.models.llama as llama
from perjax.cli.environment import apply_command_defaults

apply_command_defaults()  # the `perjax` command's XLA flags, under which the figures were taken


def best_time(fn, repeats: int, calls: int = 1) -> float:
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(calls):
      out = fn()
    jax.block_until_ready(out)
    times.append((time.perf_counter() - start) / calls)
  return min(times)


def whole_call(part: str):
  from perjax.generation import Generator, SamplingConfig
  from perjax.models import load
  if part == "noattn":
    llama._gqa_attention = lambda q, k, v, mask, num_kv_heads: q
  elif part == "nonorm":
    llama._rms_norm = lambda x, weight, eps: x
  elif part == "norope":
    llama.apply_rope = lambda x, cos, sin: x
  model, tokenizer = load("smollm2-135m-instruct", dtype="bfloat16", param_dtype="bfloat16",
                          progress=False)
  generator = Generator(model, tokenizer, stop_at_eos=False)
  prompts = np.random.default_rng(0).integers(100, 40000, (16, 128)).tolist()
  for new_tokens in (1, 32):
    sampling = SamplingConfig(max_new_tokens=new_tokens)
    t = best_time(lambda: generator.generate_ids(prompts, sampling=sampling), repeats=3)
    print(f"{part}, {new_tokens} new tokens: {t:.3f} s", flush=True)


# SmolLM2-135M's projections as (in, out): q/k/v fused, o, gate/up fused, down
SHAPES = [(576, 960), (576, 576), (576, 3072), (1536, 576)]


def product(x, w, contract_w=0):
  """x [rows, K] times w ([K, N], or [N, K] contracted in place) in x's dtype, accumulated in
  float32, as `llama._matmul` and its backward."""
  return jax.lax.dot_general(x, w, (((1,), (contract_w,)), ((), ())),
                             preferred_element_type=jnp.float32).astype(x.dtype)


def random_layers(rng) -> list[list[jax.Array]]:
  """30 layers of bfloat16 weights of SHAPES, random values (only the time counts)."""
  return [[jnp.asarray(rng.standard_normal(s) / 30, jnp.bfloat16) for s in SHAPES]
          for _ in range(30)]


@jax.jit
def forward_products(x, layers):
  """The 30 layers' projection products on rows x [rows, 576], nothing else."""
  for qkv, o, gate_up, down in layers:
    g = product(product(product(x, qkv)[:, :576], o), gate_up)
    x = product(g[:, :1536] * g[:, 1536:], down)
  return x


def matmuls():
  rng = np.random.default_rng(0)
  layers = random_layers(rng)
  flops_per_row = 2 * 30 * sum(a * b for a, b in SHAPES)
  for rows in (16, 2048):
    x = jnp.asarray(rng.standard_normal((rows, 576)), jnp.bfloat16)
    t = best_time(lambda: forward_products(x, layers), repeats=3, calls=40 if rows == 16 else 3)
    print(f"{rows} rows: {t * 1e3:.2f} ms, {flops_per_row * rows / t / 1e9:.0f} GFLOP/s",
          flush=True)


if __name__ == "__main__":
  what = sys.argv[1] if len(sys.argv) > 1 else "base"
  matmuls() if what == "matmuls" else whole_call(what)
