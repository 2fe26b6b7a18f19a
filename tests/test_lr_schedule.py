"""train.schedule / train.warmup: the learning rate over a stage, per group's own update count."""
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from perjax.training.optim import learning_rate, per_group


def test_constant_without_warmup_is_the_plain_float():
  assert learning_rate(0.01) == 0.01
  assert learning_rate(0.01, "constant", 50, 0) == 0.01


def test_warmup_then_decay_values():
  cosine = learning_rate(1.0, "cosine", steps=10, warmup=2)
  assert [float(cosine(i)) for i in (0, 1, 2)] == pytest.approx([0.0, 0.5, 1.0])
  # after warm-up, a cosine over the remaining 8 updates: halfway at update 2 + 4
  assert float(cosine(6)) == pytest.approx(0.5)
  assert float(cosine(10)) == pytest.approx(0.0, abs=1e-7)
  linear = learning_rate(2.0, "linear", steps=4)
  assert [float(linear(i)) for i in range(5)] == pytest.approx([2.0, 1.5, 1.0, 0.5, 0.0])
  with pytest.raises(ValueError, match="unknown schedule 'step'"):
    learning_rate(1.0, "step", 4)


def test_each_group_decays_over_its_own_updates():
  """Group 1 is absent from the first two steps, so its first update uses the schedule's first
  rate, not the third: the trajectory it would follow alone."""
  tx = per_group(optax.sgd(learning_rate(1.0, "linear", steps=4)))
  params = jnp.zeros((2, 3))
  state = tx.init(params)
  grads = jnp.ones((2, 3))
  moved = []
  for present in ([True, False], [True, False], [True, True]):
    updates, state = tx.update(grads, state, params, present=jnp.array(present))
    moved.append(np.asarray(-updates[:, 0]))
  assert moved[0].tolist() == pytest.approx([1.0, 0.0])
  assert moved[1].tolist() == pytest.approx([0.75, 0.0])
  assert moved[2].tolist() == pytest.approx([0.5, 1.0])  # group 1: its first update, full rate


def _losses_and_rates(workdir):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  events = EventAccumulator(str(workdir / "tensorboard"))
  events.Reload()
  return ([e.value for e in events.Scalars("train/loss")],
          [e.value for e in events.Scalars("train/learning_rate")])


def test_a_run_trains_with_its_schedule(tmp_path):
  """`train.schedule` reaches the optimizer, not only the log: a linear decay changes the losses
  after the first update against a constant rate, from the same start."""
  from experiment_tiny import SPEC, cli_overrides
  from perjax.cli import main
  runs = {}
  for schedule in ("constant", "linear"):
    workdir = tmp_path / schedule
    assert main(["run", SPEC + ",method=lora,granularity=global", "--workdir", str(workdir),
                 *cli_overrides({"train.steps": 4, "train.lr": 0.05,
                                 "train.schedule": schedule})]) == 0
    runs[schedule] = _losses_and_rates(workdir)
  (constant_loss, constant_lr), (linear_loss, linear_lr) = runs["constant"], runs["linear"]
  assert constant_lr == pytest.approx([0.05] * 4)
  assert linear_lr == pytest.approx([0.05, 0.0375, 0.025, 0.0125])  # one group: count = step
  assert linear_loss[:2] == pytest.approx(constant_loss[:2])  # the same first update
  assert linear_loss[2:] != pytest.approx(constant_loss[2:], abs=1e-6)
