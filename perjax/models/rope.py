"""Rotary position embeddings (Hugging Face "rotate half" layout), with Llama-3 and linear
scaling."""
import math

import jax
import jax.numpy as jnp
import numpy as np


def inverse_frequencies(head_dim: int, theta: float, scaling: tuple | None = None) -> np.ndarray:
  """The rotation speed of each (i, i + D/2) pair, float32 [D/2] (a constant of the model)."""
  inv = (1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)))
  inv = inv.astype(np.float32)  # float32 throughout, like the reference implementations
  if scaling:
    s = dict(scaling)
    # linear (Gemma 3's global layers): every position divided by `factor`. A scaling without
    # a type is Llama 3's (configs written before the type was kept).
    inv = inv / np.float32(s["factor"]) if s.get("rope_type") == "linear" else _llama3_scale(inv, s)
    inv = inv.astype(np.float32)
  return inv


def _llama3_scale(inv, s: dict):
  """Llama 3.1 frequency scaling: long wavelengths are slowed by `factor`, short ones kept,
  and the band between is interpolated smoothly."""
  factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
  old_len = s["original_max_position_embeddings"]
  wavelen = 2 * math.pi / inv
  smooth = (old_len / wavelen - low) / (high - low)
  interpolated = (1 - smooth) * inv / factor + smooth * inv
  out = np.where(wavelen > old_len / low, inv / factor, inv)
  is_medium = (wavelen <= old_len / low) & (wavelen >= old_len / high)
  return np.where(is_medium, interpolated, out)


def rope_frequencies(positions, head_dim: int, theta: float, scaling: tuple | None = None,
                     *, length: int | None = None):
  """cos, sin of shape [B, T, head_dim] for integer positions [B, T] in [0, length).

  They are looked up in a table computed once, as a constant, for the `length` positions a
  program can see (its sequence or cache slots; by default, up to the largest position given,
  which must then be concrete); a position outside the table gives NaN, never a wrong angle.
  Computing cos and sin from the positions inside the program let XLA fuse both
  transcendentals into every consumer and evaluate them again for each head and layer (it
  roughly doubled the time of the RoPE fusions in a CPU training step).
  """
  if length is None:
    if isinstance(positions, jax.core.Tracer):
      raise ValueError("rope_frequencies: pass `length` (the number of slots) for positions "
                       "computed inside a jitted program")
    length = int(np.max(np.asarray(positions))) + 1
  angles = np.arange(length, dtype=np.float32)[:, None] * inverse_frequencies(head_dim, theta,
                                                                              scaling)
  angles = np.concatenate([angles, angles], axis=-1)
  positions = jnp.asarray(positions)
  return (jnp.take(jnp.asarray(np.cos(angles)), positions, axis=0),
          jnp.take(jnp.asarray(np.sin(angles)), positions, axis=0))


def apply_rope(x, cos, sin):
  """x [B, T, H, D]; rotates pairs (i, i + D/2): x * cos + rotate_half(x) * sin, where
  rotate_half(x) = (-x2, x1) for the halves (x1, x2). The halves are swapped by reversing a
  size-2 axis and the sign is folded into sin, so no slices are concatenated."""
  B, T, H, D = x.shape
  swapped = jnp.flip(x.reshape(B, T, H, 2, D // 2), axis=3).reshape(B, T, H, D)
  sign = np.repeat(np.array([-1.0, 1.0], np.float32), D // 2)
  out = (x.astype(jnp.float32) * cos[:, :, None, :]
         + swapped.astype(jnp.float32) * (sin * sign)[:, :, None, :])
  return out.astype(x.dtype)
