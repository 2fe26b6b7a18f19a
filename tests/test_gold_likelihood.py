"""The gold target's likelihood (eval.gold_likelihood): the batched scorer equals log-probs
picked from a plain full forward pass (personal LoRA and soft prompt rows, mixed groups, filler
rows); a run records it per example and reports gold_nll / gold_ppl, which training lowers; the
statistics recompute a corpus-level perplexity per resample, lower being better."""
import json
import math

import jax
import numpy as np
import pytest

from experiment_tiny import SPEC, TINY
from perjax import experiment, stats
from perjax.experiment.encoding import Codec
from perjax.experiment.gold_likelihood import gold_likelihood, gold_metrics
from perjax.generation import Generator
from perjax.models import load
from perjax.prompting import Prompt
from personal_tiny import personal as make_personal, randomize_lora_b


def _reference(model, prompt, target, group) -> float:
  """sum_j log softmax(logits before target token j)[token j], from one unbatched forward."""
  ids = np.array([list(prompt) + list(target)])
  logp = jax.nn.log_softmax(np.asarray(model(ids, group_ids=np.array([group]))), axis=-1)[0]
  return sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(target))


def test_gold_logprob_equals_a_full_forward():
  model, tokenizer = load("tiny-llama", seed=3,
                          personal=make_personal(groups=3, rank=2, prompt_len=2))
  randomize_lora_b(model, seed=11)
  codec = Codec(Generator(model, tokenizer))
  prompts = [Prompt("Which colour?", "Answer briefly."), Prompt("a much longer question " * 6),
             Prompt("hi")]
  targets = ["red", "a longer gold answer", "ok"]
  groups = [2, 0, 1]
  # batch 2: the lengths split the rows, and a short batch carries filler rows
  logprobs, tokens = gold_likelihood(codec, prompts, targets, groups, batch_size=2)
  want = [_reference(model, p, codec.target_ids(t), g)
          for p, t, g in zip(codec.prompt_ids(prompts), targets, groups)]
  np.testing.assert_allclose(logprobs, want, rtol=1e-4, atol=1e-4)
  assert tokens.tolist() == [len(codec.target_ids(t)) for t in targets]  # target + EOS
  assert gold_metrics(logprobs, tokens)["gold_nll"] == pytest.approx(-sum(want) / sum(tokens))


def test_statistics_recompute_a_corpus_perplexity_and_prefer_lower():
  good = {"a": (-2.0, 2), "b": (-9.0, 3)}
  bad = {"a": (-6.0, 2), "b": (-12.0, 3)}
  golds = {"a": "x", "b": "y"}
  cols = stats.seed_columns([good], golds, ["gold_nll", "gold_ppl"], n=50)
  assert cols["gold_nll_mean"] == pytest.approx(11.0 / 5)  # token-weighted, not 1.0 + 3.0 / 2
  assert cols["gold_ppl_mean"] == pytest.approx(math.exp(11.0 / 5))
  assert stats.paired_bootstrap(good, bad, golds, "gold_ppl", n=50) < 0.05


@pytest.mark.slow
def test_a_run_records_gold_likelihood_and_training_lowers_it(tmp_path):
  runs = {}
  for method, extra in (("zero_shot", {}), ("lora", {"train.steps": 8, "train.lr": 0.03})):
    config = experiment.load_config(SPEC, {**TINY, "method": method, "granularity": "global",
                                           **extra})
    metrics = experiment.train_and_evaluate(config, tmp_path / method)
    records = [json.loads(l) for l in (tmp_path / method / "predictions.jsonl").open()]
    nll = -sum(r["gold_logprob"] for r in records) / sum(r["gold_tokens"] for r in records)
    assert metrics["gold_nll"] == pytest.approx(nll)
    assert metrics["gold_ppl"] == pytest.approx(math.exp(nll))
    runs[method] = metrics
    if method == "zero_shot":  # the records against a forward pass of the same base model
      from perjax.experiment.loading import load_model
      model, tokenizer = load_model(config, None)
      codec = Codec(Generator(model, tokenizer))
      for r in records[:2]:
        [prompt] = codec.prompt_ids([Prompt(r["prompt"], r["system"])])
        target = codec.target_ids(r["target"])
        assert r["gold_tokens"] == len(target)
        assert r["gold_logprob"] == pytest.approx(_reference(model, prompt, target, 0),
                                                  rel=1e-4, abs=1e-4)
  assert runs["lora"]["gold_ppl"] < runs["zero_shot"]["gold_ppl"]


def test_gold_likelihood_can_be_switched_off(tmp_path):
  config = experiment.load_config(SPEC, {**TINY, "method": "zero_shot",
                                         "eval.gold_likelihood": False})
  metrics = experiment.train_and_evaluate(config, tmp_path)
  assert "gold_nll" not in metrics
  assert "gold_logprob" not in (tmp_path / "predictions.jsonl").read_text()
