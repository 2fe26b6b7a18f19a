"""The train step compiles once and donates its state; mixed-group generation."""
import jax
import jax.numpy as jnp
import numpy as np

from engine_tiny import batch, examples, tiny_model, trainer, OPTIMIZERS
from perjax.generation import Generator, SamplingConfig
from perjax.training import objectives


def test_train_step_compiles_once_and_donates_state():
  traces = []

  def counted(model, micro, rng, num_groups):
    traces.append(1)  # runs only while tracing
    return objectives.lm_loss(model, micro, rng, num_groups)

  from perjax.training import step as steplib
  graphdef, state, ptx, btx = steplib.init_train_state(tiny_model(), OPTIMIZERS["adamw"]())
  step = steplib.make_train_step(graphdef, ptx, btx, counted, 3, donate=True)
  for i in range(4):  # different groups present in each step, same shapes
    old = state
    state, metrics = step(state, batch(examples({i % 3: 2, (i + 1) % 3: 1}, seed=i)),
                          jax.random.key(i))
    assert np.isfinite(float(metrics["objective"]))
    assert all(x.is_deleted() for x in jax.tree.leaves(old.personal))
    assert all(x.is_deleted() for x in jax.tree.leaves(old.opt_personal))
  assert step._cache_size() == 1
  assert len(traces) == 1  # the micro-batch scan traces the objective once
  assert int(state.step) == 4


def test_mixed_group_generation_equals_each_row_alone():
  model = tiny_model(groups=3, rank=3, prompt_len=3, targets=("q", "v", "down"), b_scale=0.3)
  gen = Generator(model)
  prompts = [[5, 17, 30, 4], [9, 9, 40], [22, 3, 8, 60, 11, 12], [5, 17, 30, 4]]
  groups = [2, 0, 1, 1]
  sampling = SamplingConfig(max_new_tokens=7)
  mixed = gen.generate_ids(prompts, group_ids=groups, sampling=sampling)
  alone = [gen.generate_ids([p], group_ids=[g], sampling=sampling)[0]
           for p, g in zip(prompts, groups)]
  assert mixed == alone
  assert mixed[0] != mixed[3]  # same prompt, different groups: the personalization acts


def test_token_nll_is_minus_log_softmax_of_the_next_token():
  rng = np.random.default_rng(3)
  logits = rng.standard_normal((2, 7, 29)).astype(np.float32) * 4
  ids = rng.integers(0, 29, (2, 7))
  logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
  want = -np.take_along_axis(np.asarray(logp), ids[:, 1:, None], axis=-1)[..., 0]
  np.testing.assert_allclose(objectives.token_nll(logits, ids), want, rtol=1e-5, atol=1e-6)


def test_token_nll_gradient_equals_autodiff_of_log_softmax():
  rng = np.random.default_rng(4)
  logits = jnp.asarray(rng.standard_normal((3, 6, 31)).astype(np.float32) * 3)
  ids = jnp.asarray(rng.integers(0, 31, (3, 6)))
  weights = jnp.asarray(rng.uniform(size=(3, 5)).astype(np.float32))

  def reference(x):
    logp = jax.nn.log_softmax(x[:, :-1], axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0] * weights)

  got = jax.grad(lambda x: jnp.sum(objectives.token_nll(x, ids) * weights))(logits)
  want = jax.grad(reference)(logits)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(got)[:, -1] == 0)  # the last position predicts nothing
  half = jax.grad(lambda x: jnp.sum(objectives.token_nll(x, ids) * weights))(
      logits.astype(jnp.bfloat16))  # bf16 logits are widened first; the gradient comes back bf16
  assert half.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(half, np.float32), want, atol=0.02)
