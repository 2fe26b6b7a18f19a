"""Where the batch-16 generation bench spends its time: the whole call (1 and 32 new tokens,
best of 3 after a warm-up) with one part of each layer switched off, and the projections'
matrix products alone at the decoding (16 rows) and prefill (16 x 128 rows) sizes. A switched
off part gives wrong tokens; only the time counts.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/generate_parts.py base   # also: noattn, nonorm, norope
  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/generate_parts.py matmuls
  ... generate_parts.py PART --tiny   # the same code at toy sizes (tiny-llama), for the smoke test
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


# the part of each layer switched off: the model calls these module functions by name
SWITCHED_OFF = {"noattn": ("gqa_attention", lambda q, k, v, mask, *args: q),
                "nonorm": ("rms_norm", lambda x, weight, *args: x),
                "norope": ("apply_rope", lambda x, cos, sin: x)}


def whole_call(part: str, tiny: bool):
  from perjax.bench.lora_training import random_ids
  from perjax.generation import Generator, SamplingConfig
  from perjax.models import load
  if part in SWITCHED_OFF:
    name, stand_in = SWITCHED_OFF[part]
    setattr(llama, name, stand_in)
  elif part != "base":
    sys.exit(f"generate_parts: unknown part {part!r} (base, matmuls, {', '.join(SWITCHED_OFF)})")
  model, tokenizer = load("tiny-llama" if tiny else "smollm2-135m-instruct", dtype="bfloat16",
                          param_dtype="bfloat16", progress=False)
  generator = Generator(model, tokenizer, stop_at_eos=False)
  prompts = random_ids(np.random.default_rng(0), (4, 8) if tiny else (16, 128),
                       model.config.vocab_size).tolist()
  for new_tokens in (1, 4) if tiny else (1, 32):
    sampling = SamplingConfig(max_new_tokens=new_tokens)
    t = best_time(lambda: generator.generate_ids(prompts, sampling=sampling),
                  repeats=1 if tiny else 3)
    print(f"{part}, {new_tokens} new tokens: {t:.3f} s", flush=True)


# SmolLM2-135M's projections as (in, out): q/k/v fused, o, gate/up fused, down
SHAPES = [(576, 960), (576, 576), (576, 3072), (1536, 576)]


def product(x, w, contract_w=0):
  """x [rows, K] times w ([K, N], or [N, K] contracted in place) in x's dtype, accumulated in
  float32, as `llama._matmul` and its backward."""
  return jax.lax.dot_general(x, w, (((1,), (contract_w,)), ((), ())),
                             preferred_element_type=jnp.float32).astype(x.dtype)


def random_layers(rng, count: int = 30) -> list[list[jax.Array]]:
  """`count` layers (SmolLM2-135M has 30) of bfloat16 weights of SHAPES, random values (only
  the time counts)."""
  return [[jnp.asarray(rng.standard_normal(s) / 30, jnp.bfloat16) for s in SHAPES]
          for _ in range(count)]


@jax.jit
def forward_products(x, layers):
  """The layers' projection products on rows x [rows, 576], nothing else."""
  for qkv, o, gate_up, down in layers:
    g = product(product(product(x, qkv)[:, :576], o), gate_up)
    x = product(g[:, :1536] * g[:, 1536:], down)
  return x


def matmuls(tiny: bool):
  rng = np.random.default_rng(0)
  layers = random_layers(rng, 2 if tiny else 30)
  flops_per_row = 2 * len(layers) * sum(a * b for a, b in SHAPES)
  for rows in (16, 2048):
    x = jnp.asarray(rng.standard_normal((rows, 576)), jnp.bfloat16)
    calls = 1 if tiny else 40 if rows == 16 else 3
    t = best_time(lambda: forward_products(x, layers), repeats=1 if tiny else 3, calls=calls)
    print(f"{rows} rows: {t * 1e3:.2f} ms, {flops_per_row * rows / t / 1e9:.0f} GFLOP/s",
          flush=True)


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if a != "--tiny"]
  what, tiny = (args or ["base"])[0], "--tiny" in sys.argv
  matmuls(tiny) if what == "matmuls" else whole_call(what, tiny)
