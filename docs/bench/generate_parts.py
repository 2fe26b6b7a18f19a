"""Where the batch-16 generation bench spends its time: the whole call (1 and 32 new tokens,
best of 3 after a warm-up) with one part of each layer switched off, and the projections'
matrix products alone at the decoding (16 rows) and prefill (16 x 128 rows) sizes. A switched
off part gives wrong tokens; only the time counts.

  JAX_PLATFORMS=cpu .venv/bin/python docs/bench/generate_parts.py base   # also: noattn, nonorm, norope
  JAX_PLATFORMS=cpu .venv/bin/python docs/bench/generate_parts.py matmuls
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import perjax.models.llama as llama


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


def matmuls():
  """SmolLM2-135M's 30 layers of fused qkv, o, fused gate-up and down products, bfloat16 in,
  float32 accumulation (as `llama._matmul`), with random weights."""
  shapes = [(576, 960), (576, 576), (576, 3072), (1536, 576)]
  rng = np.random.default_rng(0)
  weights = [[jnp.asarray(rng.standard_normal(s) / 30, jnp.bfloat16) for s in shapes]
             for _ in range(30)]
  mm = lambda x, w: jax.lax.dot_general(x, w, (((1,), (0,)), ((), ())),
                                        preferred_element_type=jnp.float32).astype(x.dtype)

  @jax.jit
  def layers(x, weights):
    for qkv, o, gate_up, down in weights:
      h = mm(mm(x, qkv)[:, :576], o)
      g = mm(h, gate_up)
      x = mm(g[:, :1536] * g[:, 1536:], down)
    return x

  flops_per_row = 2 * 30 * sum(a * b for a, b in shapes)
  for rows in (16, 2048):
    x = jnp.asarray(rng.standard_normal((rows, 576)), jnp.bfloat16)
    t = best_time(lambda: layers(x, weights), repeats=3, calls=40 if rows == 16 else 3)
    print(f"{rows} rows: {t * 1e3:.2f} ms, {flops_per_row * rows / t / 1e9:.0f} GFLOP/s",
          flush=True)


if __name__ == "__main__":
  what = sys.argv[1] if len(sys.argv) > 1 else "base"
  matmuls() if what == "matmuls" else whole_call(what)
