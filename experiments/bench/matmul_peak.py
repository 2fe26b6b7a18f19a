"""This machine's measured matrix-multiply peak, in float32 and bfloat16, and its memory read
bandwidth, for the CPU rooflines in docs/benchmarks.md. Runs with JAX (XLA) or with PyTorch (the reference stack's venv):

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/matmul_peak.py --backend jax
  /tmp/ref/bin/python experiments/bench/matmul_peak.py --backend torch
  ... matmul_peak.py --backend jax --tiny   # toy shapes, one timed call: the smoke test

Shapes: a large square product, and SmolLM2-135M's MLP up-projection at 2,048 tokens (the
prefill of 16 prompts of 128 tokens). bfloat16 inputs accumulate in float32 where the backend
allows (XLA: preferred_element_type). Prints one JSON line per shape and dtype: the best GFLOP/s
over `--repeats` timed calls after a warm-up. The read bandwidth is the best of a sum over 268 MB
(about SmolLM2-135M's bfloat16 weights), in GB/s.
"""
import argparse
import json
import time

SHAPES = {"square 2048": (2048, 2048, 2048), "mlp up, 2048 tokens": (2048, 576, 1536)}
TINY_SHAPES = {"square 64": (64, 64, 64), "mlp up, 16 tokens": (16, 576, 1536)}


def jax_product(m, k, n, dtype):
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (m, k)).astype(dtype)
  b = jax.random.normal(jax.random.key(1), (k, n)).astype(dtype)
  f = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  return lambda: f(a, b).block_until_ready()


def torch_product(m, k, n, dtype):
  import torch
  a = torch.randn(m, k).to(getattr(torch, dtype))
  b = torch.randn(k, n).to(getattr(torch, dtype))
  return lambda: a @ b


READ_ELEMENTS = 67_108_864  # 268 MB of float32 (a float32 sum reads at the memory's pace in both
# stacks; PyTorch's bfloat16 sum is bound by its conversions instead)


def jax_read(elements: int):
  import jax
  import jax.numpy as jnp
  a = jnp.ones((elements,), jnp.float32)
  f = jax.jit(jnp.sum)
  return lambda: f(a).block_until_ready()


def torch_read(elements: int):
  import torch
  a = torch.ones(elements, dtype=torch.float32)
  return lambda: a.sum()


def best_seconds(call, repeats: int) -> float:
  call()  # compile / warm up
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    call()
    best = min(best, time.perf_counter() - t)
  return best


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--backend", choices=("jax", "torch"), required=True)
  p.add_argument("--repeats", type=int, default=10)
  p.add_argument("--tiny", action="store_true", help="toy shapes and one timed call")
  args = p.parse_args()
  shapes, elements, repeats = ((TINY_SHAPES, 1 << 20, 1) if args.tiny else
                               (SHAPES, READ_ELEMENTS, args.repeats))
  make = jax_product if args.backend == "jax" else torch_product
  for name, (m, k, n) in shapes.items():
    for dtype in ("float32", "bfloat16"):
      best = best_seconds(make(m, k, n, dtype), repeats)
      print(json.dumps({"backend": args.backend, "shape": name, "dtype": dtype,
                        "gflop_per_s": round(2 * m * k * n / best / 1e9, 1)}))
  read = jax_read if args.backend == "jax" else torch_read
  best = best_seconds(read(elements), repeats)
  print(json.dumps({"backend": args.backend, "read_gb_per_s": round(4 * elements / best / 1e9,
                                                                     1)}))


if __name__ == "__main__":
  main()
