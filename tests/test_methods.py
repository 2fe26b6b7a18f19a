"""Conformance: every registered method carries its taxonomy metadata, refuses impossible
combinations with a ConfigError, and trains and answers on tiny-llama at every granularity it
declares; a prompting method changes some prompt relative to zero_shot."""
import json

import pytest

from experiment_tiny import PREF_SPEC, SPEC, TINY, TINY_PREF, require_dsp_data, task_metrics
from perjax import experiment
from perjax.errors import ConfigError
from perjax.method import Method, compose, register
from perjax.registry import METHODS, MethodInfo, load_plugins
from perjax.taxonomy import Granularity, Technique

load_plugins()
NAMES = METHODS.names()
CASES = [(n, g.value) for n in NAMES for g in METHODS.get(n).info.granularities]


def _options(config):
  return lambda n: config.methods[n].to_dict() if n in config.methods else {}


_RUNS: dict = {}


def run_method(name, granularity, tmp_path_factory):
  """(config, workdir, metrics, prediction rows) of one tiny run, done once per session."""
  if (name, granularity) not in _RUNS:
    method = METHODS.get(name)
    if method.pairwise:  # a pairwise method (DPO) runs on the tiny preference task
      require_dsp_data()
    spec, tiny = (PREF_SPEC, TINY_PREF) if method.pairwise else (SPEC, TINY)
    config = experiment.load_config(spec, {**tiny, "method": name, "granularity": granularity})
    workdir = tmp_path_factory.mktemp(f"{name}-{granularity}")
    metrics = experiment.train_and_evaluate(config, workdir)
    rows = [json.loads(l) for l in (workdir / "predictions.jsonl").read_text().splitlines()]
    _RUNS[name, granularity] = config, workdir, metrics, rows
  return _RUNS[name, granularity]


@pytest.mark.parametrize("name", NAMES)
def test_method_metadata_and_composition(name):
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


@pytest.mark.parametrize("name,granularity", CASES)
def test_method_runs_at_every_granularity(name, granularity, tmp_path_factory):
  method = METHODS.get(name)
  config, workdir, metrics, rows = run_method(name, granularity, tmp_path_factory)
  tiny = TINY_PREF if method.pairwise else TINY
  # beside the task's metrics: the numbers a prompting method reports (also in prompting.json)
  notes = workdir / "prompting.json"
  reported = task_metrics(metrics) - set(json.loads(notes.read_text()) if notes.exists() else {})
  # a preference task also reports the accuracy per persona (DSP: per domain)
  reported = {k.split("/")[0] for k in reported}
  assert reported == ({"preference_accuracy"} if method.pairwise
                      else {"accuracy", "f1", "gold_nll", "gold_ppl"})
  assert len(rows) == tiny["data.max_test"]
  # every row records the messages exactly as sent: the user message and the system message
  assert all(r["prompt"] and "system" in r for r in rows)
  trains = compose(name, granularity, _options(config)).trains
  assert (workdir / "checkpoints").exists() == trains
  if method.info.technique == Technique.PROMPTING and name != "zero_shot":
    base = run_method("zero_shot", granularity, tmp_path_factory)[3]
    assert [r["id"] for r in rows] == [r["id"] for r in base]
    assert any((r["prompt"], r["system"]) != (b["prompt"], b["system"])
               for r, b in zip(rows, base)), f"{name} changes no prompt at {granularity}"


def test_unknown_method_suggests():
  with pytest.raises(ConfigError, match="did you mean 'lora'"):
    compose("lorra", "user", lambda n: {})


@METHODS.temporary()  # the test's method stays in it
def test_unsupported_granularity_and_conflicting_objectives():
  soft_prompt = METHODS.get("soft_prompt")
  register(Method(MethodInfo("only_user_prompt", Technique.EMBEDDING, (Granularity.USER,), "x",
                             "test"), personal=soft_prompt.personal,
                  objective=lambda *a, options: None))
  with pytest.raises(ConfigError, match="does not support granularity 'global'"):
    compose("only_user_prompt", "global", lambda n: {"length": 3})
  # two prefixes are no conflict (they are concatenated); two objectives are
  recipe = compose("soft_prompt+only_user_prompt", "user", lambda n: {"length": 3})
  assert [m.name for m in recipe.modules] == ["soft_prompt", "only_user_prompt"]
  with pytest.raises(ConfigError, match="both define the training objective"):
    compose("dpo+only_user_prompt", "user",
            lambda n: {"length": 3} if n != "dpo" else METHODS.get(n).defaults)
  recipe = compose("rag+lora", "user", lambda n: METHODS.get(n).defaults)  # OPPU composes
  assert recipe.trains and [m.name for m in recipe.modules] == ["lora"]
