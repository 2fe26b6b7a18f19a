"""Rotary position embeddings (Hugging Face "rotate half" layout), with Llama-3 scaling."""
import math

import jax.numpy as jnp


def inverse_frequencies(head_dim: int, theta: float, scaling: tuple | None = None):
  inv = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  if scaling:
    inv = _llama3_scale(inv, dict(scaling))
  return inv


def _llama3_scale(inv, s: dict):
  """Llama 3.1 frequency scaling: long wavelengths are slowed by `factor`, short ones kept,
  and the band between is interpolated smoothly."""
  factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
  old_len = s["original_max_position_embeddings"]
  wavelen = 2 * math.pi / inv
  smooth = (old_len / wavelen - low) / (high - low)
  interpolated = (1 - smooth) * inv / factor + smooth * inv
  out = jnp.where(wavelen > old_len / low, inv / factor, inv)
  is_medium = (wavelen <= old_len / low) & (wavelen >= old_len / high)
  return jnp.where(is_medium, interpolated, out)


def rope_frequencies(positions, head_dim: int, theta: float, scaling: tuple | None = None):
  """cos, sin of shape [B, T, head_dim] for integer positions [B, T]."""
  inv = inverse_frequencies(head_dim, theta, scaling)
  angles = positions.astype(jnp.float32)[..., None] * inv  # [B, T, D/2]
  angles = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x, cos, sin):
  """x [B, T, H, D]; rotates pairs (i, i + D/2)."""
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  out = x.astype(jnp.float32) * cos[:, :, None, :] + rotated.astype(jnp.float32) * sin[:, :, None, :]
  return out.astype(x.dtype)
