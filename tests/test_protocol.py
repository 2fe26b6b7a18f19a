"""Training protocols (`train.on`): every evaluated user trained on their own history, the
OPPU stages (a global task module, then the users' own rows), and what each row records."""
import json
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

from perjax import experiment
from perjax.data import load_dataset
from perjax.experiment import protocol
from perjax.method import compose
from perjax.metrics import evaluate_lamp
from perjax.registry import METHODS
from perjax.training import batching, objectives, step as steplib

LAMP = str(Path(__file__).resolve().parents[1] / "experiments" / "lamp.py")
TINY_LAMP = {"train.steps": 2, "train.batch_size": 2, "train.seq_len": 64,
             "train.checkpoint_every": 2, "eval.max_new_tokens": 2, "methods.lora.rank": 2,
             "methods.rag.k": 2, "train.on": "own_history"}


@pytest.mark.parametrize("method", ["lora", "rag+lora@global+lora"])
def test_every_evaluated_user_trains_on_own_history(method, shared_data, tmp_path):
  # the default data: lamp_tiny's LaMP-2 sample, whose dev users never appear in train
  config = experiment.load_config(f"{LAMP}:smoke,model=tiny-llama,method={method}", TINY_LAMP)
  metrics = experiment.train_and_evaluate(config, tmp_path)
  rows = [json.loads(l) for l in (tmp_path / "predictions.jsonl").read_text().splitlines()]
  assert rows and all(r["group_train_examples"] >= 1 for r in rows)
  # lamp.py's predict.mode=auto: LaMP-2 has a label set, so each answer is its likeliest label
  assert all(max(r["label_probs"], key=r["label_probs"].get) == r["prediction"] for r in rows)
  assert (tmp_path / "task_stage").exists() == ("@global" in method)
  # the LaMP-format answers score as the run did, against the official golds file
  lamp = json.loads((tmp_path / "predictions.lamp.json").read_text())
  golds = json.loads((shared_data / "lamp_tiny" / "LaMP_22_dev_outputs.json").read_text())
  assert lamp["task"] == golds["task"]
  gold = {g["id"]: g["output"] for g in golds["golds"] if g["id"] in {r["id"] for r in rows}}
  scored = evaluate_lamp(lamp["task"], gold, {p["id"]: p["output"] for p in lamp["golds"]})
  assert scored == pytest.approx({k: metrics[k] for k in scored})  # beside gold_nll, cost
  per_user = (tmp_path / "per_user.csv").read_text().splitlines()
  assert per_user[0].startswith("user_id,examples") and len(per_user) == 1 + len(
      {r["user_id"] for r in rows})


def test_own_history_examples_read_only_the_users_own_earlier_items():
  task = load_dataset("synthetic", split="time", seed=0, n_personas=2, users_per_persona=2,
                      examples_per_user=6, profile_size=5)
  evaluated = task.splits["test"]
  own = protocol.own_history_examples(task, evaluated)
  assert own
  by_user = {}
  for e in evaluated:
    by_user.setdefault(e.user_id, []).append(e)
  for ex in own:
    mine = by_user[ex.user_id]
    allowed = set.intersection(*({it.id for it in e.profile} for e in mine))
    item_id = ex.id.split("#own#")[1]
    assert item_id in allowed  # in every one of the user's evaluated profiles: only their own
    others = {it.id for u, es in by_user.items() if u != ex.user_id for e in es
              for it in e.profile}
    assert item_id not in others - allowed
    assert all(ex.target != e.target or ex.input != e.input for e in mine)  # never a target
    assert {it.id for it in ex.profile} < allowed  # a pair's own profile: earlier items only


def test_oppu_stages_and_frozen_modules():
  options = lambda n: {**METHODS.get(n).defaults, "rank": 2}
  recipe = compose("lora@global+lora", "user", options)
  train, fit = ["t"], ["o"]
  assert protocol.stages("train_split", recipe, train, train) == [protocol.Stage(train, None)]
  first, second = protocol.stages("own_history", recipe, train, fit)
  assert (first.examples, first.trainable, first.folder) == (train, ("lora_at_global",),
                                                             "task_stage")
  assert (second.examples, second.trainable) == (fit, ("lora",))
  # a frozen module keeps its parameters and optimizer state through a step
  from test_personal_plugins import _model
  model = _model(recipe.modules, groups=2)
  graphdef, state, ptx, btx = steplib.init_train_state(model, optax.sgd(0.5),
                                                       trainable=("lora",))
  step = steplib.make_train_step(graphdef, ptx, btx, objectives.lm_loss, 2, donate=False)
  rows = [([4, 8, 15, 16, 23, 42], [0, 0, 1, 1, 1, 1], 0)]
  new, _ = step(state, batching.make_batch(rows, 6, pad_id=0), jax.random.key(0))
  old_p, new_p = state.personal["personal"], new.personal["personal"]
  for a, b in zip(jax.tree.leaves(old_p["lora_at_global"]), jax.tree.leaves(new_p["lora_at_global"])):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(old_p["lora"]["q_b"][...], new_p["lora"]["q_b"][...])


def test_unknown_protocol_is_a_config_error():
  from perjax.errors import ConfigError
  with pytest.raises(ConfigError, match="train.on must be one of"):
    protocol.training_examples("own", None, [], [])


def test_task_stage_runs_its_own_step_count():
  from perjax.experiment.phases import stage_settings
  config = experiment.load_config(f"{LAMP}:smoke,model=tiny-llama,method=rag+lora@global+lora",
                                  {**TINY_LAMP, "train.task_steps": 5})
  task, own = protocol.Stage([], ("lora@global",), "task_stage"), protocol.Stage([], ("lora",))
  assert (stage_settings(config, task).steps, stage_settings(config, own).steps) == (5, 2)
  config.train.task_steps = 0  # 0: the task stage runs `train.steps` too
  assert stage_settings(config, task).steps == 2
