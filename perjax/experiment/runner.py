"""`train_and_evaluate(config, workdir)`: one experiment, from a config to DIR/metrics.json.

The task is loaded, users are grouped by the granularity, prompting methods rewrite the prompts,
personal parameters (if any method declares them) are trained, and the evaluation split is
answered (greedy generation mapped onto the task's labels, or the most likely label) and
scored. Preference tasks (chosen/rejected pairs) go to `preference.run`: pairwise methods (DPO)
train on pair batches, and the score is the preference accuracy of the implicit reward. A
workdir holds one run: rerunning a finished run returns its metrics, an interrupted
one resumes from its checkpoint.
"""
import dataclasses
import functools
import json
import logging
import sys
from pathlib import Path

import numpy as np

from perjax.data import load_dataset
from perjax.errors import ConfigError
from perjax.experiment import config as cfg
from perjax.experiment import predict, preference
from perjax.experiment.train import train
from perjax.generation import Generator
from perjax.grouping import GroupingContext
from perjax.method import PromptContext, compose
from perjax.metrics import evaluate_task
from perjax.registry import GRANULARITIES, load_plugins

# bm25s sets its logger to DEBUG on import and logs every index build; keep warnings only.
logging.getLogger("bm25s").addFilter(lambda record: record.levelno >= logging.WARNING)

CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE = "config.json", "metrics.json", "predictions.jsonl"


@functools.lru_cache(maxsize=1)
def _read_checkpoint(name: str):
  # A sweep builds many models from the same weights: read and dequantize them once.
  from perjax.models.decoder_loading import read_checkpoint
  return read_checkpoint(name, progress=False)


@functools.lru_cache(maxsize=2)
def _encoder(name: str):
  from perjax.models import load_encoder
  return load_encoder(name)


def load_model(config, personal):
  from perjax.models import decoder_loading
  if config.model.startswith(decoder_loading.TINY_PREFIX):
    return decoder_loading.load_decoder(config.model, personal=personal, dtype=config.dtype,
                                        seed=config.seed, unroll_layers=config.unroll_layers)
  llama_config, weights, tokenizer = _read_checkpoint(config.model)
  return decoder_loading.build(llama_config, weights, personal=personal, dtype=config.dtype,
                               seed=config.seed, unroll_layers=config.unroll_layers), tokenizer


def subsample(examples, n: int, seed: int):
  """At most n examples (0: all), a seeded draw kept in the original order."""
  if not n or len(examples) <= n:
    return list(examples)
  keep = np.sort(np.random.default_rng(seed).choice(len(examples), n, replace=False))
  return [examples[i] for i in keep]


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    out.update(_flatten(v, prefix + k + ".") if isinstance(v, dict) else {prefix + k: v})
  return out


def _claim(workdir: Path, resolved: str) -> None:
  """Writes DIR/config.json, or checks that the run already in progress there has the same
  config."""
  path = workdir / CONFIG_FILE
  started = (workdir / METRICS_FILE).exists() or (workdir / "checkpoints").exists()
  if path.exists() and started:  # without progress, a failed start's config is just replaced
    old, new = json.loads(path.read_text()), json.loads(resolved)
    if old != new:
      fo, fn = _flatten(old), _flatten(new)
      diff = sorted(k for k in fo.keys() | fn.keys() if fo.get(k) != fn.get(k))
      raise ConfigError(f"{workdir} holds a run of another config (differs in {diff}); "
                        "use a new --workdir")
    return
  workdir.mkdir(parents=True, exist_ok=True)
  path.write_text(resolved + "\n")


def _options(config, name: str) -> dict:
  return config[name].to_dict() if name in config else {}


def fill_labels(text: str, labels) -> str:
  """`{labels}` in a config's prompt text becomes the task's label list."""
  return text.replace("{labels}", ", ".join(labels or ()))


def build_prompts(recipe, groups, examples, split, config, labels=None) -> list[str]:
  persona_of = groups.pools(examples)
  make_ctx = lambda m: PromptContext(
      options=_options(config, m.name), split=split, pool_by=groups.pool_by,
      persona_of=persona_of, seed=config.seed, encoder=lambda: _encoder(config.encoder))
  suffix = fill_labels(config.prompt.suffix, labels)
  return [p + suffix for p in recipe.prompts(examples, make_ctx)]


def train_and_evaluate(config, workdir) -> dict:
  """Runs (or resumes, or just returns) the experiment `config` in `workdir`; returns metrics."""
  workdir = Path(workdir)
  load_plugins()
  recipe = compose(config.method, config.granularity, lambda n: _options(config, n))
  _claim(workdir, cfg.to_json(config))
  if (workdir / METRICS_FILE).exists():
    print(f"{workdir}: finished already", file=sys.stderr)
    return json.loads((workdir / METRICS_FILE).read_text())
  task = load_dataset(config.data.name, **config.data.params.to_dict())
  split = config.eval.split
  if split not in task.splits:
    raise ConfigError(f"eval.split {split!r} is not one of {sorted(task.splits)}")
  train_examples = subsample(task.splits["train"], config.data.max_train, config.seed)
  eval_examples = subsample(task.splits[split], config.data.max_test, config.seed)
  task = dataclasses.replace(task, splits={**task.splits, split: eval_examples})
  pairs = preference.is_preference(task)
  if recipe.pairwise and not pairs:
    raise ConfigError(f"method {config.method!r} trains on preference pairs; data "
                      f"{config.data.name!r} has none")

  grouping = GRANULARITIES.get(config.granularity)
  groups = grouping.fit(train_examples, GroupingContext(
      options=_options(config, grouping.name), seed=config.seed,
      encoder=lambda: _encoder(config.encoder)))
  print(f"{workdir}: {config.method} @ {config.granularity} ({groups.num_groups} groups), "
        f"{len(train_examples)} train / {len(eval_examples)} {split} examples", file=sys.stderr)

  model, tokenizer = load_model(config, recipe.personal_config(groups.num_groups))
  generator = Generator(model, tokenizer)
  system = fill_labels(config.prompt.system, task.labels) or None
  if pairs:
    prompts_of = lambda ex, s: build_prompts(recipe, groups, ex, s, config, task.labels)
    return _finish(workdir, *preference.run(model, generator, recipe, groups, train_examples,
                                            eval_examples, prompts_of, config, workdir,
                                            system=system))
  if recipe.trains:
    prompts = build_prompts(recipe, groups, train_examples, "train", config, task.labels)
    model = train(model, generator, recipe, prompts, [e.target for e in train_examples],
                  groups.group_ids(train_examples), groups.num_groups, config, workdir,
                  system=system)
    generator.refresh(model)

  prompts = build_prompts(recipe, groups, eval_examples, split, config, task.labels)
  group_ids = groups.group_ids(eval_examples)
  outputs, preds = predict.predict(generator, prompts, group_ids, task.labels, config,
                                   system=system)
  metrics = evaluate_task(task, split, {e.id: p for e, p in zip(eval_examples, preds)})

  return _finish(workdir, metrics, [
      {"id": e.id, "user_id": e.user_id, "group": int(g), "output": o, "prediction": p,
       "target": e.target} for e, g, o, p in zip(eval_examples, group_ids, outputs, preds)])


def _finish(workdir: Path, metrics: dict, records: list[dict]) -> dict:
  """Writes the predictions, then metrics.json (last: its presence marks the run finished)."""
  with open(workdir / PREDICTIONS_FILE, "w") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  tmp = workdir / (METRICS_FILE + ".tmp")
  tmp.write_text(json.dumps(metrics, indent=1) + "\n")
  tmp.replace(workdir / METRICS_FILE)
  return metrics
