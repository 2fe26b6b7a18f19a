"""Training protocols (`train.on`): which examples train which personal rows.

  train_split   the train split trains every module (its users' rows; unseen users get the
                fallback row)
  own_history   every evaluated user's row is trained on that user's own profile, each item as
                an (input, target) pair in the task's format (`data.own_history`; never the
                predicted item nor anything after it): the OPPU protocol
  both          the train split and the evaluated users' own histories together

With `own_history` or `both`, modules composed at the global level (`lora@global+lora`) are
trained first, alone, on the train split (a task adapter); then the run's own-level modules are
trained, the global ones frozen (OPPU: a task adapter, then personal residuals on top).
"""
import dataclasses

from perjax.data.own_history import user_history_pairs
from perjax.data.schema import PersonalizedExample, Profile
from perjax.errors import ConfigError
from perjax.grouping import is_shared

TRAIN_ON = ("train_split", "own_history", "both")


@dataclasses.dataclass(frozen=True)
class Stage:
  """One training stage: its examples, the modules it trains (None: all) and the subfolder of
  the workdir holding its checkpoints ("" for the workdir itself)."""
  examples: list
  trainable: tuple[str, ...] | None
  folder: str = ""


def own_history_examples(task, eval_examples) -> list[PersonalizedExample]:
  """The evaluated users' own-history pairs as examples of those users. Each one's profile is
  the user's earlier pairs' items, so a prompting method sees only what came before it."""
  persona = {e.user_id: e.persona_id for e in eval_examples}
  out = []
  for user, pairs in sorted(user_history_pairs(task, eval_examples).items()):
    for i, (text, target, item) in enumerate(pairs):
      out.append(PersonalizedExample(
          id=f"{user}#own#{item.id}", user_id=user, input=text, target=target,
          profile=Profile(tuple(p[2] for p in pairs[:i])), persona_id=persona[user],
          time=item.time))
  return out


def training_examples(on: str, task, train_examples, eval_examples) -> list:
  """The examples that train the run's own-level rows."""
  if on not in TRAIN_ON:
    raise ConfigError(f"train.on must be one of {list(TRAIN_ON)}, got {on!r}")
  if on == "train_split":
    return list(train_examples)
  if not all(isinstance(e, PersonalizedExample) for e in eval_examples):
    raise ConfigError(f"train.on={on} needs profiles; data set {task.name!r} has none")
  if task.profile_pair is None:
    raise ConfigError(f"train.on={on}: data set {task.name!r} does not say how a profile item "
                      "becomes a training pair")
  own = own_history_examples(task, eval_examples)
  return own if on == "own_history" else list(train_examples) + own


def stages(on: str, recipe, train_examples, fit_examples) -> list[Stage]:
  """The training stages of a recipe under `train.on`."""
  shared = [m.name for m in recipe.modules if is_shared(m.level)]
  own = [m.name for m in recipe.modules if not is_shared(m.level)]
  if on == "train_split" or not shared or not own:
    return [Stage(fit_examples, None)]
  return [Stage(list(train_examples), tuple(shared), "task_stage"),
          Stage(fit_examples, tuple(own))]
