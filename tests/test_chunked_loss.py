"""The chunked LM loss and layer rematerialisation change memory, not values: the loss and the
personal gradients equal those of the plain path (whole logits, activations kept)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from engine_tiny import batch, examples, tiny_model
from perjax.models.llama import Llama, tiny_llama_config
from personal_tiny import personal
from perjax.training import objectives, step as steplib


def _loss_and_grads(model, rows, *, loss_chunk=0, remat=False):
  model.loss_chunk, model.remat_layers = loss_chunk, remat
  graphdef, personal, base, rest = steplib.split_model(model)

  def loss(personal):
    m = nnx.merge(graphdef, personal, base, rest)
    return objectives.lm_loss(m, rows, None, 3)[0]

  value, grads = jax.jit(jax.value_and_grad(loss))(personal)
  return float(value), [np.asarray(g) for g in jax.tree.leaves(grads)]


def _close(got, want):
  # float32 sums in another order: relative to the gradient's scale, not to each element
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.fixture(scope="module")
def setup():
  model = tiny_model(groups=3, b_scale=0.3)
  rows = jax.tree.map(lambda a: a[0], batch(examples({0: 2, 1: 3, 2: 1}), rows=6))
  return model, rows


@pytest.mark.parametrize("chunk", [7, 1000])  # 7 leaves a ragged last chunk of 66 rows
def test_chunked_loss_equals_plain(setup, chunk):
  model, rows = setup
  plain, plain_grads = _loss_and_grads(model, rows)
  chunked, chunked_grads = _loss_and_grads(model, rows, loss_chunk=chunk)
  assert plain > 1.0  # a real loss, not an empty mask
  np.testing.assert_allclose(chunked, plain, rtol=1e-6)
  for a, b in zip(chunked_grads, plain_grads):
    assert np.abs(b).max() > 0
    _close(a, b)


def test_chunked_nll_matches_log_softmax(setup):
  """Against an independent reference: -log_softmax of the model's own logits."""
  model, rows = setup
  model.loss_chunk, model.remat_layers = 0, False
  ids = jnp.asarray(rows["input_ids"])
  logits = model(ids, group_ids=rows["group_ids"], attention_mask=rows["attention_mask"])
  expected = -jnp.take_along_axis(jax.nn.log_softmax(logits[:, :-1], axis=-1),
                                  ids[:, 1:, None], axis=-1)[..., 0]
  hidden, _ = model.forward(ids, group_ids=rows["group_ids"],
                            attention_mask=rows["attention_mask"], hidden_only=True)
  got = objectives.chunked_token_nll(model, hidden, ids, chunk=5)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unroll", [False, True])
def test_remat_keeps_loss_and_grads(setup, unroll):
  model, rows = setup
  model.unroll_layers = unroll
  try:
    plain, plain_grads = _loss_and_grads(model, rows)
    remat, remat_grads = _loss_and_grads(model, rows, remat=True)
    both, both_grads = _loss_and_grads(model, rows, remat=True, loss_chunk=16)
  finally:
    model.unroll_layers = False
  np.testing.assert_allclose(remat, plain, rtol=1e-6)
  np.testing.assert_allclose(both, plain, rtol=1e-6)
  for a, b, c in zip(remat_grads, both_grads, plain_grads):
    _close(a, c)
    _close(b, c)


def test_remat_recomputes_in_the_backward_pass(setup):
  """The option really changes the program: the gradient's jaxpr holds one more remat."""
  model, rows = setup
  graphdef, personal, base, rest = steplib.split_model(model)

  def jaxpr_text(remat):
    model.remat_layers = remat
    graphdef_r = nnx.graphdef(model)
    loss = lambda p: objectives.lm_loss(nnx.merge(graphdef_r, p, base, rest), rows, None, 3)[0]
    return str(jax.make_jaxpr(jax.grad(loss))(personal))

  try:
    # the layer scan's body gains a remat (the tree has others, e.g. from jnp internals)
    assert jaxpr_text(True).count("remat") > jaxpr_text(False).count("remat")
  finally:
    model.remat_layers = False


def _step_scratch_bytes(model, rows) -> int:
  """XLA's scratch memory of the compiled training step (nothing is run)."""
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.sgd(0.1))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 2)
  compiled = step.lower(state, rows, jax.random.key(0)).compile()
  return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("unroll", [False, True])
def test_remat_lowers_the_compiled_steps_memory(unroll):
  """In the scan and in the unrolled loop (where XLA's concurrency-optimised CPU scheduler used
  to undo it: perjax turns that scheduler off)."""
  config = tiny_llama_config(num_layers=8, hidden_size=30, intermediate_size=190, num_heads=3,
                             num_kv_heads=1, head_dim=10)
  model = Llama(config, personal=personal(groups=2, rank=3), unroll_layers=unroll,
                rngs=nnx.Rngs(0))
  ids = np.ones((1, 16, 96), np.int32)
  rows = {"input_ids": ids, "loss_mask": ids, "attention_mask": ids,
          "group_ids": np.repeat(np.arange(2, dtype=np.int32), 8)[None]}
  model.remat_layers = False
  kept = _step_scratch_bytes(model, rows)
  model.remat_layers = True
  recomputed = _step_scratch_bytes(model, rows)
  assert recomputed < 0.5 * kept, (recomputed, kept)
