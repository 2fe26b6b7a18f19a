"""The floor that XLA's own matrix products put under the CPU training bench (`perjax bench train
--users 4 --steps 3 --batch 4 --seq 128`: 2,048 tokens a step, frozen base): the time of the
products a step cannot avoid, measured alone at that step's sizes in bfloat16 with float32
accumulation. Forward: the 30 layers' projections (q/k/v fused, o, gate/up fused, down) and the
tied LM head. Backward to the activations: the same products against the transposed weights,
contracted in place as `llama._matmul_bwd` does. No weight gradients (the base is frozen).
Attention: the batched score and value products of `llama.gqa_attention` (16 rows x 128
tokens, 3 KV heads with 3 query heads each) and their four backward products, for 30 layers.

  JAX_PLATFORMS=cpu .venv/bin/python experiments/bench/train_parts.py
  ... train_parts.py --tiny   # 2 layers, 2 rows x 16 tokens, a small vocabulary: the smoke test
"""
import functools
import sys

import jax
import jax.numpy as jnp
import numpy as np

from generate_parts import SHAPES, best_time, forward_products, product, random_layers

D, KV_HEADS, GROUP, HEAD_DIM = 576, 3, 3, 64
# the bench's step: 16 rows x 128 tokens through 30 layers and the 49,152-token LM head
FULL = dict(layers=30, batch=16, seq=128, vocab=49152)
TINY = dict(layers=2, batch=2, seq=16, vocab=1024)


def einsum(spec, a, b):
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(a.dtype)


@functools.partial(jax.jit, static_argnames="layers")
def attention_products(q, k, v, layers):
  """Per layer: scores and values forward; d probs, d q, d k and d v backward (each one batched
  product over (row, KV head), queries of a KV head's group stacked as in `gqa_attention`)."""
  for _ in range(layers):
    scores = einsum("bkqd,bksd->bkqs", q, k)
    out = einsum("bkqs,bksd->bkqd", scores, v)
    d_probs = einsum("bkqd,bksd->bkqs", out, v)
    d_q = einsum("bkqs,bksd->bkqd", d_probs, k)
    k = k + einsum("bkqs,bkqd->bksd", d_probs, q)  # d k, d v: kept live for the next layer
    v = v + einsum("bkqs,bkqd->bksd", scores, out)
    q = d_q
  return q, k, v


@jax.jit
def backward_products(g, layers):
  """The projections' products on the gradient's path, last layer first: each [rows, out]
  gradient times its [in, out] weight, contracted over out."""
  for qkv, o, gate_up, down in reversed(layers):
    h = product(g, down, 1)                                        # [rows, 1536]
    h = product(jnp.concatenate([h, h], axis=1), gate_up, 1)       # [rows, 576]
    h = product(h, o, 1)                                           # [rows, 576]
    g = product(jnp.concatenate([h, h[:, :384]], axis=1), qkv, 1)  # [rows, 576]
  return g


def main(sizes: dict):
  rows = sizes["batch"] * sizes["seq"]
  batch, seq, vocab, count = sizes["batch"], sizes["seq"], sizes["vocab"], sizes["layers"]
  rng = np.random.default_rng(0)
  layers = random_layers(rng, count)
  embed = jnp.asarray(rng.standard_normal((vocab, D)) / 30, jnp.bfloat16)
  x = jnp.asarray(rng.standard_normal((rows, D)), jnp.bfloat16)
  head_forward = jax.jit(lambda x, e: jax.lax.dot_general(
      x, e, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32))
  logits_grad = jnp.asarray(rng.standard_normal((rows, vocab)), jnp.bfloat16)
  head_backward = jax.jit(lambda g, e: product(g, e, 0))  # [rows, V] x [V, d]

  rows_heads = (batch, KV_HEADS)
  q = jnp.asarray(rng.standard_normal(rows_heads + (GROUP * seq, HEAD_DIM)) / 8, jnp.bfloat16)
  k, v = (jnp.asarray(rng.standard_normal(rows_heads + (seq, HEAD_DIM)) / 8, jnp.bfloat16)
          for _ in range(2))
  flops_attention = count * 6 * 2 * batch * KV_HEADS * GROUP * seq * seq * HEAD_DIM
  flops_layers = 2 * rows * count * sum(a * b for a, b in SHAPES)
  flops_head = 2 * rows * vocab * D
  parts = [("forward projections", lambda: forward_products(x, layers), flops_layers),
           ("backward projections (to the activations)",
            lambda: backward_products(x, layers), flops_layers),
           ("LM head forward", lambda: head_forward(x, embed), flops_head),
           ("LM head backward (to the activations)",
            lambda: head_backward(logits_grad, embed), flops_head),
           ("attention's batched products, forward and backward",
            lambda: attention_products(q, k, v, count), flops_attention)]
  total = 0.0
  for name, fn, flops in parts:
    t = best_time(fn, repeats=1 if sizes is TINY else 3)
    total += t
    print(f"{name}: {t:.3f} s, {flops / t / 1e9:.0f} GFLOP/s", flush=True)
  print(f"all products of one step: {total:.3f} s, i.e. at most {rows / total:.0f} tokens/s",
        flush=True)


if __name__ == "__main__":
  main(TINY if "--tiny" in sys.argv[1:] else FULL)
