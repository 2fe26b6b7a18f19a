"""The profile items a prompting method may show an example: its grouping's pool, minus what
the no-leak rule hides.

A pool collects the profile items of every source example (a run's training and evaluation
examples) that the grouping's `PoolPolicy.key` puts in it, once per (user, item id), in the
policy's order. So the global pool holds every user's items, the training users' profiles
included, and a persona pool its members' items from every split.

The no-leak rule (`may_see`), applied here and nowhere else: an example never sees an item of
its own user that is not in its own profile. Such an item may be the example's own target, or
come after it. Other users' items in the pool are all visible.
"""
import dataclasses
import functools
from typing import Hashable, Iterable, Sequence

from perjax.data.schema import PersonalizedExample, ProfileItem
from perjax.grouping import Groups, PoolPolicy

# Without a grouping, each user's pool is that user's own profile.
OWN_PROFILE = PoolPolicy(key=lambda example, group: example.user_id,
                         header=lambda key: "Past items of this user")


@dataclasses.dataclass(frozen=True)
class Pool:
  key: Hashable
  header: str
  items: tuple[ProfileItem, ...]
  owners: tuple[str, ...]  # the user of each item


def may_see(example: PersonalizedExample, owner: str, item: ProfileItem,
            own_ids: frozenset[str]) -> bool:
  """The no-leak rule; `own_ids` are the ids of the example's own profile items."""
  return owner != example.user_id or item.id in own_ids


def own_ids(example: PersonalizedExample) -> frozenset[str]:
  return frozenset(it.id for it in example.profile)


class Pools:
  """The pools of a grouping over a set of source examples, collected on first use (a run
  without a prompting method never pays for them)."""

  def __init__(self, sources: Sequence[PersonalizedExample], groups: Groups | None = None):
    self.sources = list(sources)
    self.groups = groups
    self.policy = groups.pool if groups is not None else OWN_PROFILE
    self._group_of: dict[str, int] | None = None

  @functools.cached_property
  def _pools(self) -> dict[Hashable, Pool]:
    collected: dict[Hashable, dict[tuple[str, str], ProfileItem]] = {}
    for e in self.sources:
      items = collected.setdefault(self.key(e), {})
      for it in e.profile:
        items.setdefault((e.user_id, it.id), it)
    pools = {}
    for key, items in collected.items():
      ordered = sorted(items.items(), key=lambda kv: self.policy.order(kv[1], kv[0][0]))
      pools[key] = Pool(key, self.policy.header(key), tuple(it for _, it in ordered),
                        tuple(owner for (owner, _), _ in ordered))
    return pools

  @functools.cached_property
  def _known(self) -> set[tuple[str, str]]:
    return {(o, it.id) for p in self._pools.values() for o, it in zip(p.owners, p.items)}

  def key(self, example: PersonalizedExample) -> Hashable:
    if self.groups is None:
      return self.policy.key(example, 0)
    if self._group_of is None:  # every source's group in one call (one encoder pass)
      self._group_of = self.groups.group_of(self.sources) if self.sources else {}
    if example.user_id not in self._group_of:
      self._group_of.update(self.groups.group_of([example]))
    return self.policy.key(example, self._group_of[example.user_id])

  def pool(self, key: Hashable) -> Pool:
    return self._pools.get(key) or Pool(key, self.policy.header(key), (), ())

  def of(self, example: PersonalizedExample) -> Pool:
    return self.pool(self.key(example))

  def header(self, example: PersonalizedExample) -> str:
    return self.of(example).header

  def visible(self, example: PersonalizedExample) -> list[ProfileItem]:
    """The items of the example's pool it may see, in the pool's order."""
    pool = self.including([example]).of(example)
    mine = own_ids(example)
    return [it for it, o in zip(pool.items, pool.owners) if may_see(example, o, it, mine)]

  def including(self, examples: Iterable[PersonalizedExample]) -> "Pools":
    """These pools, with `examples` added as sources where their profiles hold items the pools
    lack (an example from outside the sources still sees its own profile)."""
    examples = list(examples)
    if all((e.user_id, it.id) in self._known for e in examples for it in e.profile):
      return self
    return Pools(self.sources + examples, self.groups)
