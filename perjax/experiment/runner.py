"""`train_and_evaluate(config, workdir)`: one experiment, from a config to DIR/metrics.json.

The task is loaded, users are grouped by the granularity, prompting methods rewrite the prompts,
personal parameters (if any method declares them) are trained, and the evaluation split is
answered and scored. The task's kind (`kinds`: supervised generation/classification, preference
pairs) says how rows are encoded, batched and evaluated; one training loop serves them all. Only
this module reads the whole config: everything below it takes explicit settings. A workdir holds
one run: rerunning a finished run returns its metrics, an interrupted one resumes from its
checkpoint.
"""
import dataclasses
import functools
import logging
import sys
import time
from pathlib import Path

import numpy as np

from perjax import strict_json
from perjax.data import load_dataset
from perjax.errors import ConfigError
from perjax.experiment import config as cfg
from perjax.experiment import cost, distributed_run, kinds, protocol, tracking
from perjax.experiment.seeded import write_per_user
from perjax.experiment.encoding import Codec
from perjax.experiment.example_inputs import example_inputs
from perjax.experiment.options import check_run, granularity_options, method_options
from perjax.experiment.prompt_stage import PromptStage
from perjax.experiment.prompt_stage import model_key as prompt_stage_model_key
from perjax.experiment.settings import EvalSettings, TrainSettings
from perjax.experiment.train import train
from perjax.experiment.validate import check_settings
from perjax.experiment.workdir import (WorkdirLock, check_writable, claim,
                                       finished_metrics)
from perjax.generation import Generator
from perjax.grouping import GroupingContext
from perjax.pools import Pools
from perjax.prompting import Prompt, PromptContext
from perjax.registry import GRANULARITIES
from perjax.training.early_stopping import holdout
from perjax.training.model_options import set_training_options

# bm25s sets its logger to DEBUG on import and logs every index build; keep warnings only.
logging.getLogger("bm25s").addFilter(lambda record: record.levelno >= logging.WARNING)

CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE = "config.json", "metrics.json", "predictions.jsonl"
GROUPS_FILE = "groups.json"
LAMP_PREDICTIONS_FILE = "predictions.lamp.json"
PROMPTING_FILE = "prompting.json"


@functools.lru_cache(maxsize=1)
def _read_checkpoint(name: str):
  # A sweep builds many models from the same weights: read and dequantize them once.
  from perjax.models.decoder_loading import read_checkpoint
  _say_loading("model", name)
  return read_checkpoint(name, progress=False)


@functools.lru_cache(maxsize=2)
def _encoder(name: str):
  from perjax.models import load_encoder
  _say_loading("encoder", name)
  return load_encoder(name)


def _say_loading(kind: str, name: str) -> None:
  """One line before a slow step, so a first run is not silent for minutes."""
  from perjax.models import zoo
  fetch = "downloading it (first use), then " if name in zoo.MODELS and not zoo.is_cached(name) \
      else ""
  print(f"loading {kind} {name}: {fetch}reading the weights...", file=sys.stderr)


def load_model(config, personal, *, train_base: bool = False):
  """(model, tokenizer) of the run. The base is stored in bfloat16 over 1B parameters
  (`default_param_dtype`), except when the run trains it: full fine-tuning keeps float32
  master weights."""
  from perjax.models import decoder_loading
  if config.model.startswith(decoder_loading.TINY_PREFIX):
    model, tokenizer = decoder_loading.load_decoder(config.model, personal=personal,
                                                    dtype=config.dtype, seed=config.seed,
                                                    unroll_layers=config.unroll_layers)
  else:
    llama_config, weights, tokenizer = _read_checkpoint(config.model)
    param_dtype = "float32" if train_base else decoder_loading.default_param_dtype(llama_config)
    model = decoder_loading.build(llama_config, weights, personal=personal, dtype=config.dtype,
                                  param_dtype=param_dtype, seed=config.seed,
                                  unroll_layers=config.unroll_layers)
  set_training_options(model, remat=config.get("remat_layers", False),
                       loss_chunk=config.get("loss_chunk", 0),
                       attention=config.get("attention", "default"))
  return model, tokenizer


def personal_builder(recipe, groups, level_groups):
  """The builder of the recipe's personal modules: one row per group of the run's granularity
  (`groups`), and of each other level its modules sit at (`level_groups`)."""
  from perjax.models.personal import stack_builder
  return stack_builder(recipe.modules, {None: groups.num_groups,
                                        **{l: g.num_groups for l, g in level_groups.items()}})


def level_ids_of(level_groups, views) -> dict:
  """{level: [N] group ids} of `views` at each level other modules sit at."""
  return {level: g.group_ids(views) for level, g in level_groups.items()}


def subsample(examples, n: int, seed: int):
  """At most n examples (0: all), a seeded draw kept in the original order."""
  if not n or len(examples) <= n:
    return list(examples)
  keep = np.sort(np.random.default_rng(seed).choice(len(examples), n, replace=False))
  return [examples[i] for i in keep]


def fill_labels(text: str, labels) -> str:
  """`{labels}` in a config's prompt text becomes the task's label list."""
  return text.replace("{labels}", ", ".join(labels or ()))


def build_prompts(recipe, pools, examples, split, config, labels=None,
                  stage: PromptStage | None = None, task=None) -> list[Prompt]:
  """Each example's final `Prompt`: the prompting slots' user message plus the config's
  suffix, and its system message (the config's, unless a slot set one). `pools`: {level:
  Pools}, None for the run's granularity. `stage`: the model's help for the slots (generation,
  a dev score). `task`: its retrieval query and item template, where it has them (LaMP)."""
  system = fill_labels(config.prompt.system, labels) or None
  make_ctx = lambda m: PromptContext(
      options=method_options(config, m.name), split=split, pools=pools[recipe.level_of(m)],
      system=system,
      seed=config.seed, encoder=lambda: _encoder(config.encoder),
      query=getattr(task, "query", None), item_text=getattr(task, "item_text", None),
      pair=getattr(task, "profile_pair", None), **(stage.fields() if stage is not None else {}))
  suffix = fill_labels(config.prompt.suffix, labels)
  return [Prompt(p.text + suffix, p.system)
          for p in recipe.prompts(examples, make_ctx, system)]


def prompt_stage(config, recipe, task, split, settings, generator, codec,
                 supervised: bool) -> PromptStage:
  """The model's help for the run's prompting slots: the run's own generator, or, where the
  run has personal modules, one of the base model (built on first use only)."""
  def base():
    if not recipe.modules:
      return generator, codec
    base_generator = Generator(*load_model(config, None))
    return base_generator, Codec(base_generator, chat=config.prompt.chat,
                                 max_prompt_tokens=config.eval.get("max_prompt_tokens"))
  return PromptStage(base, settings, task, prompt_stage_model_key(config), split,
                     fill_labels(config.prompt.suffix, task.labels), supervised)


def stage_settings(config, stage, examples: int = 0) -> TrainSettings:
  """A stage's training settings: the task stage (its own folder) may run `train.task_steps`;
  a pass budget (`train.max_passes`) caps the steps over the stage's `examples`."""
  settings = TrainSettings.from_config(config)
  task_steps = config.train.get("task_steps", 0)
  if stage.folder and task_steps:
    settings = dataclasses.replace(settings, steps=task_steps)
  return cost.budgeted(settings, examples)


def train_and_evaluate(config, workdir) -> dict:
  """Runs (or resumes, or just returns) the experiment `config` in `workdir`; returns metrics."""
  workdir = Path(workdir)
  recipe = check_run(config)
  check_settings(config, trains=recipe.trains)  # before the workdir is touched
  distributed_run.check_processes(config)
  if distributed_run.is_follower():  # another process of a jax.distributed run: process 0 owns
    return distributed_run.follow(lambda: _run(config, workdir, recipe))  # the workdir
  # The whole run holds the workdir's lock: claim, finished check and outputs cannot interleave
  # with another run's.
  with distributed_run.lead() as lead, WorkdirLock(workdir):
    claim(workdir, cfg.to_json(config), {m.name for m in recipe.methods})
    metrics = finished_metrics(workdir)
    if metrics is not None:
      print(f"{workdir}: finished already", file=sys.stderr)
      return metrics
    check_writable(workdir)  # now, not after training: the checkpoints must be writable
    lead.go()
    with tracking.Tracker.from_config(workdir, config) as tracker, tracking.active(tracker):
      return _run(config, workdir, recipe)


def _run(config, workdir: Path, recipe) -> dict:
  started = time.monotonic()
  task = load_dataset(config.data.name, **config.data.params.to_dict())
  split = config.eval.split
  if split not in task.splits:
    raise ConfigError(f"eval.split {split!r} is not one of {sorted(task.splits)}")
  train_examples = subsample(task.splits["train"], config.data.max_train, config.data.sample_seed)
  eval_examples = subsample(task.splits[split], config.data.max_test, config.data.sample_seed)
  task = dataclasses.replace(task, splits={**task.splits, split: eval_examples})
  kind = kinds.kind_of(task)
  if recipe.pairwise and kind is not kinds.Preference:
    raise ConfigError(f"method {config.method!r} trains on preference pairs; data "
                      f"{config.data.name!r} has none")
  on = config.train.on
  fit_examples = (protocol.training_examples(on, task, train_examples, eval_examples)
                  if recipe.trains else train_examples)
  train_views, eval_views = kind.views(train_examples), kind.views(eval_examples)
  fit_views = kind.views(fit_examples)

  # The groups are those of the examples that train the run's rows (the evaluated users
  # themselves when they train on their own history).
  fit_grouping = lambda g: g.fit(fit_views, GroupingContext(
      options=granularity_options(config, g.name), seed=config.seed,
      encoder=lambda: _encoder(config.encoder)))
  groups = fit_grouping(GRANULARITIES.get(config.granularity))
  print(f"{workdir}: {config.method} @ {config.granularity} ({groups.num_groups} groups), "
        f"{len(train_examples)} train / {len(eval_examples)} {split} examples", file=sys.stderr)

  # modules composed at another granularity (`lora@persona+lora`) get that grouping's rows: a
  # user never seen in training then still has their persona's row (the nearest persona)
  level_groups = {level: fit_grouping(GRANULARITIES.get(level)) for level in recipe.levels}
  # each level's row names (a persona's label, say), so exports can name rows
  if not distributed_run.is_follower():
    (workdir / GROUPS_FILE).write_text(strict_json.dumps(
        {lv or config.granularity: list(g.names)
         for lv, g in {None: groups, **level_groups}.items()}, what="group name", indent=1) + "\n")
  model, tokenizer = load_model(config, personal_builder(recipe, groups, level_groups),
                                train_base=recipe.train_base)
  if config.init.adapter:  # every row starts from a published adapter (resumes override it)
    from perjax.export.adapters import init_from
    init_from(model, config.init.adapter)
  generator = Generator(model, tokenizer)
  codec = Codec(generator, chat=config.prompt.chat,
                max_prompt_tokens=config.eval.get("max_prompt_tokens"))
  settings = dataclasses.replace(EvalSettings.from_config(config), reward=recipe.reward)
  # Prompting methods draw from pools over every example of the run (training users' profiles
  # included).
  sources = {id(e): e for e in train_views + fit_views + eval_views}
  pools = {None: Pools(list(sources.values()), groups)}
  for level in set(recipe.prompt_levels.values()):  # prompting methods at another granularity
    pools[level] = Pools(list(sources.values()), fit_grouping(GRANULARITIES.get(level)))
  helper = prompt_stage(config, recipe, task, split, settings, generator, codec,
                        kind is kinds.Supervised)
  prompts = build_prompts(recipe, pools, eval_views, split, config, task.labels, helper, task)
  group_ids = groups.group_ids(eval_views)
  # per example: its groups at other levels, and its modules' inputs (they travel together)
  per_example = lambda views, split: {
      **level_ids_of(level_groups, views),
      **example_inputs(recipe, pools, views, split, config, lambda: _encoder(config.encoder))}
  eval_levels = per_example(eval_views, split)
  state = kind.before_training(generator, codec, prompts, eval_examples, group_ids, settings,
                               recipe.trains, eval_levels)
  trained = np.zeros(groups.num_groups, np.int64)  # training examples per row of the run's level
  costs = []  # each stage's steps, examples drawn and rows' passes (experiment/cost.py)
  if recipe.trains:
    for stage in protocol.stages(on, recipe, train_examples, fit_examples):
      views = kind.views(stage.examples)
      stage_prompts = build_prompts(recipe, pools, views, "train", config, task.labels,
                                    helper, task)
      rows, make_batch = kind.training_rows(codec, stage_prompts, stage.examples, recipe,
                                            config.train.seq_len)
      stage_ids = groups.group_ids(views)
      if stage.folder:
        print(f"{workdir}: training {', '.join(stage.trainable)} on the train split first",
              file=sys.stderr)
      early_stop = cost.early_stop_of(config, stage)
      fit_idx, _ = holdout(len(rows), early_stop.fraction if early_stop else 0.0, config.seed)
      settings_s = stage_settings(config, stage, len(fit_idx))
      model = train(model, rows, stage_ids, make_batch, recipe.objective, groups.num_groups,
                    settings_s, workdir / stage.folder,
                    trainable=stage.trainable, level_ids=per_example(views, "train"),
                    train_base=recipe.train_base, early_stop=early_stop)
      costs.append(cost.stage_cost(stage.folder, workdir / stage.folder, settings_s,
                                   stage_ids[fit_idx], groups.num_groups))
    # the run's own rows' stage
    trained = np.bincount(stage_ids[fit_idx], minlength=groups.num_groups)
    model = recipe.finish_training(model, groups.names)  # e.g. adapters merged per user
    generator.refresh(model)
  if distributed_run.is_follower():  # process 0 evaluates and writes (distributed_run)
    return {}
  metrics, records = kind.evaluate(generator, codec, prompts, eval_examples, group_ids, task,
                                   split, settings, state, eval_levels)
  tracking.current().scalars(config.train.steps if recipe.trains else 0,
                             {f"eval/{k}": v for k, v in metrics.items()})
  for r in records:  # what trained the row that answered, and how often it saw them
    r["group_train_examples"] = int(trained[r["group"]])
    r["group_train_passes"] = round(float(costs[-1].passes[r["group"]]), 4) if costs else 0.0
  if helper.notes:  # what the prompting methods report (summaries generated, a chosen setting)
    (workdir / PROMPTING_FILE).write_text(
        strict_json.dumps(helper.notes, what="prompting note", indent=1) + "\n")
    metrics = {**metrics, **{k: v for k, v in helper.notes.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)}}
  metrics = {**metrics, **cost.cost_metrics(costs),
             "wall_seconds": round(time.monotonic() - started, 1)}
  result = _finish(workdir, metrics, records)
  if kind is kinds.Supervised:
    write_lamp_predictions(workdir / LAMP_PREDICTIONS_FILE, task.name, records)
    write_per_user(workdir, task.metrics, task.labels)
  return result


def write_lamp_predictions(path: Path, task_name: str, records) -> None:
  """The answers in the LaMP outputs format, so `perjax evaluate GOLDS RUN/predictions.lamp.json`
  scores a run with no conversion."""
  from perjax.data.lamp import outputs_task_name
  golds = [{"id": r["id"], "output": r["prediction"]} for r in records]
  path.write_text(strict_json.dumps({"task": outputs_task_name(task_name), "golds": golds},
                                    what="prediction") + "\n")


def _finish(workdir: Path, metrics: dict, records: list[dict]) -> dict:
  """Writes the predictions, then metrics.json (last: its presence marks the run finished)."""
  # Checked first, so a non-finite metric leaves no half-written outputs behind.
  text = strict_json.dumps(metrics, what="metric", indent=1,
                           hint="the predictions or golds hold a non-finite number")
  with open(workdir / PREDICTIONS_FILE, "w") as f:
    for r in records:
      f.write(strict_json.dumps(r, what="prediction record") + "\n")
  tmp = workdir / (METRICS_FILE + ".tmp")
  tmp.write_text(text + "\n")
  tmp.replace(workdir / METRICS_FILE)
  return metrics
