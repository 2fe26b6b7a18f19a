"""The granularity interface: a grouping maps each user to a group index in [0, G).

A granularity plugin (one file in `granularity/`) registers a `Grouping` whose `fit` sees the
training examples and returns `Groups`. Parameter methods keep one row of personal parameters
per group; prompting methods draw profile items from the pool the grouping's `PoolPolicy` puts
an example in (`perjax.pools`).
"""
import dataclasses
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from perjax.data.schema import PersonalizedExample, ProfileItem
from perjax.errors import ConfigError
from perjax.registry import GRANULARITIES, GRANULARITY_PACKAGE, calling_module, import_package
from perjax.taxonomy import Granularity


@dataclasses.dataclass(frozen=True)
class GroupingContext:
  """What a grouping may use besides the examples: its options, the seed, a sentence encoder."""
  options: Mapping[str, Any]
  seed: int = 0
  encoder: Callable[[], Any] | None = None  # lazily loads the configured sentence encoder


def oldest_first(item: ProfileItem, owner: str):
  """The default pool order: by item time (items without one first), else as collected."""
  return item.time if item.time is not None else float("-inf")


@dataclasses.dataclass(frozen=True)
class PoolPolicy:
  """How a grouping pools profile items for prompting methods.

  key(example, group) -> the pool the example draws from; examples with equal keys share one
  pool (indexed once for retrieval). header(key) -> what the pool holds, in words a prompt can
  show. order(item, owner) -> sort key of the pool's items (a stable sort).
  """
  key: Callable[[PersonalizedExample, int], Hashable]
  header: Callable[[Hashable], str]
  order: Callable[[ProfileItem, str], Any] = oldest_first


@dataclasses.dataclass(frozen=True)
class Groups:
  """A fitted grouping.

  known: user id -> group for users seen in training. assign_unseen: maps the examples of users
  never seen in training to groups (a fallback group, or the nearest persona). names: one label
  per group, for reports. pool: how prompting methods pool profile items under this grouping.
  """
  num_groups: int
  pool: PoolPolicy
  known: Mapping[str, int]
  assign_unseen: Callable[[Sequence[PersonalizedExample]], Mapping[str, int]]
  names: tuple[str, ...]

  def group_of(self, examples: Sequence[PersonalizedExample]) -> dict[str, int]:
    """user id -> group for every user of `examples`."""
    unseen = [e for e in examples if e.user_id not in self.known]
    out = dict(self.assign_unseen(unseen)) if unseen else {}
    out.update({e.user_id: self.known[e.user_id] for e in examples if e.user_id in self.known})
    return out

  def group_ids(self, examples: Sequence[PersonalizedExample]) -> np.ndarray:
    of = self.group_of(examples)
    return np.asarray([of[e.user_id] for e in examples], np.int32)


@dataclasses.dataclass(frozen=True)
class Grouping:
  """A registered granularity. `fit(train_examples, ctx) -> Groups`; `defaults` are its options
  (config block `config.granularities.<name>`, omitted when empty). `granularity` is its place
  on the taxonomy's axis: methods that support that level support this grouping.

  The core reads what a level is from here, never from its name: `shared` marks the level whose
  one row serves every user (its modules are trained first under `train.on=own_history`, export
  with a bare `--NAME` flag, and carry the non-personalized baseline of a sweep); `per_user`
  the level with a row of each user's own (the trivial per-user baselines are reported there).
  Reports and plots order levels as the taxonomy's axis does."""
  name: str
  granularity: Granularity
  fit: Callable[[Sequence[PersonalizedExample], GroupingContext], Groups]
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  description: str = ""
  shared: bool = False
  per_user: bool = False


def register(grouping: Grouping) -> Grouping:
  return GRANULARITIES.register(grouping.name, grouping, origin=calling_module())


def groupings() -> list[Grouping]:
  """Every registered granularity (the shipped ones loaded), in the taxonomy's order."""
  import_package(GRANULARITY_PACKAGE)
  axis = list(Granularity)
  return sorted((g for _, g in GRANULARITIES.items()),
                key=lambda g: (axis.index(g.granularity), g.name))


def level_order() -> tuple[str, ...]:
  """The granularities' names in the taxonomy's order (for tables and plots)."""
  return tuple(g.name for g in groupings())


def taxonomy_levels() -> tuple[str, ...]:
  """The grouping of each level of the taxonomy's axis (the one named as its level), in order:
  the default grid of a sweep."""
  return tuple(g.name for g in groupings() if g.name == g.granularity.value)


def is_shared(level: str | None) -> bool:
  """Whether `level` is a registered granularity whose one row serves every user."""
  return any(g.shared and g.name == level for g in groupings())


def level_where(flag: str) -> str:
  """The name of the one granularity with `flag` ("shared" or "per_user") set."""
  found = [g.name for g in groupings() if getattr(g, flag)]
  if len(found) != 1:
    raise ConfigError(f"exactly one registered granularity must be {flag}, found {found}")
  return found[0]


def fallback_to(group: int) -> Callable:
  """`assign_unseen` that sends every unseen user to one group."""
  return lambda examples: {e.user_id: group for e in examples}
