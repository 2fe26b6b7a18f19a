"""Top-k profile items per example from a pool chosen by granularity.

  user    - the example's own user's items;
  persona - the pooled items of every user of the example's persona;
  global  - every user's items.
A pool is the union of the profiles of the examples that share it, indexed once; its examples'
queries are answered in one batch. An example never sees an item of its own user that is not in
its own profile (that item may be its own target, or a later one), so pooling keeps the splits'
no-leak guarantees. Other users' items are all visible in persona and global pools.
"""
from typing import Callable, Mapping, Sequence

from perjax.data.schema import PersonalizedExample, ProfileItem
from perjax.errors import ConfigError
from perjax.retrieval.base import Retriever, make_retriever
from perjax.taxonomy import Granularity, parse_granularity


def pool_key(example: PersonalizedExample, pool_by: Granularity,
             persona_of: Mapping[str, str] | None = None) -> str:
  if pool_by == Granularity.USER:
    return "user:" + example.user_id
  if pool_by == Granularity.PERSONA:
    persona = (persona_of or {}).get(example.user_id, example.persona_id)
    if persona is None:
      raise ConfigError(f"example {example.id!r} has no persona; pass persona_of= (user -> "
                        "persona, e.g. from clustering) or pool by user/global")
    return "persona:" + str(persona)
  return "global"


def retrieve(examples: Sequence[PersonalizedExample], pool_by: "str | Granularity" = "user",
             retriever: "str | Retriever" = "bm25", k: int = 4, *,
             persona_of: Mapping[str, str] | None = None,
             query_text: Callable[[PersonalizedExample], str] | None = None,
             item_text: Callable[[ProfileItem], str] | None = None,
             **retriever_options) -> list[list[ProfileItem]]:
  """Per example, up to k profile items, best first.

  retriever: "bm25" | "dense" (pass encoder=) | "recency" | "random" (seed=), or an instance
  (reuse one DenseRetriever across calls to reuse its embedding cache). query_text / item_text
  choose the texts (defaults: example.input, item.text).
  """
  if k < 0:
    raise ConfigError(f"k must be >= 0, got {k}")
  pool_by = parse_granularity(pool_by)
  engine = make_retriever(retriever, **retriever_options)
  query_text = query_text or (lambda ex: ex.input)
  item_text = item_text or (lambda it: it.text)
  members: dict[str, list[int]] = {}
  for i, ex in enumerate(examples):
    members.setdefault(pool_key(ex, pool_by, persona_of), []).append(i)
  out: list[list[ProfileItem]] = [[] for _ in examples]
  for key in sorted(members):
    batch = [examples[i] for i in members[key]]
    owners, items, seen = [], [], {}
    for ex in batch:
      for it in ex.profile:
        if (ex.user_id, it.id) not in seen:
          seen[(ex.user_id, it.id)] = len(items)
          owners.append(ex.user_id)
          items.append(it)
    if not items or k == 0:
      continue
    own_count: dict[str, int] = {}
    for o in owners:
      own_count[o] = own_count.get(o, 0) + 1
    # Search deep enough that k allowed items survive the filter below.
    depth = min(len(items), k + max(own_count[ex.user_id] - len(ex.profile) for ex in batch))
    index = engine.index(items, [item_text(it) for it in items])
    ranked = engine.search(index, [query_text(ex) for ex in batch], depth,
                           [ex.id for ex in batch])
    for i, ex, positions in zip(members[key], batch, ranked):
      mine = {it.id for it in ex.profile}
      chosen = []
      for p in positions:
        if owners[p] != ex.user_id or items[p].id in mine:
          chosen.append(items[p])
          if len(chosen) == k:
            break
      out[i] = chosen
  return out
