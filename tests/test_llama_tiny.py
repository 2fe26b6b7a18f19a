"""The Llama decoder on tiny odd-sized random models: masking, causality, the KV cache,
personal slots, attention variants and bfloat16."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from perjax.models import Llama, tiny_llama_config
from perjax.models.personal import Personal
from personal_tiny import personal as make_personal, randomize_lora_b as _randomize_lora_b

PERSONAL = make_personal(groups=3, rank=2, prompt_len=2)
ALL_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


def _model(personal=None, seed=0, **overrides):
  return Llama(tiny_llama_config(**overrides), personal=personal, rngs=nnx.Rngs(seed))


def _ids(shape, seed=0):
  return np.random.default_rng(seed).integers(3, 131, shape).astype(np.int32)


@functools.partial(jax.jit, static_argnums=0)
def _apply(graphdef, state, ids, mask, group_ids):
  return nnx.merge(graphdef, state)(ids, attention_mask=mask, group_ids=group_ids)


def _logits(model, ids, mask=None, group_ids=None):
  """Jitted `model(...)`; compiled once per shape and model structure, so the tests stay fast."""
  ids = jnp.asarray(ids)
  mask = jnp.ones_like(ids) if mask is None else jnp.asarray(mask)
  group_ids = jnp.zeros(ids.shape[:1], jnp.int32) if group_ids is None else jnp.asarray(group_ids)
  return np.asarray(_apply(*nnx.split(model), ids, mask, group_ids))


# -- (a) padding ------------------------------------------------------------------------------
@pytest.mark.parametrize("personal", [None, PERSONAL], ids=["base", "personal"])
def test_right_and_left_padding_do_not_change_real_logits(personal):
  model = _model(personal, seed=1)
  if personal:
    _randomize_lora_b(model)
  ids = _ids((1, 7))
  alone = _logits(model, ids, group_ids=[2])
  pad = 5
  right = np.concatenate([ids, np.zeros((1, pad), np.int32)], axis=1)
  right_mask = (np.arange(7 + pad) < 7)[None].astype(np.int32)
  left = np.concatenate([np.zeros((1, pad), np.int32), ids], axis=1)
  left_mask = right_mask[:, ::-1].copy()
  np.testing.assert_allclose(_logits(model, right, right_mask, [2])[:, :7], alone, atol=1e-5)
  np.testing.assert_allclose(_logits(model, left, left_mask, [2])[:, pad:], alone, atol=1e-5)
  # The ids under the mask are never looked at.
  noisy = np.where(right_mask == 1, right, _ids((1, 7 + pad), seed=9))
  np.testing.assert_allclose(_logits(model, noisy, right_mask, [2])[:, :7], alone, atol=1e-6)


def test_batch_of_different_lengths_equals_each_alone():
  model = _model(seed=2)
  seqs = [_ids((1, n), seed=n)[0] for n in (3, 11, 6)]
  ids = np.zeros((3, 11), np.int32)
  mask = np.zeros((3, 11), np.int32)
  for r, s in enumerate(seqs):
    ids[r, -len(s):], mask[r, -len(s):] = s, 1  # left-padded, as for generation
  batch = _logits(model, ids, mask)
  for r, s in enumerate(seqs):
    np.testing.assert_allclose(batch[r, -len(s):], _logits(model, s[None])[0], atol=1e-5)


# -- (c) causality ----------------------------------------------------------------------------
def test_logits_ignore_later_tokens():
  model = _model(PERSONAL, seed=3)
  ids = _ids((2, 13))
  base = _logits(model, ids, group_ids=[0, 1])
  for t in (0, 4, 11):
    changed = ids.copy()
    changed[:, t + 1:] = _ids((2, 12 - t), seed=t + 1)
    out = _logits(model, changed, group_ids=[0, 1])
    np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-6)
    assert not np.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-3)


# -- (d) KV cache -----------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=0)
def _prefill(graphdef, state, ids, mask, group_ids, cache, layers):
  return nnx.merge(graphdef, state).forward(ids, attention_mask=mask, group_ids=group_ids,
                                            cache=cache, cache_index=0, layers=layers)


@functools.partial(jax.jit, static_argnums=0)
def _step(graphdef, state, ids, mask, group_ids, cache, index, layers):  # index is traced
  return nnx.merge(graphdef, state).forward(ids, attention_mask=mask, group_ids=group_ids,
                                            cache=cache, cache_index=index, layers=layers)


def _cached_logits(model, ids, mask, group_ids, prefill, layers=None):
  """Prefill `prefill` tokens into a cache, then feed the rest one token at a time. `layers`:
  per-layer weights passed in (e.g. fused, as `Generator` does), or None (sliced inside jit)."""
  B, T = ids.shape
  n = model.prefix_len
  graphdef, state = nnx.split(model)
  out, cache = _prefill(graphdef, state, ids[:, :prefill], mask[:, :prefill], group_ids,
                        model.init_cache(B, n + T), layers)
  outs = [np.asarray(out)]
  for t in range(prefill, T):
    out, cache = _step(graphdef, state, ids[:, t:t + 1], mask[:, t:t + 1], group_ids, cache,
                       jnp.int32(n + t), layers)
    outs.append(np.asarray(out))
  return np.concatenate(outs, axis=1)


CASES = [  # (config overrides, with personal slots)
    pytest.param({}, False, id="gqa-base"),
    pytest.param({}, True, id="gqa-personal"),
    pytest.param({"num_kv_heads": 6}, True, id="mha-personal"),
    pytest.param({"num_kv_heads": 1}, False, id="mqa-base"),
    pytest.param({"attention_bias": True}, True, id="bias-personal"),
    pytest.param({"tie_embeddings": True}, False, id="tied-base"),
]


@pytest.mark.parametrize("overrides,with_personal", CASES)
def test_cached_decoding_equals_full_forward(overrides, with_personal):
  model = _model(PERSONAL if with_personal else None, seed=4, **overrides)
  if with_personal:
    _randomize_lora_b(model)
  if overrides.get("attention_bias"):
    for i, name in enumerate(("q_bias", "k_bias", "v_bias")):
      bias = getattr(model.layers, name)
      bias[...] = jax.random.normal(jax.random.key(i), bias[...].shape) * 0.5
  ids = _ids((3, 10))
  mask = np.ones((3, 10), np.int32)
  mask[1, :3] = 0  # one left-padded row
  group_ids = jnp.array([2, 0, 1])
  full = _logits(model, ids, mask, group_ids)
  real = mask == 1
  for layers in (None, model.unstacked_layers()):  # unfused, then q|k|v and gate|up fused
    cached = _cached_logits(model, ids, mask, group_ids, prefill=4, layers=layers)
    np.testing.assert_allclose(cached[real], full[real], atol=1e-5)


# -- (e) personal slots -----------------------------------------------------------------------
def test_zero_lora_gives_the_base_model():
  config = tiny_llama_config()
  base = Llama(config, rngs=nnx.Rngs(5))
  personal = Llama(config, personal=make_personal(groups=3, rank=2,
                                                     targets=ALL_TARGETS),
                   rngs=nnx.Rngs(6))
  nnx.update(personal, nnx.state(base))  # copy every base weight; LoRA b stays at zero
  ids = _ids((3, 9))
  want = _logits(base, ids)
  np.testing.assert_allclose(_logits(personal, ids, group_ids=[0, 2, 1]), want, atol=1e-6)
  _randomize_lora_b(personal)
  assert not np.allclose(_logits(personal, ids, group_ids=[0, 2, 1]), want, atol=1e-3)


def test_each_example_uses_its_own_group():
  model = _model(PERSONAL, seed=7)
  _randomize_lora_b(model)
  ids = _ids((3, 8))
  mixed = _logits(model, ids, group_ids=[1, 0, 2])
  for row, g in enumerate((1, 0, 2)):
    np.testing.assert_allclose(mixed[row], _logits(model, ids[row:row + 1], group_ids=[g])[0],
                               atol=1e-5)
  assert not np.allclose(mixed[0], _logits(model, ids[:1], group_ids=[2])[0], atol=1e-3)


# -- (f) attention variants -------------------------------------------------------------------
def test_gqa_equals_mha_with_repeated_kv_heads():
  gqa = _model(seed=8)  # 6 query heads share 2 kv heads
  mha = _model(seed=9, num_kv_heads=6)
  c = gqa.config
  state = nnx.state(gqa).to_pure_dict()
  for name in ("k", "v"):
    w = state["layers"][name].reshape(c.num_layers, c.hidden_size, c.num_kv_heads, c.head_dim)
    w = jnp.repeat(w, c.num_heads // c.num_kv_heads, axis=2)  # kv head j serves q heads j*3..j*3+2
    state["layers"][name] = w.reshape(c.num_layers, c.hidden_size, -1)
  mha_state = nnx.state(mha)
  nnx.replace_by_pure_dict(mha_state, state)
  nnx.update(mha, mha_state)
  ids = _ids((2, 9))
  np.testing.assert_allclose(_logits(mha, ids), _logits(gqa, ids), atol=1e-5)


@pytest.mark.parametrize("name", ["q_bias", "k_bias", "v_bias"])
def test_attention_bias_is_applied(name):
  model = _model(seed=10, attention_bias=True)
  ids = _ids((2, 7))
  before = _logits(model, ids)
  bias = getattr(model.layers, name)
  bias[...] = jax.random.normal(jax.random.key(0), bias[...].shape)
  assert not np.allclose(_logits(model, ids), before, atol=1e-3)


# -- (g) bfloat16 -----------------------------------------------------------------------------
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_bfloat16_is_close_to_float32(param_dtype):
  config = tiny_llama_config()
  f32 = Llama(config, rngs=nnx.Rngs(11))
  bf16 = Llama(config, dtype=jnp.bfloat16, param_dtype=param_dtype, rngs=nnx.Rngs(11))
  if param_dtype == jnp.bfloat16:
    nnx.update(bf16, jax.tree.map(lambda x: x.astype(jnp.bfloat16), nnx.state(f32)))
  ids = _ids((2, 12))
  want = _logits(f32, ids)
  got = _logits(bf16, ids)
  assert got.dtype == np.float32 and np.isfinite(got).all()
  scale = np.abs(want).max()
  assert np.abs(got - want).max() < 0.05 * scale
  assert (got.argmax(-1) == want.argmax(-1)).mean() > 0.8


# -- (h) unrolled layers and the matmul's backward pass ---------------------------------------
def test_unrolled_layers_equal_the_layer_scan_in_logits_and_lora_gradients():
  personal = make_personal(groups=3, rank=2, targets=ALL_TARGETS)
  scanned = Llama(tiny_llama_config(attention_bias=True), personal=personal, rngs=nnx.Rngs(5))
  unrolled = Llama(tiny_llama_config(attention_bias=True), personal=personal,
                   unroll_layers=True, rngs=nnx.Rngs(5))
  _randomize_lora_b(scanned)
  nnx.update(unrolled, nnx.state(scanned))
  ids, group_ids = _ids((3, 9)), jnp.array([2, 0, 1])

  def lora_grads(model):
    def loss(personal_state):
      m = nnx.merge(nnx.graphdef(model), personal_state, nnx.state(model, nnx.Not(Personal)))
      return jnp.sum(m(ids, group_ids=group_ids) ** 2) / ids.size
    return jax.grad(loss)(nnx.state(model, Personal))

  np.testing.assert_allclose(_logits(unrolled, ids, group_ids=group_ids),
                             _logits(scanned, ids, group_ids=group_ids), atol=1e-5)
  want, got = lora_grads(scanned), lora_grads(unrolled)
  for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
  assert any(np.abs(w).max() > 1e-3 for w in jax.tree.leaves(want))  # the check has teeth


@pytest.mark.parametrize("contract_w", [0, 1])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_matmul_gradients_match_plain_autodiff(dtype, contract_w):
  from perjax.models.llama import _matmul_f32
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((7, 11)), dtype)
  w = jnp.asarray(rng.standard_normal((11, 5) if contract_w == 0 else (5, 11)), dtype)
  ct = jnp.asarray(rng.standard_normal((7, 5)), jnp.float32)
  f = lambda fn: lambda x, w: jnp.sum(fn(x, w) * ct)
  mine = lambda x, w: _matmul_f32(x, w, contract_w)
  plain = lambda x, w: jnp.dot(x.astype(jnp.float32),
                               (w if contract_w == 0 else w.T).astype(jnp.float32))
  np.testing.assert_allclose(mine(x, w), plain(x, w), rtol=1e-5, atol=1e-5)
  tol = 1e-5 if dtype == jnp.float32 else 0.05
  for got, want in zip(jax.grad(f(mine), (0, 1))(x, w), jax.grad(f(plain), (0, 1))(x, w)):
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("spec", ["bkqd,bksd->bkqs", "bkqs,bksd->bkqd"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batched_einsum_gradients_match_plain_autodiff(dtype, spec):
  from perjax.models.llama import _einsum_f32
  rng = np.random.default_rng(1)
  sizes = dict(b=2, k=3, q=5, s=7, d=4)
  (a_spec, b_spec), out = spec.split("->")[0].split(","), spec.split("->")[1]
  a, b = (jnp.asarray(rng.standard_normal([sizes[i] for i in t]), dtype) for t in (a_spec, b_spec))
  ct = jnp.asarray(rng.standard_normal([sizes[i] for i in out]), jnp.float32)
  plain = lambda a, b: jnp.einsum(spec, a.astype(jnp.float32), b.astype(jnp.float32))
  mine = lambda a, b: _einsum_f32(spec, a, b)
  assert mine(a, b).dtype == jnp.float32
  np.testing.assert_allclose(mine(a, b), plain(a, b), rtol=1e-5, atol=1e-5)
  tol = 1e-5 if dtype == jnp.float32 else 0.05
  f = lambda fn: lambda a, b: jnp.sum(fn(a, b) * ct)
  for got, want in zip(jax.grad(f(mine), (0, 1))(a, b), jax.grad(f(plain), (0, 1))(a, b)):
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=tol, atol=tol)


def test_bfloat16_mlp_activation_is_rounded_once(monkeypatch):
  """The MLP's silu(gate) * up in a bfloat16 model: computed in float32 and rounded once (two
  bfloat16 roundings differ in the last bit here and there, and were twice as slow on CPU)."""
  model = Llama(tiny_llama_config(), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                unroll_layers=True, rngs=nnx.Rngs(0))
  seen = {}
  projs, proj = Llama._projs, Llama._proj

  def spy_projs(self, x, p, names, *args):
    out = projs(self, x, p, names, *args)
    if names == ("gate", "up"):
      seen["gate_up"] = out
    return out

  def spy_proj(self, x, p, name, *args):
    if name == "down":
      seen["down_input"] = x
    return proj(self, x, p, name, *args)

  monkeypatch.setattr(Llama, "_projs", spy_projs)
  monkeypatch.setattr(Llama, "_proj", spy_proj)
  model(_ids((4, 33)))  # eager: the last layer's values stay concrete
  gate, up = seen["gate_up"]
  once = (jax.nn.silu(gate.astype(jnp.float32)) * up.astype(jnp.float32)).astype(jnp.bfloat16)
  np.testing.assert_array_equal(seen["down_input"], once)
  assert np.any(np.asarray(jax.nn.silu(gate) * up) != np.asarray(once))  # the test can tell
