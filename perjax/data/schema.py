"""The data model every method and experiment sees.

A personalized example pairs an input with the user's target and the user's profile (their
history). Preference examples hold a chosen/rejected response pair for a user or persona. A Task
bundles the splits with what is needed to score them (metric names, label set).
"""
import dataclasses
import hashlib
from typing import Callable, Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class ProfileItem:
  """One item of a user's history: named text fields and an optional time (seconds)."""
  id: str
  fields: Mapping[str, str]
  time: float | None = None

  @property
  def text(self) -> str:
    """All fields in order, the default text a retriever indexes."""
    return " ".join(str(v) for v in self.fields.values() if v)


@dataclasses.dataclass(frozen=True)
class Profile:
  """A user's history, oldest first where times are known."""
  items: tuple[ProfileItem, ...] = ()

  def __len__(self):
    return len(self.items)

  def __iter__(self):
    return iter(self.items)

  def __getitem__(self, i):
    return self.items[i]


@dataclasses.dataclass(frozen=True)
class PersonalizedExample:
  """An input whose target depends on who asks (user_id; persona_id when the data has personas)."""
  id: str
  user_id: str
  input: str
  target: str | None  # None where the gold is withheld (LaMP test files)
  profile: Profile = Profile()
  persona_id: str | None = None
  time: float | None = None


@dataclasses.dataclass(frozen=True)
class PreferenceExample:
  """`chosen` is preferred over `rejected` for this user/persona and prompt."""
  id: str
  user_id: str
  prompt: str
  chosen: str
  rejected: str
  persona_id: str | None = None


@dataclasses.dataclass
class Task:
  """A dataset ready for experiments.

  splits: name ("train", "dev", "test") -> examples. metrics: metric names, the first primary.
  labels: the fixed label list of a classification task (None otherwise). split_by: how the
  splits were drawn ("user", "time", "random", "query", or "official"). profile_pair: how one
  profile item becomes an (input, target) pair in the task's own format (the input the task's
  examples use, the item's own answer as target), None where an item cannot form one; None for
  a task whose items never can (see perjax.data.own_history). label_sets: a target is a set of
  labels, ", "-joined in the order of `labels` ("none" for the empty set), as multi-label
  emotion annotations are.
  """
  name: str
  granularity: str
  splits: dict[str, list]
  metrics: tuple[str, ...]
  labels: tuple[str, ...] | None = None
  split_by: str = "official"
  description: str = ""
  profile_pair: "Callable[[ProfileItem], tuple[str, str] | None] | None" = None
  # retrieval: the part of an example's input that describes its item (None: all of it), and
  # how a profile item reads in a prompt (None: its fields, "name: value, ...")
  query: "Callable[[PersonalizedExample], str] | None" = None
  item_text: "Callable[[ProfileItem], str] | None" = None
  label_sets: bool = False

  @property
  def primary_metric(self) -> str:
    return self.metrics[0]

  def examples(self, split: str | None = None) -> list:
    if split is not None:
      return self.splits[split]
    return [e for s in self.splits.values() for e in s]


def stable_id(*parts: object, n: int = 12) -> str:
  """A short id that is the same on every run and machine (Python's hash() is salted)."""
  h = hashlib.sha1("\x1f".join(map(str, parts)).encode("utf-8"))
  return h.hexdigest()[:n]


def profile_user_id(item_ids: Sequence[str]) -> str:
  """LaMP has no user ids: a user is identified by the set of their profile item ids."""
  return "u" + stable_id(*sorted(item_ids))
