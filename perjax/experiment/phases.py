"""The phases of one run, each a function with a small typed result:

  load_data     the task and the run's examples                      -> RunData
  group         users' groups at every level, and the prompt pools   -> Grouping
  build_model   the model with its personal rows, generator, codec   -> RunModel
  prepare_eval  the evaluation's prompts and ids, and what the task kind measures before
                training (a preference reference)                    -> EvalInputs
  fit           the personal rows trained, stage by stage            -> Trained
  evaluate      the evaluation split answered and scored             -> Evaluation

The runner calls them in this order; outputs.write_run writes the workdir. Only the phases
read the config: everything below them takes explicit settings.
"""
import dataclasses
import sys
from pathlib import Path

import numpy as np

from perjax import tracking
from perjax.errors import ConfigError
from perjax.experiment import cost, kinds, protocol
from perjax.experiment.encoding import Codec
from perjax.experiment.example_inputs import example_inputs
from perjax.experiment.loading import encoder, load_model, personal_builder
from perjax.experiment.options import granularity_options, method_options
from perjax.experiment.prompt_stage import PromptStage
from perjax.experiment.prompt_stage import model_key as prompt_stage_model_key
from perjax.experiment.settings import EvalSettings
from perjax.generation import Generator
from perjax.grouping import GroupingContext
from perjax.per_example import PerExample
from perjax.pools import Pools
from perjax.prompting import Prompt, PromptContext
from perjax.registry import GRANULARITIES
from perjax.training.early_stopping import holdout
from perjax.training.loop import train
from perjax.training.settings import TrainSettings


@dataclasses.dataclass(frozen=True)
class RunData:
  """The task (its eval split cut to the evaluated examples) and the run's examples: `train`
  (the train split), `fit` (what trains the run's own rows, `train.on`) and `eval`; each also
  as prompted examples (`*_views`), what grouping and the prompting methods see."""
  task: object
  kind: type  # the task kind (kinds.TASK_KINDS)
  split: str
  train: list
  fit: list
  eval: list
  train_views: list
  fit_views: list
  eval_views: list


@dataclasses.dataclass(frozen=True)
class Grouping:
  """`groups`: the run's granularity; `levels`: {level: groups} of modules composed at other
  levels; `pools`: {level (None: the run's): Pools} the prompting methods draw from."""
  groups: object
  levels: dict
  pools: dict

  def names(self, granularity: str) -> dict:
    """{level: each row's name}, for groups.json."""
    return {lv or granularity: list(g.names)
            for lv, g in {None: self.groups, **self.levels}.items()}


@dataclasses.dataclass(frozen=True)
class RunModel:
  model: object
  generator: Generator
  codec: Codec
  settings: EvalSettings
  helper: PromptStage  # the model's help for the prompting slots


@dataclasses.dataclass(frozen=True)
class EvalInputs:
  prompts: list[Prompt]
  group_ids: np.ndarray
  per_example: PerExample  # ids at other levels, modules' inputs
  before: object  # what the task kind measured before training (kinds.*.before_training)


@dataclasses.dataclass(frozen=True)
class Trained:
  model: object
  rows: np.ndarray  # training examples per row of the run's level (zeros: nothing trained)
  costs: list  # each stage's cost (experiment/cost.py StageCost), the run's own level last


@dataclasses.dataclass(frozen=True)
class Evaluation:
  metrics: dict
  records: list[dict]  # one per evaluated example
  notes: dict  # what the prompting methods report


def subsample(examples, n: int, seed: int):
  """At most n examples (0: all), a seeded draw kept in the original order."""
  if not n or len(examples) <= n:
    return list(examples)
  keep = np.sort(np.random.default_rng(seed).choice(len(examples), n, replace=False))
  return [examples[i] for i in keep]


def load_data(config, recipe) -> RunData:
  from perjax.data import load_dataset
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
  fit_examples = (protocol.training_examples(config.train.on, task, train_examples,
                                             eval_examples)
                  if recipe.trains else train_examples)
  return RunData(task, kind, split, train_examples, fit_examples, eval_examples,
                 kind.views(train_examples), kind.views(fit_examples), kind.views(eval_examples))


def group(config, recipe, data: RunData) -> Grouping:
  """The groups are those of the examples that train the run's rows (the evaluated users
  themselves when they train on their own history). Modules composed at another granularity
  (`lora@persona+lora`) get that grouping's rows: a user never seen in training then still has
  their persona's row (the nearest persona)."""
  def fit(name):
    granularity = GRANULARITIES.get(name)
    return granularity.fit(data.fit_views, GroupingContext(
        options=granularity_options(config, granularity.name), seed=config.seed,
        encoder=lambda: encoder(config.encoder)))
  groups = fit(config.granularity)
  levels = {level: fit(level) for level in recipe.levels}
  # Prompting methods draw from pools over every example of the run (training users' profiles
  # included).
  sources = list({id(e): e for e in data.train_views + data.fit_views + data.eval_views}
                 .values())
  pools = {None: Pools(sources, groups)}
  for level in set(recipe.prompt_levels.values()):  # prompting methods at another granularity
    pools[level] = Pools(sources, fit(level))
  return Grouping(groups, levels, pools)


def build_model(config, recipe, data: RunData, grouping: Grouping) -> RunModel:
  model, tokenizer = load_model(config, personal_builder(recipe, grouping.groups,
                                                         grouping.levels),
                                train_base=recipe.train_base)
  if config.init.adapter:  # every row starts from a published adapter (resumes override it)
    from perjax.export.adapters import init_from
    init_from(model, config.init.adapter)
  generator = Generator(model, tokenizer)
  codec = Codec(generator, chat=config.prompt.chat,
                max_prompt_tokens=config.eval.get("max_prompt_tokens"))
  settings = dataclasses.replace(EvalSettings.from_config(config), reward=recipe.reward)
  helper = prompt_stage(config, recipe, data, settings, generator, codec)
  return RunModel(model, generator, codec, settings, helper)


def prepare_eval(config, recipe, data: RunData, grouping: Grouping, run: RunModel) -> EvalInputs:
  prompts = build_prompts(config, recipe, grouping, data.eval_views, data.split, data.task,
                          run.helper)
  group_ids = grouping.groups.group_ids(data.eval_views)
  per_example = per_example_inputs(config, recipe, grouping, data.eval_views, data.split)
  before = data.kind.before_training(run.generator, run.codec, prompts, data.eval, group_ids,
                                     run.settings, recipe.trains, per_example)
  return EvalInputs(prompts, group_ids, per_example, before)


def fit(config, recipe, data: RunData, grouping: Grouping, run: RunModel,
        workdir: Path) -> Trained:
  """Trains every stage of `train.on` (protocol.stages), each capped by the pass budget and,
  where configured, stopped by a held-out slice's loss; the generator then answers with the
  trained rows."""
  groups = grouping.groups
  if not recipe.trains:
    return Trained(run.model, np.zeros(groups.num_groups, np.int64), [])
  model, costs = run.model, []  # each stage's steps, examples drawn and rows' passes
  for stage in protocol.stages(config.train.on, recipe, data.train, data.fit):
    views = data.kind.views(stage.examples)
    prompts = build_prompts(config, recipe, grouping, views, "train", data.task, run.helper)
    rows, make_batch = data.kind.training_rows(run.codec, prompts, stage.examples, recipe,
                                               config.train.seq_len)
    stage_ids = groups.group_ids(views)
    if stage.folder:
      print(f"{workdir}: training {', '.join(stage.trainable)} on the train split first",
            file=sys.stderr)
    early_stop = cost.early_stop_of(config, stage)
    fit_idx, _ = holdout(len(rows), early_stop.fraction if early_stop else 0.0, config.seed)
    settings = stage_settings(config, stage, len(fit_idx))
    model = train(model, rows, stage_ids, make_batch, recipe.objective, groups.num_groups,
                  settings, workdir / stage.folder, trainable=stage.trainable,
                  per_example=per_example_inputs(config, recipe, grouping, views, "train"),
                  train_base=recipe.train_base, early_stop=early_stop)
    costs.append(cost.stage_cost(stage.folder, workdir / stage.folder, settings,
                                 stage_ids[fit_idx], groups.num_groups))
  model = recipe.finish_training(model, groups.names)  # e.g. adapters merged per user
  run.generator.refresh(model)
  # the run's own rows' stage: what trained the row that answered
  return Trained(model, np.bincount(stage_ids[fit_idx], minlength=groups.num_groups), costs)


def evaluate(config, recipe, data: RunData, run: RunModel, inputs: EvalInputs,
             trained: Trained) -> Evaluation:
  metrics, records = data.kind.evaluate(run.generator, run.codec, inputs.prompts, data.eval,
                                        inputs.group_ids, data.task, data.split, run.settings,
                                        inputs.before, inputs.per_example)
  tracking.current().scalars(config.train.steps if recipe.trains else 0,
                             {f"eval/{k}": v for k, v in metrics.items()})
  passes = trained.costs[-1].passes if trained.costs else None
  for r in records:  # what trained the row that answered, and how often it saw them
    r["group_train_examples"] = int(trained.rows[r["group"]])
    r["group_train_passes"] = round(float(passes[r["group"]]), 4) if passes is not None else 0.0
  metrics = {**metrics, **cost.cost_metrics(trained.costs)}
  return Evaluation(metrics, records, run.helper.notes)


def stage_settings(config, stage, examples: int = 0) -> TrainSettings:
  """A stage's training settings: the task stage (its own folder) may run `train.task_steps`;
  a pass budget (`train.max_passes`) caps the steps over the stage's `examples`."""
  settings = TrainSettings.from_config(config)
  task_steps = config.train.get("task_steps", 0)
  if stage.folder and task_steps:
    settings = dataclasses.replace(settings, steps=task_steps)
  return cost.budgeted(settings, examples)


def per_example_inputs(config, recipe, grouping: Grouping, views, split: str) -> PerExample:
  """Per example: its groups at other levels, and its modules' inputs."""
  return PerExample(
      level_ids={level: g.group_ids(views) for level, g in grouping.levels.items()},
      inputs=example_inputs(recipe, grouping.pools, views, split, config,
                            lambda: encoder(config.encoder)))


def fill_labels(text: str, labels) -> str:
  """`{labels}` in a config's prompt text becomes the task's label list."""
  return text.replace("{labels}", ", ".join(labels or ()))


def build_prompts(config, recipe, grouping: Grouping, examples, split, task,
                  stage: PromptStage | None = None) -> list[Prompt]:
  """Each example's final `Prompt`: the prompting slots' user message plus the config's
  suffix, and its system message (the config's, unless a slot set one). `stage`: the model's
  help for the slots (generation, a dev score). `task`: its labels, and its retrieval query
  and item template where it has them (LaMP)."""
  system = fill_labels(config.prompt.system, task.labels) or None
  make_ctx = lambda m: PromptContext(
      options=method_options(config, m.name), split=split,
      pools=grouping.pools[recipe.level_of(m)], system=system,
      seed=config.seed, encoder=lambda: encoder(config.encoder),
      query=getattr(task, "query", None), item_text=getattr(task, "item_text", None),
      pair=getattr(task, "profile_pair", None), **(stage.fields() if stage is not None else {}))
  suffix = fill_labels(config.prompt.suffix, task.labels)
  return [Prompt(p.text + suffix, p.system)
          for p in recipe.prompts(examples, make_ctx, system)]


def prompt_stage(config, recipe, data: RunData, settings, generator, codec) -> PromptStage:
  """The model's help for the run's prompting slots: the run's own generator, or, where the
  run has personal modules, one of the base model (built on first use only)."""
  def base():
    if not recipe.modules:
      return generator, codec
    base_generator = Generator(*load_model(config, None))
    return base_generator, Codec(base_generator, chat=config.prompt.chat,
                                 max_prompt_tokens=config.eval.get("max_prompt_tokens"))
  return PromptStage(base, settings, data.task, prompt_stage_model_key(config), data.split,
                     fill_labels(config.prompt.suffix, data.task.labels),
                     data.kind is kinds.Supervised)
