"""A frozen bfloat16 base stored as its 16-bit patterns (uint16), read back as bfloat16 where it
is used.

XLA's CPU backend computes bfloat16 dots natively but runs data movement on bfloat16
(dynamic-slice, gather) in float32: slicing one layer out of the stacked weights in the layer
scan first widens the *whole* stack to float32, and XLA hoists that out of the loop, so a
training step holds a float32 copy of the base (2x its bfloat16 bytes; Llama-3.2-1B at 64
tokens: 4.0 GB of scratch). Sliced as uint16 and reinterpreted inside the layer, only the
layer at hand exists in bfloat16 (tens of MB). Bit-for-bit the same weights and logits.
"""
import jax
import jax.numpy as jnp
from flax import nnx

_BITS = jnp.uint16


def readable(w):
  """`w` as the model computes with it: bfloat16 again if it is stored as bits."""
  return jax.lax.bitcast_convert_type(w, jnp.bfloat16) if w.dtype == _BITS else w


def readable_tree(tree):
  return jax.tree.map(readable, tree)


_to_bits = jax.jit(lambda w: jax.lax.bitcast_convert_type(w, _BITS), donate_argnums=0)


def store_frozen_base_as_bits(model) -> int:
  """Store `model`'s bfloat16 base weights as bits, one leaf at a time: each bfloat16 leaf is
  freed as its bits are made (XLA does not alias buffers of different dtypes, so one leaf is
  held twice for a moment; `random_base(frozen_bits=True)` draws bits directly and holds none
  twice); personal tables are left alone. Only for a base that is not trained: its gradient
  would be taken with respect to integers. Returns how many leaves were converted."""
  converted = 0
  for path, node in nnx.iter_graph(model):
    if isinstance(node, nnx.Param) and "personal" not in path \
        and node[...].dtype == jnp.bfloat16:
      node.set_value(_to_bits(node[...]))
      converted += 1
  return converted


def stored_as_bits(model) -> bool:
  """Whether any of `model`'s base weights are stored as bits."""
  return any(isinstance(node, nnx.Param) and "personal" not in path and node[...].dtype == _BITS
             for path, node in nnx.iter_graph(model))


def worth_storing_as_bits(dtype, train_base: bool) -> bool:
  """On XLA's CPU backend, for a frozen bfloat16 base."""
  return (not train_base and jnp.dtype(dtype) == jnp.bfloat16
          and jax.default_backend() == "cpu")
