"""train.max_passes: the pass counts the budget module computes are those of the loop's own
sampler, a capped stage never draws more than E passes of its examples, and a run records its
steps, examples seen and each answering row's passes."""
import json

import numpy as np
import pytest

from experiment_tiny import SPEC, TINY
from perjax import experiment
from perjax.data import load_dataset
from perjax.training.loop import step_examples
from perjax.training import budget


@pytest.mark.parametrize("n,per_step,steps,seed", [(7, 3, 5, 0), (12, 4, 3, 1), (5, 8, 4, 2),
                                                   (10, 2, 5, 3)])
def test_draw_counts_are_the_samplers(n, per_step, steps, seed):
  drawn = np.zeros(n, np.int64)
  for s in range(steps):  # the training loop's own draws, one step at a time
    np.add.at(drawn, step_examples(n, s, per_step, seed), 1)
  np.testing.assert_array_equal(budget.draw_counts(n, steps, per_step, seed), drawn)


def test_a_whole_budget_caps_every_row_and_example():
  groups = np.array([0] * 3 + [1] * 10 + [2] * 1)  # rows of very different sizes
  for passes in (1, 2, 3):
    steps = budget.capped_steps(1000, passes, len(groups), per_step=4)
    assert steps == passes * len(groups) // 4
    counts = budget.draw_counts(len(groups), steps, 4, seed=5)
    assert counts.max() <= passes
    assert budget.row_passes(groups, counts, 4).max() <= passes
  assert budget.capped_steps(30, 0.0, 14, 4) == 30  # 0: no budget
  assert budget.capped_steps(30, 0.1, 14, 4) == 1  # at least one step
  assert budget.row_passes(groups, np.ones(14), 4).tolist() == [1.0, 1.0, 1.0, 0.0]
  assert budget.capped_warmup(10, 100, 20) == 2 and budget.capped_warmup(3, 10, 10) == 3


def test_a_run_records_its_budget(tmp_path):
  config = experiment.load_config(SPEC, {**TINY, "method": "lora", "train.steps": 50,
                                         "train.max_passes": 2.0})
  metrics = experiment.train_and_evaluate(config, tmp_path)
  records = [json.loads(l) for l in (tmp_path / "predictions.jsonl").open()]
  n = len(load_dataset(config.data.name, **config.data.params.to_dict()).splits["train"])
  per_step = TINY["train.batch_size"]
  assert metrics["train_steps"] == 2 * n // per_step < 50
  assert metrics["train_examples_seen"] == metrics["train_steps"] * per_step == 2 * n
  # two whole epochs: every row saw its own examples exactly twice
  assert records and all(r["group_train_passes"] == 2.0 for r in records)
  assert metrics["wall_seconds"] > 0
