"""Top-k profile items per example from the example's pool (`perjax.pools`).

Examples that share a pool are answered together: the pool is indexed once and their queries
searched in one batch, deep enough that k items survive the no-leak rule (`pools.may_see`).
"""
import collections
from typing import Callable, Sequence

from perjax.data.schema import PersonalizedExample, ProfileItem
from perjax.errors import ConfigError
from perjax.pools import Pools, may_see, own_ids
from perjax.retrieval.base import Retriever, make_retriever


def retrieve(examples: Sequence[PersonalizedExample], retriever: "str | Retriever" = "bm25",
             k: int = 4, *, pools: Pools | None = None,
             query_text: Callable[[PersonalizedExample], str] | None = None,
             item_text: Callable[[ProfileItem], str] | None = None,
             **retriever_options) -> list[list[ProfileItem]]:
  """Per example, up to k items of its pool that it may see, best first.

  pools: the granularity's pools (a prompting method passes `ctx.pools`); default: each
  example's own profile. retriever: "bm25" | "dense" (pass encoder=) | "recency" | "random"
  (seed=), or an instance (reuse one DenseRetriever across calls to reuse its embedding cache).
  query_text / item_text choose the texts (defaults: example.input, item.text).
  """
  if k < 0:
    raise ConfigError(f"k must be >= 0, got {k}")
  pools = (pools or Pools(examples)).including(examples)
  engine = make_retriever(retriever, **retriever_options)
  query_text = query_text or (lambda ex: ex.input)
  item_text = item_text or (lambda it: it.text)
  members: dict = {}
  for i, ex in enumerate(examples):
    members.setdefault(pools.key(ex), []).append(i)
  out: list[list[ProfileItem]] = [[] for _ in examples]
  for key, indices in members.items():
    pool = pools.pool(key)
    if not pool.items or k == 0:
      continue
    batch = [examples[i] for i in indices]
    mine = [own_ids(ex) for ex in batch]
    # Search deep enough that k items survive the no-leak filter below: an example's hidden
    # items are its user's pool items beyond its own profile (which the pool holds).
    per_owner = collections.Counter(pool.owners)
    hidden = max(per_owner[ex.user_id] - len(m) for ex, m in zip(batch, mine))
    depth = min(len(pool.items), k + max(hidden, 0))
    index = engine.index(pool.items, [item_text(it) for it in pool.items])
    ranked = engine.search(index, [query_text(ex) for ex in batch], depth,
                           [ex.id for ex in batch])
    for i, ex, m, positions in zip(indices, batch, mine, ranked):
      chosen = [pool.items[p] for p in positions
                if may_see(ex, pool.owners[p], pool.items[p], m)]
      out[i] = chosen[:k]
  return out
