"""The method interface: one registered `Method` per file in `methods/`, and how methods compose.

A method fills up to three slots, each with one fixed signature:

  prompt(examples, prompts, ctx) -> prompts          prompting: rewrite each example's prompt
                                                      (a str or a Prompt with a system message;
                                                      `perjax.prompting`)
  personal(options) -> factory(groups=, dims=, rngs=) -> PersonalModule
                                                      embedding / finetuning: a personal module
  objective(model, batch, rng, num_groups, *, options) -> (loss, metrics)   the training loss

`options` is the method's own config block (from `defaults`). A config names one method or several
joined by '+' (`rag+ia3`): prompts are rewritten in order, every personal module acts
(in order), and at most one method may define the objective (the default is the LM loss on the
targets whenever there are personal parameters). `name@level` puts a method's personal module at
another granularity than the run's: `ia3@global+ia3` is a shared module plus a per-user
residual. A method whose objective trains on preference pairs (`pairwise=True`, e.g. DPO) gets
preference batches (`batching.make_preference_batch`) and needs a preference task.

Three optional slots serve fine-tuning and alignment methods: `base_at` (granularities at which
the method fine-tunes the shared base weights instead of building its personal module: full
fine-tuning), `reward(options) -> RewardModel` (a scalar reward that scores preference pairs
and reranks sampled candidates, `predict.mode=best_of_n`) and `after_training(model, ctx) ->
model` (rewrites the trained personal parameters before evaluation, e.g. merging adapters).
"""
import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

from perjax.data.schema import PersonalizedExample
from perjax.errors import ConfigError
from perjax.models.personal import ModuleSpec
from perjax.prompting import Prompt, PromptContext, apply_prompts
from perjax.registry import METHODS, OBJECTIVES, MethodInfo, calling_module, load_plugins
from perjax.taxonomy import Granularity, Technique, parse_granularity
from perjax.training import objectives, preference  # noqa: F401  (preference registers)


PromptFn = Callable[[Sequence[PersonalizedExample], list[str], PromptContext],
                    list["str | Prompt"]]
PersonalFn = Callable[[Mapping[str, Any]], Callable]
ObjectiveFn = Callable[..., tuple]


@dataclasses.dataclass(frozen=True)
class RewardModel:
  """A method's scalar reward: `score(model, rows) -> [B]` for response rows (input_ids,
  attention_mask, loss_mask, group_ids), and the best-of-n sampling it reranks: `n` candidates
  per prompt at `temperature`."""
  score: Callable
  n: int = 4
  temperature: float = 1.0


@dataclasses.dataclass(frozen=True)
class AfterTraining:
  """What an `after_training` slot sees: its options, the name of its personal module in the
  model's stack, and the run's group names (in group-id order)."""
  options: Mapping[str, Any]
  module: str
  group_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Method:
  info: MethodInfo
  prompt: PromptFn | None = None
  personal: PersonalFn | None = None
  objective: ObjectiveFn | None = None
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  pairwise: bool = False  # the objective takes preference batches (chosen/rejected pairs)
  # (examples, PromptContext) -> {key: [N, ...] array}: per-example inputs its module reads
  # (`PersonalModule.inputs`), computed once per example in the data stage
  example_inputs: Callable | None = None
  base_at: tuple[Granularity, ...] = ()  # where the shared base is trained instead (full FT)
  reward: Callable[[Mapping[str, Any]], RewardModel] | None = None
  after_training: Callable | None = None  # (model, AfterTraining) -> model
  # the non-personalized baseline: a sweep's taxonomy grid runs it once, reports test against it
  baseline: bool = False

  @property
  def name(self) -> str:
    return self.info.name


def register(method: Method) -> Method:
  """Registers `method` in `METHODS`, checking that its slots fit its technique."""
  tech = method.info.technique
  if tech == Technique.PROMPTING and method.prompt is None:
    raise ValueError(f"prompting method {method.name!r} defines no prompt()")
  if tech != Technique.PROMPTING and method.personal is None and method.objective is None \
      and not method.base_at:
    raise ValueError(f"{tech.value} method {method.name!r} defines neither personal() nor "
                     "objective()")
  return METHODS.register(method.name, method, origin=calling_module())


lm_objective = objectives.lm_loss  # the default: LM loss on the targets, mean per group


def objective_named(name: str) -> ObjectiveFn:
  """A shared training objective by its registered name (`OBJECTIVES`, e.g. "dpo_pair_loss"),
  for a method's `objective` slot."""
  return OBJECTIVES.get(name)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Composed methods for one granularity: their personal modules (`ModuleSpec`s, level None =
  the run's granularity) and the training objective."""
  methods: tuple[Method, ...]
  modules: tuple[ModuleSpec, ...]
  objective: ObjectiveFn | None
  pairwise: bool = False
  # prompting methods composed at another granularity (`rag@global`): {name: level}
  prompt_levels: Mapping[str, str] = dataclasses.field(default_factory=dict)
  train_base: bool = False  # full fine-tuning: the base weights are trained too
  reward: RewardModel | None = None
  # (module name, slot, options) of each method that rewrites its module after training
  after_training: tuple = ()

  @property
  def trains(self) -> bool:
    return bool(self.modules) or self.objective is not None or self.train_base

  def finish_training(self, model, group_names):
    """The model after every `after_training` slot (in composition order)."""
    for module, slot, opts in self.after_training:
      model = slot(model, AfterTraining(opts, module, tuple(group_names)))
    return model

  @property
  def levels(self) -> tuple[str, ...]:
    """The granularities other than the run's that personal modules sit at."""
    return tuple(dict.fromkeys(m.level for m in self.modules if m.level is not None))

  def level_of(self, method: Method) -> str | None:
    """The granularity whose pools a prompting method reads (None: the run's)."""
    return self.prompt_levels.get(method.name)

  def prompts(self, examples, make_ctx: Callable[[Method], PromptContext],
              system: str | None = None) -> list[Prompt]:
    """Each example's final `Prompt` (user message and system message): its input rewritten
    by each prompting slot in order (`perjax.prompting`)."""
    return apply_prompts(self.methods, examples, make_ctx, system)


def baseline_method() -> str:
  """The name of the one registered method marked `baseline`."""
  load_plugins()
  found = [name for name, m in METHODS.items() if m.baseline]
  if len(found) != 1:
    raise ConfigError(f"exactly one registered method must be the baseline, found {found}")
  return found[0]


def get_method(name: str) -> Method:
  load_plugins()
  return METHODS.get(name)  # an unknown name is a ConfigError suggesting near matches


def parse_spec(spec: str) -> list[tuple[str, str | None]]:
  """'rag+ia3@global+ia3' -> [(method, level or None), ...]."""
  parts = [n.strip() for n in spec.split("+")]
  if not all(parts):
    raise ConfigError(f"empty method name in {spec!r}")
  dupes = sorted({n for n in parts if parts.count(n) > 1})
  if dupes:
    raise ConfigError(f"method {dupes[0]!r} appears twice in {spec!r}")
  out = []
  for part in parts:
    name, at, level = part.partition("@")
    if at and not level:
      raise ConfigError(f"empty level after '@' in {part!r}")
    out.append((name.strip(), parse_granularity(level.strip()).value if at else None))
  return out


def compose(spec: str, granularity: "str | Granularity",
            options: Callable[[str], Mapping[str, Any]]) -> Recipe:
  """The `Recipe` for a '+'-joined method spec at a granularity, or a ConfigError saying why the
  combination is impossible. `options(name)` returns a method's config block."""
  granularity = parse_granularity(granularity)
  parsed = parse_spec(spec)
  methods, modules, prompt_levels = [], [], {}
  objective, objective_owner, pairwise = None, None, False
  train_base, reward, after = False, None, []
  for name, level in parsed:
    m = get_method(name)
    at = parse_granularity(level) if level else granularity
    if at not in m.info.granularities:
      raise ConfigError(f"method {m.name!r} does not support granularity {at.value!r}; "
                        f"it supports {[g.value for g in m.info.granularities]}")
    if level is not None and m.personal is None and m.prompt is None:
      raise ConfigError(f"'{name}@{level}': only a method with personal parameters or a prompt "
                        "can sit at its own level")
    if level == granularity.value:
      level = None
    if level is not None and m.prompt is not None:
      prompt_levels[m.name] = level  # its prompts read that granularity's pools
    label = (name if level is None else f"{name}@{level}").replace("@", "_at_")
    if at in m.base_at:  # full fine-tuning of the shared base at this granularity
      if level is not None:
        raise ConfigError(f"'{name}@{level}' trains the shared base; it cannot sit at a level")
      train_base = True
    elif m.personal is not None:
      modules.append(ModuleSpec(label, level, m.personal(options(m.name))))
      if m.after_training is not None:
        after.append((label, m.after_training, dict(options(m.name))))
    if m.reward is not None:
      if reward is not None:
        raise ConfigError(f"two reward models in {spec!r}; compose at most one")
      reward = m.reward(options(m.name))
    if m.objective is not None and m not in methods:
      if objective is not None:
        raise ConfigError(f"methods {objective_owner!r} and {m.name!r} both define the training "
                          "objective; they cannot be combined")
      # the method's options reach its objective bound, so configs can set e.g. dpo.beta
      objective = functools.partial(m.objective, options=dict(options(m.name)))
      objective_owner, pairwise = m.name, m.pairwise
    if m not in methods:
      methods.append(m)
  names = [s.name for s in modules]
  if len(set(names)) != len(names):
    raise ConfigError(f"two personal modules of {spec!r} sit at the same level")
  if (modules or train_base) and objective is None:
    objective = lm_objective
  return Recipe(tuple(methods), tuple(modules), objective, pairwise, prompt_levels, train_base,
                reward, tuple(after))
