"""Rotary embeddings against an independent numpy version (complex rotation of the (i, i + D/2)
pairs, Llama-3 scaling written from its published piecewise formula), plus their invariants."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from perjax.models.llama import LlamaConfig
from perjax.models.rope import apply_rope, inverse_frequencies, rope_frequencies

LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}
SCALING = tuple(sorted(LLAMA3.items()))


def _np_inverse_frequencies(head_dim, theta, scaling=None):
  inv = [theta ** (-2.0 * i / head_dim) for i in range(head_dim // 2)]
  if scaling is None:
    return np.array(inv)
  factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
  old = scaling["original_max_position_embeddings"]
  out = []
  for f in inv:
    wavelen = 2 * math.pi / f
    if wavelen < old / high:  # high frequencies: unchanged
      out.append(f)
    elif wavelen > old / low:  # low frequencies: slowed down by `factor`
      out.append(f / factor)
    else:  # in between: interpolate on old / wavelen
      smooth = (old / wavelen - low) / (high - low)
      out.append((1 - smooth) * f / factor + smooth * f)
  return np.array(out)


def _np_rope(x, positions, inv):
  """x [B, T, H, D] as complex pairs (x_i + j x_{i+D/2}) rotated by position * inv_i."""
  half = x.shape[-1] // 2
  z = x[..., :half] + 1j * x[..., half:]
  z = z * np.exp(1j * positions[:, :, None, None] * inv)
  return np.concatenate([z.real, z.imag], axis=-1)


@pytest.mark.parametrize("head_dim,theta", [(14, 10000.0), (64, 100000.0)])
def test_plain_frequencies_and_rotation_match_numpy(head_dim, theta):
  inv = _np_inverse_frequencies(head_dim, theta)
  np.testing.assert_allclose(np.asarray(inverse_frequencies(head_dim, theta)), inv, rtol=1e-6)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 9, 3, head_dim)).astype(np.float32)
  positions = rng.integers(0, 300, (2, 9))
  cos, sin = rope_frequencies(jnp.asarray(positions), head_dim, theta)
  got = np.asarray(apply_rope(jnp.asarray(x), cos, sin))
  np.testing.assert_allclose(got, _np_rope(x, positions, inv), atol=2e-4)


def test_llama3_scaling_matches_published_formula():
  head_dim, theta = 128, 500000.0
  plain = _np_inverse_frequencies(head_dim, theta)
  want = _np_inverse_frequencies(head_dim, theta, LLAMA3)
  # The setting must exercise all three bands, or the test would prove little.
  assert (want == plain).any() and (np.isclose(want, plain / 8)).any()
  assert ((want > plain / 8 * 1.01) & (want < plain * 0.99)).any()
  got = np.asarray(inverse_frequencies(head_dim, theta, SCALING))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_llama3_scaling_parsed_from_hf_config():
  hf = {"vocab_size": 7, "hidden_size": 256, "intermediate_size": 11, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", **LLAMA3}}
  c = LlamaConfig.from_hf(hf)
  got = np.asarray(inverse_frequencies(c.head_dim, c.rope_theta, c.rope_scaling))
  np.testing.assert_allclose(got, _np_inverse_frequencies(128, 500000.0, LLAMA3), rtol=1e-5)


@pytest.mark.parametrize("scaling", [None, SCALING])
def test_rotation_preserves_norms(scaling):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(1, 33, 2, 128)).astype(np.float32)
  cos, sin = rope_frequencies(jnp.arange(0, 33 * 97, 97)[None], 128, 500000.0, scaling)
  out = np.asarray(apply_rope(jnp.asarray(x), cos, sin))
  np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)


@pytest.mark.parametrize("scaling", [None, SCALING])
def test_scores_depend_only_on_relative_position(scaling):
  rng = np.random.default_rng(2)
  q, k = (jnp.asarray(rng.normal(size=(1, 1, 1, 64)).astype(np.float32)) for _ in range(2))

  def score(m, n):
    rot = lambda x, p: apply_rope(x, *rope_frequencies(jnp.array([[p]]), 64, 10000.0, scaling))
    return float(jnp.sum(rot(q, m) * rot(k, n)))

  for m, n in [(5, 2), (17, 17), (3, 40)]:
    ref = score(m, n)
    for shift in (1, 29, 250):
      assert score(m + shift, n + shift) == pytest.approx(ref, rel=1e-4, abs=1e-4)
  assert abs(score(5, 2) - score(6, 2)) > 1e-3  # and it does depend on the offset


def test_table_lookup_inside_jit_and_outside_the_table_is_nan():
  import jax
  positions = jnp.array([[0, 3, 6]])
  want = rope_frequencies(np.array([[0, 3, 6]]), 14, 10000.0)  # the table sized to fit
  got = jax.jit(lambda p: rope_frequencies(p, 14, 10000.0, length=7))(positions)
  for g, w in zip(got, want):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
  cos, sin = rope_frequencies(positions, 14, 10000.0, length=6)  # position 6 is outside
  assert np.isnan(np.asarray(cos)[0, 2]).all() and np.isfinite(np.asarray(cos)[0, :2]).all()


def test_traced_positions_without_length_name_the_problem():
  import jax
  with pytest.raises(ValueError, match="pass `length`"):
    jax.jit(lambda p: rope_frequencies(p, 14, 10000.0))(jnp.array([[0, 1]]))
