"""What a run gives prompting methods that let the model write part of the prompt (profile
summaries, rewritten inputs): generation, token counting, dev examples and a dev score.

They all use the model as loaded, before any training, with every personal module off, so a
summary or a rewrite does not depend on which parameter method it is composed with (and is the
same text in the evaluation and the training stage, so the on-disk caches serve both).
"""
import dataclasses
import functools
from typing import Callable, Sequence

import numpy as np

from perjax.experiment import predict
from perjax.experiment.settings import EvalSettings
from perjax.metrics import compute_metrics
from perjax.prompting import Prompt
from perjax.stats import higher_is_better


def model_key(config) -> str:
  """What identifies the model's outputs in a cache key: its name and dtype, and the seed for a
  tiny model (its weights are drawn from the seed)."""
  from perjax.models.decoder_loading import TINY_PREFIX
  seed = f"@seed{config.seed}" if config.model.startswith(TINY_PREFIX) else ""
  return f"{config.model}{seed}/{config.dtype}"


@dataclasses.dataclass
class PromptStage:
  """The context fields `perjax.prompting.PromptContext` takes from a run (`fields()`).

  base() -> (Generator, Codec) of the model without personal modules (the run's own when it has
  none), called on first use. `supervised`: the task scores text answers, so `dev` and `score`
  are given."""
  base: Callable[[], tuple]
  settings: EvalSettings
  task: object
  model: str
  evaluated: str  # the evaluated split: never the one settings are chosen on
  suffix: str = ""
  supervised: bool = True
  notes: dict = dataclasses.field(default_factory=dict)

  @functools.cached_property
  def _base(self) -> tuple:
    return self.base()

  @property
  def generator(self):
    return self._base[0]

  @property
  def codec(self):
    return self._base[1]

  def _answers(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[str]:
    settings = dataclasses.replace(self.settings, max_new_tokens=max_new_tokens, mode="generate")
    return predict.generate(self.generator, self.codec, prompts, np.zeros(len(prompts), np.int32),
                            settings)

  def generate(self, texts: Sequence[str], max_new_tokens: int) -> list[str]:
    return [t.strip() for t in self._answers([Prompt(t) for t in texts], max_new_tokens)]

  def count_tokens(self, text: str) -> int:
    return len(self.generator.tokenizer(text, add_special_tokens=False).input_ids)

  def score(self, examples, prompts: Sequence[Prompt]) -> float:
    prompts = [Prompt(p.text + self.suffix, p.system) for p in prompts]
    labels = self.task.labels
    _, preds = predict.predict(self.generator, self.codec, prompts,
                               np.zeros(len(prompts), np.int32), labels, self.settings,
                               label_sets=self.task.label_sets)
    metric = self.task.primary_metric
    value = compute_metrics((metric,), [e.target for e in examples], preds, labels)[metric]
    return value if higher_is_better(metric) else -value

  def dev(self) -> list:
    """Examples to choose settings on: the task's dev split, else (no dev split, or dev is the
    evaluated one) its training split."""
    splits = self.task.splits
    dev = splits.get("dev") if self.evaluated != "dev" else None
    return list(dev or splits.get("train") or ())

  def fields(self) -> dict:
    out = dict(generate=self.generate, count_tokens=self.count_tokens, model=self.model,
               notes=self.notes)
    if self.supervised:
      out.update(dev=self.dev(), score=self.score)
    return out
