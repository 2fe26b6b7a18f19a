"""train.weight_decay and train.grad_clip reach the optimizer: through the training loop each
changes the trained parameters, and at their defaults (0: off) a run trains exactly as the plain
optax optimizer did before they existed."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from engine_tiny import batch, examples, personal_arrays, tiny_model, trainer
from perjax.errors import ConfigError
from perjax.experiment import config as cfg
from perjax.training.settings import TrainSettings
from perjax.training.loop import fit
from perjax.training import objectives
from perjax.training.optim import make_optimizer, per_group
from perjax.training.step import split_model

STEPS, GROUPS, LR = 3, 3, 0.05
BATCH = batch(examples({0: 2, 1: 2, 2: 2}))


def _settings(**train) -> TrainSettings:
  """The settings a run with `--config.train.KEY=VALUE` overrides trains with."""
  config = cfg.defaults()
  for key, value in {"lr": LR, **train}.items():
    cfg.override(config, f"train.{key}", value)
  return dataclasses.replace(TrainSettings.from_config(config), steps=STEPS,
                             checkpoint_every=STEPS)


def _fit(workdir, **train) -> dict:
  model = fit(tiny_model(b_scale=0.5), objectives.lm_loss, lambda s: BATCH, GROUPS,
              _settings(**train), workdir)
  personal = split_model(model)[1]
  return {"/".join(map(str, p)): np.asarray(v) for p, v in nnx.to_flat_state(personal)}


def _changed(a: dict, b: dict) -> bool:
  assert a.keys() == b.keys()
  return any(not np.array_equal(a[k], b[k]) for k in a)


def test_the_defaults_train_as_the_plain_optimizer(tmp_path):
  trained = _fit(tmp_path / "run")  # train.optimizer adam, weight_decay 0, grad_clip 0
  _, state, step = trainer(tiny_model(b_scale=0.5), optax.adam(LR))
  for s in range(STEPS):  # the training loop's step keys
    state, _ = step(state, BATCH, jax.random.fold_in(jax.random.key(0), s))
  plain = personal_arrays(state)
  assert trained.keys() == plain.keys()
  for k in plain:
    np.testing.assert_array_equal(trained[k], plain[k], err_msg=k)


@pytest.mark.parametrize("optimizer,setting", [
    ("adamw", {"weight_decay": 0.5}), ("sgd", {"weight_decay": 0.5}),
    ("sgd", {"grad_clip": 1e-3})])
def test_each_setting_changes_the_trained_parameters(tmp_path, optimizer, setting):
  default = _fit(tmp_path / "default", optimizer=optimizer)
  assert _changed(default, _fit(tmp_path / "set", optimizer=optimizer, **setting))


def test_sgd_weight_decay_is_the_l2_step():
  tx = make_optimizer("sgd", 0.1, weight_decay=0.5)
  params, grads = jnp.array([2.0, -4.0]), jnp.array([1.0, 1.0])
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates, -0.1 * (grads + 0.5 * params))


def test_each_group_is_clipped_to_its_own_norm():
  """Group 0's gradient (norm 5) is clipped to norm 1; group 1's (norm 0.5) is left as it is,
  so a group's update does not depend on the others in its batch."""
  tx = per_group(make_optimizer("sgd", 1.0, grad_clip=1.0))
  params = jnp.zeros((2, 2))
  updates, _ = tx.update(jnp.array([[3.0, 4.0], [0.3, 0.4]]), tx.init(params), params,
                         present=jnp.array([True, True]))
  np.testing.assert_allclose(updates, [[-0.6, -0.8], [-0.3, -0.4]], rtol=1e-6)


def test_adam_refuses_weight_decay_rather_than_ignore_it():
  with pytest.raises(ConfigError, match="optimizer 'adam' takes no weight_decay .*use adamw"):
    make_optimizer("adam", 1e-3, weight_decay=0.01)
