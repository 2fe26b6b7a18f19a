"""A frozen bfloat16 base stored as bits (`models.weight_bits`) computes exactly what the plain
base does, and a Generator over it decodes from the model's own weights with no copy."""
import functools

import jax
import numpy as np
from flax import nnx

from family_configs import tiny_family_config
from perjax.modules.lora import LoRA
from perjax.generation import Generator, SamplingConfig
from perjax.models.llama import Llama
from perjax.models.personal import ModuleSpec, stack_builder
from perjax.models.weight_bits import stored_as_bits, store_frozen_base_as_bits


def _model(family):
  config = tiny_family_config(family)
  specs = [ModuleSpec("lora", None, functools.partial(LoRA, rank=2, targets=("q", "v", "down")))]
  model = Llama(config, personal=stack_builder(specs, {None: 2}), dtype="bfloat16",
                param_dtype="bfloat16", rngs=nnx.Rngs(1))
  b = model.personal.lora.q_b
  b[...] = jax.random.normal(jax.random.key(0), b[...].shape) * 0.3
  return model


def _base_bytes():
  return sum(a.nbytes for a in jax.live_arrays())


def test_bits_give_the_same_logits_and_tokens():
  for family in ("llama", "gemma2"):  # an LM head of its own, and one tied to the embeddings
    model = _model(family)
    ids, groups = np.array([[5, 17, 30, 4], [9, 9, 40, 2]]), np.array([0, 1])
    plain = np.asarray(model(ids, group_ids=groups).astype(np.float32))
    # decoded in the layer scan either way (the per-layer copy rounds bfloat16 otherwise)
    tokens = Generator(model, stop_at_eos=False, share_base=True).generate_ids(
        ids.tolist(), group_ids=groups, sampling=SamplingConfig(max_new_tokens=5))
    assert store_frozen_base_as_bits(model) > 0 and stored_as_bits(model)
    assert model.embed[...].dtype == np.uint16
    assert model.personal.lora.q_a[...].dtype == np.float32  # personal tables stay as they are
    np.testing.assert_array_equal(
        np.asarray(model(ids, group_ids=groups).astype(np.float32)), plain)
    generator = Generator(model, stop_at_eos=False)
    assert generator.layers is None  # bits: decodes in the layer scan from the model's weights
    assert generator.generate_ids(ids.tolist(), group_ids=groups,
                                  sampling=SamplingConfig(max_new_tokens=5)) == tokens, family


def test_a_generator_sharing_the_base_adds_no_weight_copy():
  model = _model("llama")
  weights = sum(x.nbytes for x in jax.tree.leaves(nnx.state(model)))
  before = _base_bytes()
  copying = Generator(model, share_base=False)
  assert _base_bytes() - before >= weights // 2  # the per-layer copy of the base
  del copying
  before = _base_bytes()
  Generator(model, share_base=True)
  assert _base_bytes() == before
