"""What a prompting slot sees and returns.

  prompt(examples, prompts, ctx) -> prompts

`prompts` holds each example's user message so far (the input, as rewritten by the methods
before this one). The slot returns one entry per example: a `str` (the new user message; the
system message stays as it is) or a `Prompt(text, system)`, which also sets that example's
system message (`""`: none; `None`: unchanged). The run starts from the config's
`prompt.system`; a later method's system message replaces an earlier one's.
"""
import dataclasses
from typing import Any, Callable, Mapping, Sequence

from perjax.data.schema import PersonalizedExample, ProfileItem
from perjax.pools import Pools


@dataclasses.dataclass(frozen=True)
class Prompt:
  """An example's user message and its system message (None: none, or unchanged in a slot's
  return value)."""
  text: str
  system: str | None = None


@dataclasses.dataclass(frozen=True)
class PromptContext:
  """What a prompting slot may use besides the examples.

  options: the method's config block. split: "train" or the evaluated split. pools: the
  granularity's pools; `pool(example)` is what the example may see and `pool_header(example)`
  says what that pool holds. system: the config's system message (None when empty). seed, and
  a lazily loaded sentence encoder (dense retrieval).

  For methods that let the model write part of the prompt (the runner fills these; None or
  empty outside a run): `generate(texts, max_new_tokens)` is the run's model answering each
  text as a user message, greedily, as loaded (before any training, personal modules off);
  `count_tokens(text)` counts with the run's tokenizer; `model` names the model for cache keys;
  `dev` are examples with gold targets to choose settings on (the dev split, else the training
  split); `score(examples, prompts)` is the task's primary metric of the model answering those
  prompts (the config's suffix appended), oriented so higher is better; `notes` collects what a
  method reports about its prompting (`note`): numbers go into the run's metrics.json,
  everything into DIR/prompting.json.
  """
  options: Mapping[str, Any]
  split: str
  pools: Pools
  system: str | None = None
  seed: int = 0
  encoder: Callable[[], Any] | None = None
  generate: Callable[[Sequence[str], int], list[str]] | None = None
  count_tokens: Callable[[str], int] | None = None
  model: str = ""
  dev: Sequence[PersonalizedExample] = ()
  score: "Callable[[Sequence[PersonalizedExample], Sequence[Prompt]], float] | None" = None
  notes: dict | None = None
  # the task's retrieval query and how its profile items read in a prompt (None: the whole
  # input; the item's fields): LaMP's per-task ones (perjax.data.lamp_prompts)
  query: "Callable[[PersonalizedExample], str] | None" = None
  item_text: "Callable[[ProfileItem], str] | None" = None
  # how a profile item becomes the task's (input, answer) pair (Task.profile_pair), or None
  pair: "Callable[[ProfileItem], tuple[str, str] | None] | None" = None

  def tokens(self, text: str) -> int:
    """`text`'s length in tokens: the run's tokenizer, else an estimate of one token per three
    characters (English BPE averages about four, so budgets err on the short side)."""
    if self.count_tokens is not None:
      return self.count_tokens(text)
    return -(-len(text) // 3)

  def note(self, key: str, value: Any, add: bool = False) -> None:
    """Reports `value` under `key`; `add`: a count, added to what earlier calls reported (the
    evaluation and each training stage build their prompts in separate calls)."""
    if self.notes is not None:
      self.notes[key] = self.notes.get(key, 0) + value if add else value

  def pool(self, example: PersonalizedExample) -> list[ProfileItem]:
    """The profile items of the example's pool that it may see (the no-leak rule applied), in
    the pool's order (oldest first by default)."""
    return self.pools.visible(example)

  def pool_header(self, example: PersonalizedExample) -> str:
    """What the example's pool holds, in words ("Past items of this user", ...)."""
    return self.pools.header(example)


def apply_prompts(methods, examples: Sequence[PersonalizedExample],
                  make_ctx: Callable[[Any], PromptContext],
                  system: str | None = None) -> list[Prompt]:
  """Each example's final `Prompt`: its input, then every prompting slot of `methods` in order;
  `system` is the message before any slot sets one."""
  texts = [e.input for e in examples]
  systems = [system] * len(examples)
  for m in methods:
    if m.prompt is None:
      continue
    out = m.prompt(examples, list(texts), make_ctx(m))
    if len(out) != len(examples):
      raise RuntimeError(f"method {m.name!r} returned {len(out)} prompts for "
                         f"{len(examples)} examples")
    for i, p in enumerate(out):
      if isinstance(p, Prompt):
        texts[i] = p.text
        systems[i] = systems[i] if p.system is None else p.system
      elif isinstance(p, str):
        texts[i] = p
      else:
        raise TypeError(f"method {m.name!r} returned a {type(p).__name__}; a prompt slot "
                        "returns a str or a Prompt per example")
  return [Prompt(t, s or None) for t, s in zip(texts, systems)]
