"""Label likelihood scoring on tiny-llama: the cached, batched scorer equals log-probs summed from
a plain full forward (with personal LoRA and soft prompts, mixed groups, filler rows), compiles
once per bucket, and ranks labels end to end in a run."""
import json

import jax
import numpy as np
import pytest

from experiment_tiny import SPEC, TINY, task_metrics
from perjax import experiment, scoring
from perjax.data import load_dataset
from perjax.errors import ConfigError
from perjax.generation import Generator
from perjax.models import load
from personal_tiny import personal as make_personal, randomize_lora_b


@pytest.fixture(scope="module")
def personal_gen():
  model, tokenizer = load("tiny-llama", seed=7,
                          personal=make_personal(groups=3, rank=2, prompt_len=2))
  randomize_lora_b(model, seed=10)
  return model, Generator(model, tokenizer)


def _reference(model, prompt, cont, group):
  ids = np.array([list(prompt) + list(cont)])
  logp = jax.nn.log_softmax(np.asarray(model(ids, group_ids=np.array([group]))), axis=-1)[0]
  return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(cont))


def test_scores_equal_full_forward_log_probs(personal_gen):
  model, gen = personal_gen
  prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [40], [20, 21, 22, 23]]
  conts = [[3], [44, 45, 46], [50, 51]]
  groups = [0, 2, 1, 2]
  # batch 3: the second batch holds one prompt and two filler rows
  got = scoring.continuation_logprobs(gen, prompts, conts, group_ids=groups, batch_size=3)
  want = [[_reference(model, p, c, g) for c in conts] for p, g in zip(prompts, groups)]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_same_bucket_does_not_recompile(personal_gen):
  _, gen = personal_gen
  conts = [[3], [4, 5]]
  scoring.continuation_logprobs(gen, [[1, 2, 3], [4, 5]], conts, batch_size=2)
  before = scoring._score._cache_size()
  scoring.continuation_logprobs(gen, [[7] * 20, [8] * 31, [9]], conts, batch_size=2)
  assert scoring._score._cache_size() == before


def test_label_likelihood_run_predicts_labels(tmp_path):
  config = experiment.load_config(SPEC, {**TINY, "method": "lora",
                                         "predict.mode": "label_likelihood"})
  metrics = experiment.train_and_evaluate(config, tmp_path)
  assert task_metrics(metrics) == {"accuracy", "f1", "gold_nll", "gold_ppl"}
  preds = [json.loads(l) for l in (tmp_path / "predictions.jsonl").read_text().splitlines()]
  labels = set(load_dataset(config.data.name, **config.data.params.to_dict()).labels)
  assert len(preds) == TINY["data.max_test"]
  assert all(p["prediction"] in labels and p["output"] == p["prediction"] for p in preds)
  # each row records its label distribution, whose most likely label is the prediction
  for p in preds:
    probs = p["label_probs"]
    assert set(probs) == labels and sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert max(probs, key=probs.get) == p["prediction"]


def test_unknown_mode_is_a_config_error(tmp_path):
  config = experiment.load_config(SPEC, {**TINY, "predict.mode": "vote"})
  with pytest.raises(ConfigError, match="predict.mode 'vote'"):
    experiment.train_and_evaluate(config, tmp_path)
