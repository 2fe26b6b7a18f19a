"""The CPU decoding product (`perjax.kernels.rows_matmul`): packed products equal XLA's float32-
accumulated product bit for bit, through the kernel and through XLA's fallback, and generation
with packed weights gives the same logits and tokens as with plain ones."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from perjax.errors import ConfigError
from perjax.generation import Generator, SamplingConfig
from perjax.kernels import cpu_library, rows_matmul
from perjax.models.llama import Llama, tiny_llama_config
from perjax.scoring import continuation_logprobs

needs_kernel = pytest.mark.skipif(
    not cpu_library.kernels_available(),
    reason="the CPU kernels need AVX512-BF16, a C++ compiler and one CPU device")

# odd inner sizes (an unpaired last input), widths off the 16-column blocks, and row counts
# below, at and past one 16-row register block
SHAPES = [(43, 33, 1), (42, 47, 5), (7, 100, 16), (64, 16, 17), (91, 129, 40)]


def _plain(x, w):
  """XLA's product as it runs on two rows or more (on one row XLA's CPU backend takes a
  matrix-vector path that sums in another order, last bits apart)."""
  both = jnp.concatenate([x, x])
  return jax.lax.dot_general(both, w, (((1,), (0,)), ((), ())),
                             preferred_element_type=jnp.float32)[:len(x)]


def _operands(K, N, M, seed=0):
  rng = np.random.default_rng(seed)
  w = jnp.asarray(rng.standard_normal((K, N)), jnp.bfloat16)
  x = jnp.asarray(rng.standard_normal((M, K)), jnp.bfloat16)
  return x, w


@needs_kernel
@pytest.mark.parametrize("K,N,M", SHAPES)
def test_kernel_equals_xla_bit_for_bit(K, N, M):
  x, w = _operands(K, N, M)
  product = jax.jit(rows_matmul.packed_matmul, static_argnums=2)
  np.testing.assert_array_equal(product(x, rows_matmul.pack(w), N), _plain(x, w))
  # the compiled program really calls the kernel
  assert rows_matmul._TARGET in product.lower(x, rows_matmul.pack(w), N).as_text()


@pytest.mark.parametrize("K,N,M", SHAPES)
def test_xla_fallback_on_the_packed_layout_equals_the_plain_product(K, N, M, monkeypatch):
  monkeypatch.setattr(rows_matmul, "kernels_available", lambda: False)
  x, w = _operands(K, N, M, seed=1)
  product = jax.jit(lambda x, packed: rows_matmul.packed_matmul(x, packed, N))  # a fresh trace
  assert rows_matmul._TARGET not in product.lower(x, rows_matmul.pack(w)).as_text()
  # XLA on both layouts: the same path for the same number of rows, one row included
  plain = jax.lax.dot_general(x, w, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  np.testing.assert_array_equal(product(x, rows_matmul.pack(w)), plain)


def test_pack_transposed_is_pack_of_the_transpose():
  _, w = _operands(37, 50, 1)
  np.testing.assert_array_equal(rows_matmul.pack_transposed(w.T), rows_matmul.pack(w))


@pytest.mark.parametrize("tie", [True, False])
def test_generation_with_packed_weights_is_unchanged(tie):
  """Packed layers and head (the kernel where it runs, XLA's product otherwise) against the
  plain per-layer weights: the same prefill logits bit for bit, the same greedy tokens."""
  config = tiny_llama_config(tie_embeddings=tie)
  model = Llama(config, dtype=jnp.bfloat16, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(3))
  plain = Generator(model, stop_at_eos=False)
  plain.layers, plain.packed_head = model.unstacked_layers(), None
  packed = Generator(model, stop_at_eos=False)
  packed.layers, packed.packed_head = model.unstacked_layers(pack_weights=True), model.packed_head()
  assert packed.layers[0]["qkv"].ndim == 4 and plain.layers[0]["qkv"].ndim == 2

  rng = np.random.default_rng(0)
  ids = jnp.asarray(rng.integers(3, config.vocab_size, (5, 9)), jnp.int32)
  mask = jnp.ones_like(ids)
  prefill = jax.jit(lambda layers, head: model.forward(
      ids, attention_mask=mask, cache=model.init_cache(5, 12), cache_index=0, layers=layers,
      packed_head=head)[0])
  np.testing.assert_array_equal(prefill(packed.layers, packed.packed_head),
                                prefill(plain.layers, None))

  prompts = [rng.integers(3, config.vocab_size, n).tolist() for n in (4, 9, 1, 6, 7)]
  sampling = SamplingConfig(max_new_tokens=6)
  assert packed.generate_ids(prompts, sampling=sampling) == \
      plain.generate_ids(prompts, sampling=sampling)
  # scoring labels by likelihood: a prefill, then continuations over the cache (head size 14:
  # XLA's attention in both, so only the products differ, and they are bitwise the same)
  labels = [[5, 6, 7], [8]]
  np.testing.assert_array_equal(continuation_logprobs(packed, prompts, labels),
                                continuation_logprobs(plain, prompts, labels))


def test_generator_packs_only_where_the_kernel_runs():
  model = Llama(tiny_llama_config(), dtype=jnp.float32, rngs=nnx.Rngs(0))
  assert Generator(model).packed_head is None  # float32: the kernel does not apply
  model = Llama(tiny_llama_config(), dtype=jnp.bfloat16, param_dtype=jnp.bfloat16,
                rngs=nnx.Rngs(0))
  assert (Generator(model).packed_head is not None) == cpu_library.kernels_available()


def test_a_failed_build_falls_back_with_one_line(tmp_path, monkeypatch, capsys):
  if not cpu_library.cpu_has_avx512_bf16():
    pytest.skip("this CPU has no AVX512-BF16, so the kernels are never built here")
  monkeypatch.setenv("PERJAX_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  assert cpu_library._registered.__wrapped__() is False
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "could not be built" in err[0] and "XLA's own code runs" in err[0]


def test_a_mistyped_switch_is_a_one_line_error(monkeypatch):
  monkeypatch.setenv("PERJAX_CPU_KERNELS", "off")
  with pytest.raises(ConfigError, match="PERJAX_CPU_KERNELS must be 0 .* or 1, not 'off'"):
    cpu_library._registered.__wrapped__()
