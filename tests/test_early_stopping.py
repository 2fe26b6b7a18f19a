"""Early stopping by held-out loss (train.early_stop_*): the loop stops after `patience`
evaluations without improvement and keeps the best step's parameters; a run interrupted at any
point (mid-stage, or between a checkpoint and its record) resumes to exactly the parameters and
record of an uninterrupted one; and the task stage of an OPPU run records what it kept."""
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import optax
import pytest
from flax import nnx

from engine_tiny import batch, examples, tiny_model
from experiment_tiny import dies_after
from perjax import experiment
from perjax.training import loop as train_module
from perjax.training.settings import TrainSettings
from perjax.training import early_stopping, objectives
from perjax.training.early_stopping import EarlyStop, holdout
from perjax.training.step import split_model

GROUPS = 3
BATCH = batch(examples({0: 2, 1: 2, 2: 2}))
# the held-out loss the loop sees at each evaluation step: best at 4, no better at 6 and 8
SCRIPT = {2: 5.0, 4: 4.0, 6: 4.5, 8: 4.2, 10: 3.0, 12: 2.0}
SETTINGS = TrainSettings(steps=12, batch_size=6, seq_len=11, lr=0.05, checkpoint_every=3)
STOP = EarlyStop(fraction=0.2, every=2, patience=2)


@pytest.fixture
def scripted_loss(monkeypatch):
  """The held-out loss as a function of the step only, so the test says when to stop."""
  monkeypatch.setattr(train_module, "held_out_loss",
                      lambda *a: lambda state: SCRIPT[int(state.step)])


def _params(model) -> dict:
  return {"/".join(map(str, p)): np.asarray(v)
          for p, v in nnx.to_flat_state(split_model(model)[1])}


def _fit(workdir, settings=SETTINGS, early_stop=STOP):
  return _params(train_module.fit(tiny_model(b_scale=0.5), objectives.lm_loss, lambda s: BATCH,
                                  GROUPS, settings, workdir, early_stop=early_stop,
                                  dev_batches=[BATCH]))


def _same(a: dict, b: dict) -> None:
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)



def test_stops_after_patience_and_keeps_the_best_step(tmp_path, scripted_loss):
  kept = _fit(tmp_path / "es")
  record = early_stopping.read_record(tmp_path / "es")
  assert record["history"] == [[2, 5.0], [4, 4.0], [6, 4.5], [8, 4.2]]
  assert record["best_step"] == 4 and record["stopped"]
  # the parameters after step 4 of the same training without early stopping
  _same(kept, _fit(tmp_path / "four", dataclasses.replace(SETTINGS, steps=4), None))


def test_an_interrupted_run_resumes_to_the_same_end(tmp_path, monkeypatch, scripted_loss):
  reference = _fit(tmp_path / "ref")
  real = train_module.make_train_step
  monkeypatch.setattr(train_module, "make_train_step", dies_after(7, real))
  with pytest.raises(KeyboardInterrupt):  # checkpoints at 2, 3, 4, 6: the record holds 2..6
    _fit(tmp_path / "cut")
  monkeypatch.setattr(train_module, "make_train_step", real)
  _same(reference, _fit(tmp_path / "cut"))
  assert early_stopping.read_record(tmp_path / "cut") == \
      early_stopping.read_record(tmp_path / "ref")


def test_a_record_behind_its_checkpoint_is_caught_up(tmp_path, scripted_loss):
  """Killed after the step-8 checkpoint was saved but before the record said so."""
  reference = _fit(tmp_path / "ref")
  shutil.copytree(tmp_path / "ref", tmp_path / "behind")
  path = tmp_path / "behind" / early_stopping.RECORD_FILE
  record = json.loads(path.read_text())
  path.write_text(json.dumps({**record, "history": record["history"][:-1], "stopped": False}))
  _same(reference, _fit(tmp_path / "behind"))
  assert early_stopping.read_record(tmp_path / "behind") == record


def test_holdout_is_seeded_and_leaves_training_examples():
  fit, dev = holdout(20, 0.1, seed=3)
  assert len(dev) == 2 and len(fit) == 18 and not set(fit) & set(dev)
  assert np.array_equal(dev, holdout(20, 0.1, seed=3)[1])
  assert not np.array_equal(dev, holdout(20, 0.1, seed=4)[1])
  assert len(holdout(20, 0.0, seed=3)[1]) == 0 and len(holdout(2, 0.9, seed=0)[0]) == 1


@pytest.mark.slow
def test_the_task_stage_of_an_oppu_run_stops_by_its_held_out_loss(shared_data, tmp_path):
  lamp = str(Path(__file__).resolve().parents[1] / "experiments" / "lamp.py")
  config = experiment.load_config(
      f"{lamp}:smoke,model=tiny-llama,method=rag+lora@global+lora",
      {"train.steps": 2, "train.task_steps": 6, "train.batch_size": 2, "train.seq_len": 64,
       "train.checkpoint_every": 6, "eval.max_new_tokens": 2, "methods.lora.rank": 2,
       "methods.rag.k": 2, "train.on": "own_history", "train.early_stop_fraction": 0.3,
       "train.early_stop_every": 2, "train.early_stop_patience": 1})
  metrics = experiment.train_and_evaluate(config, tmp_path)
  kept = metrics["early_stopping"]["task_stage"]
  record = early_stopping.read_record(tmp_path / "task_stage")
  assert kept == {"kept_step": record["best_step"], "held_out_losses": record["history"]}
  steps = [s for s, _ in record["history"]]
  assert steps == list(range(2, metrics["train_steps/task_stage"] + 1, 2))
  assert all(np.isfinite(l) for _, l in record["history"])
  assert metrics["train_steps"] == 2  # the users' own stage: no early stopping
  assert not (tmp_path / early_stopping.RECORD_FILE).exists()


def test_which_stages_stop_early():
  from perjax.experiment import config as cfg
  from perjax.experiment.cost import early_stop_of
  from perjax.experiment.protocol import Stage
  task, own = Stage([], ("lora@global",), "task_stage"), Stage([], ("lora",))
  config = cfg.defaults()
  assert early_stop_of(config, task) is None  # fraction 0: off
  config.train.early_stop_fraction = 0.1
  assert early_stop_of(config, task) == EarlyStop(0.1, 10, 3)
  assert early_stop_of(config, own) is None  # train_split run, task_stage only
  config.train.early_stop_stages = "train_split"
  assert early_stop_of(config, own) == EarlyStop(0.1, 10, 3)
  config.train.on = "own_history"  # the users' own histories are never held out
  assert early_stop_of(config, own) is None
