"""Conformance: every registered method trains and answers on tiny-llama, carries its taxonomy
metadata, and refuses impossible combinations with a ConfigError."""
import dataclasses
import json

import pytest

from experiment_tiny import PREF_SPEC, SPEC, TINY, TINY_PREF, require_dsp_data
from perjax import experiment
from perjax.errors import ConfigError
from perjax.method import Method, compose, register
from perjax.registry import METHODS, MethodInfo, load_plugins
from perjax.taxonomy import Granularity, Technique

load_plugins()
NAMES = METHODS.names()


def _options(config):
  return lambda n: config[n].to_dict() if n in config else {}


@pytest.mark.parametrize("name", NAMES)
def test_method_conformance(name, tmp_path):
  method = METHODS.get(name)
  info = method.info
  assert isinstance(info, MethodInfo) and info.name == name
  assert isinstance(info.technique, Technique) and info.granularities
  assert all(isinstance(g, Granularity) for g in info.granularities)
  assert info.section and info.reference
  # its slots fit its technique
  if info.technique == Technique.PROMPTING:
    assert method.prompt is not None
  else:
    assert method.personal is not None or method.objective is not None

  config = experiment.load_config(SPEC, {**TINY, "method": name})
  for g in Granularity:  # supported granularities compose; the others are config errors
    if g in info.granularities:
      compose(name, g, _options(config))
    else:
      with pytest.raises(ConfigError, match="does not support granularity"):
        compose(name, g, _options(config))
  with pytest.raises(ConfigError, match="appears twice"):
    compose(f"{name}+{name}", info.granularities[0], _options(config))

  # a pairwise method (DPO) runs on the tiny preference task, every other on the quickstart
  if method.pairwise:
    require_dsp_data()
  spec, tiny, expected = ((PREF_SPEC, TINY_PREF, {"preference_accuracy"}) if method.pairwise
                          else (SPEC, TINY, {"accuracy", "f1"}))
  config = experiment.load_config(spec, {**tiny, "method": name,
                                         "granularity": info.granularities[0].value})
  metrics = experiment.train_and_evaluate(config, tmp_path)
  assert set(metrics) == expected
  preds = [json.loads(l) for l in (tmp_path / "predictions.jsonl").read_text().splitlines()]
  assert len(preds) == tiny["data.max_test"]
  trains = compose(name, info.granularities[0], _options(config)).trains
  assert (tmp_path / "checkpoints").exists() == trains


def test_unknown_method_suggests():
  with pytest.raises(ConfigError, match="did you mean 'lora'"):
    compose("lorra", "user", lambda n: {})


def test_unsupported_granularity_and_conflicting_slots(monkeypatch):
  monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))  # registrations stay local
  register(Method(MethodInfo("only_user_prompt", Technique.EMBEDDING, (Granularity.USER,), "x",
                             "test"), personal=lambda o: {"prompt_len": 2}))
  with pytest.raises(ConfigError, match="does not support granularity 'global'"):
    compose("only_user_prompt", "global", lambda n: {})
  with pytest.raises(ConfigError, match="both set the personal parameter 'prompt_len'"):
    compose("soft_prompt+only_user_prompt", "user", lambda n: {"length": 3})
  recipe = compose("rag+lora", "user", lambda n: METHODS.get(n).defaults)  # OPPU composes
  assert recipe.trains and recipe.personal_config(5).lora_rank == 8
  assert dataclasses.replace(recipe.personal_config(5), groups=1).groups == 1
