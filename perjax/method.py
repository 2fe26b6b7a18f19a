"""The method interface: one registered `Method` per file in `methods/`, and how methods compose.

A method fills up to three slots, each with one fixed signature:

  prompt(examples, prompts, ctx) -> prompts          prompting: rewrite each example's prompt
  personal(options) -> {PersonalConfig field: value}  embedding / finetuning: personal parameters
  objective(model, batch, rng, num_groups, *, options) -> (loss, metrics)   the training loss

`options` is the method's own config block (`config.<name>`, from `defaults`). A config names one
method or several joined by '+' (`rag+lora` is OPPU): prompts are rewritten in order, personal
parameter contributions merge, and at most one method may define the objective (the default is
the LM loss on the targets whenever there are personal parameters). A method whose objective
trains on preference pairs (`pairwise=True`, e.g. DPO) gets preference batches
(`batching.make_preference_batch`) and needs a preference task.
"""
import dataclasses
import difflib
import functools
from typing import Any, Callable, Mapping, Sequence

from perjax.data.schema import PersonalizedExample
from perjax.errors import ConfigError
from perjax.models.personal import PersonalConfig
from perjax.registry import METHODS, MethodInfo, load_plugins
from perjax.taxonomy import Granularity, Technique, parse_granularity
from perjax.training import objectives


@dataclasses.dataclass(frozen=True)
class PromptContext:
  """What a prompting method may use: its options, the split, the granularity's pool, a seed,
  and a lazily loaded sentence encoder (dense retrieval)."""
  options: Mapping[str, Any]
  split: str
  pool_by: Granularity
  persona_of: Mapping[str, str]
  seed: int = 0
  encoder: Callable[[], Any] | None = None


PromptFn = Callable[[Sequence[PersonalizedExample], list[str], PromptContext], list[str]]
PersonalFn = Callable[[Mapping[str, Any]], dict]
ObjectiveFn = Callable[..., tuple]


@dataclasses.dataclass(frozen=True)
class Method:
  info: MethodInfo
  prompt: PromptFn | None = None
  personal: PersonalFn | None = None
  objective: ObjectiveFn | None = None
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  pairwise: bool = False  # the objective takes preference batches (chosen/rejected pairs)

  @property
  def name(self) -> str:
    return self.info.name


def register(method: Method) -> Method:
  """Registers `method` in `METHODS`, checking that its slots fit its technique."""
  tech = method.info.technique
  if tech == Technique.PROMPTING and method.prompt is None:
    raise ValueError(f"prompting method {method.name!r} defines no prompt()")
  if tech != Technique.PROMPTING and method.personal is None and method.objective is None:
    raise ValueError(f"{tech.value} method {method.name!r} defines neither personal() nor "
                     "objective()")
  return METHODS.register(method.name, method)


lm_objective = objectives.lm_loss  # the default: LM loss on the targets, mean per group


@dataclasses.dataclass(frozen=True)
class Recipe:
  """Composed methods for one granularity."""
  methods: tuple[Method, ...]
  personal_fields: Mapping[str, Any]
  objective: ObjectiveFn | None
  pairwise: bool = False

  @property
  def trains(self) -> bool:
    return bool(self.personal_fields) or self.objective is not None

  def personal_config(self, groups: int) -> PersonalConfig | None:
    return PersonalConfig(groups=groups, **self.personal_fields) if self.personal_fields else None

  def prompts(self, examples, make_ctx: Callable[[Method], PromptContext]) -> list[str]:
    """The final prompt text of each example: its input rewritten by each prompting slot."""
    texts = [e.input for e in examples]
    for m in self.methods:
      if m.prompt is not None:
        texts = m.prompt(examples, texts, make_ctx(m))
        if len(texts) != len(examples):
          raise RuntimeError(f"method {m.name!r} returned {len(texts)} prompts for "
                             f"{len(examples)} examples")
    return texts


def get_method(name: str) -> Method:
  load_plugins()
  if name not in METHODS:
    near = difflib.get_close_matches(name, METHODS.names(), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, near))}?" if near else (
        f"known: {', '.join(METHODS.names())}")
    raise ConfigError(f"unknown method {name!r}; {hint}")
  return METHODS.get(name)


def compose(spec: str, granularity: "str | Granularity",
            options: Callable[[str], Mapping[str, Any]]) -> Recipe:
  """The `Recipe` for a '+'-joined method spec at a granularity, or a ConfigError saying why the
  combination is impossible. `options(name)` returns a method's config block."""
  granularity = parse_granularity(granularity)
  names = [n.strip() for n in spec.split("+")]
  if not all(names):
    raise ConfigError(f"empty method name in {spec!r}")
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ConfigError(f"method {dupes[0]!r} appears twice in {spec!r}")
  methods = tuple(get_method(n) for n in names)
  fields: dict[str, Any] = {}
  owner: dict[str, str] = {}
  objective, objective_owner, pairwise = None, None, False
  for m in methods:
    if granularity not in m.info.granularities:
      raise ConfigError(f"method {m.name!r} does not support granularity {granularity.value!r}; "
                        f"it supports {[g.value for g in m.info.granularities]}")
    if m.personal is not None:
      for key, value in m.personal(options(m.name)).items():
        if key in owner:
          raise ConfigError(f"methods {owner[key]!r} and {m.name!r} both set the personal "
                            f"parameter {key!r}; they cannot be combined")
        fields[key], owner[key] = value, m.name
    if m.objective is not None:
      if objective is not None:
        raise ConfigError(f"methods {objective_owner!r} and {m.name!r} both define the training "
                          "objective; they cannot be combined")
      # the method's options reach its objective bound, so configs can set e.g. dpo.beta
      objective = functools.partial(m.objective, options=dict(options(m.name)))
      objective_owner, pairwise = m.name, m.pairwise
  unknown = set(fields) - {f.name for f in dataclasses.fields(PersonalConfig)}
  if unknown:
    raise ConfigError(f"unknown personal parameter field(s) {sorted(unknown)}")
  if fields and objective is None:
    objective = lm_objective
  return Recipe(methods, fields, objective, pairwise)
