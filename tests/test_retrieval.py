"""Retrieval over user / persona / global pools, with a tiny fake encoder for the dense path."""
import numpy as np
import pytest

from perjax.data import PersonalizedExample, Profile, ProfileItem, load_dataset
from perjax.errors import ConfigError
from perjax.grouping import GroupingContext
from perjax.pools import Pools
from perjax.registry import GRANULARITIES, load_plugins
from perjax.retrieval import DenseRetriever, retrieve
from perjax.retrieval.bench import bench_bm25

load_plugins()


def pools_of(granularity, examples, sources=None):
  ctx = GroupingContext(options=GRANULARITIES.get(granularity).defaults)
  groups = GRANULARITIES.get(granularity).fit(examples, ctx)
  return Pools(sources or examples, groups)


class BagOfWordsEncoder:
  """Hashes words into a small normalised vector; counts how many texts it encoded."""

  def __init__(self, dim=64):
    self.dim, self.calls = dim, 0

  def encode(self, texts):
    self.calls += len(texts)
    out = np.zeros((len(texts), self.dim), np.float32)
    for i, t in enumerate(texts):
      for w in t.lower().split():
        out[i, sum(map(ord, w)) % self.dim] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _item(uid, i, text, t):
  return ProfileItem(f"{uid}-{i}", {"text": text}, float(t))


def _examples():
  texts = ["cats purr softly", "dogs bark loudly", "stock markets fell", "rain in spain",
           "cats chase mice"]
  out = []
  for u in ("alice", "bob"):
    items = tuple(_item(u, i, f"{u} {t}", i) for i, t in enumerate(texts))
    for j in range(2, 5):  # causal profiles: example j sees items before j
      out.append(PersonalizedExample(id=f"{u}-ex{j}", user_id=u, input=texts[j - 2],
                                     target="x", profile=Profile(items[:j]), persona_id="p",
                                     time=float(j)))
  return out


def _ids(result):
  return [[it.id for it in items] for items in result]


@pytest.mark.parametrize("retriever", ["bm25", "dense", "recency", "random"])
@pytest.mark.parametrize("granularity", ["user", "persona", "global"])
def test_never_leaks_own_items_outside_profile(retriever, granularity):
  examples = _examples()
  pools = pools_of(granularity, examples)
  kw = {"encoder": BagOfWordsEncoder()} if retriever == "dense" else {}
  result = retrieve(examples, retriever, 3, pools=pools, **kw)
  for ex, items in zip(examples, result):
    mine = {it.id for it in ex.profile}
    assert len(items) == min(3, len(ex.profile) if granularity == "user" else 99)
    for it in items:
      assert it.id in mine or not it.id.startswith(ex.user_id)
      assert it in pools.visible(ex)  # retrieval ranks within what ctx.pool(example) shows
    if granularity == "user":
      assert all(it.id in mine for it in items)
  assert _ids(result) == _ids(retrieve(examples, retriever, 3, pools=pools, **kw))


def test_pools_hold_training_profiles_and_say_what_they_hold():
  # Train: bob; evaluated: alice. The global and persona pools hold bob's training profiles;
  # alice-ex2 sees her own profile (items 0, 1), not her later items (in alice-ex4's profile).
  examples = _examples()
  train, evaluated = examples[3:], examples[:3]
  for granularity, header in (("global", "Past items of all users"),
                              ("persona", "Past items of users with this user's persona"),
                              ("user", "Past items of this user")):
    pools = pools_of(granularity, train, train + evaluated)
    assert len(pools.of(evaluated[0]).items) == (4 if granularity == "user" else 8)
    seen = {it.id for it in pools.visible(evaluated[0])}
    assert {"alice-0", "alice-1"} <= seen and not seen & {"alice-2", "alice-3", "alice-4"}
    assert ({"bob-0", "bob-1", "bob-2", "bob-3"} <= seen) == (granularity != "user")
    assert pools.header(evaluated[0]) == header
  times = [it.time for it in pools_of("global", examples).visible(examples[-1])]
  assert times == sorted(times)  # the default order: oldest first


def test_user_pools_keep_unseen_users_apart():
  pools = pools_of("user", _examples()[:3])  # alice trains; bob is unseen (fallback group)
  bob = _examples()[-1]
  assert {it.id.split("-")[0] for it in pools.visible(bob)} == {"bob"}


def test_bm25_and_dense_rank_the_matching_item_first():
  ex = _examples()[1]  # alice-ex3, input "dogs bark loudly", profile items 0..2
  for retriever, kw in (("bm25", {}), ("dense", {"encoder": BagOfWordsEncoder()})):
    top = retrieve([ex], retriever=retriever, k=1, **kw)[0]
    assert top[0].id == "alice-1", retriever


def test_recency_returns_newest_first():
  ex = _examples()[2]  # profile items 0..3
  assert [it.id for it in retrieve([ex], retriever="recency", k=2)[0]] == ["alice-3", "alice-2"]


def test_dense_encodes_each_pool_once_and_caches():
  enc = BagOfWordsEncoder()
  dense = DenseRetriever(enc)
  examples = _examples()
  pools = pools_of("global", examples)
  retrieve(examples, dense, 2, pools=pools)
  first = enc.calls
  assert first == 8 + len(examples)  # 8 distinct items once, then the queries in a batch
  retrieve(examples, dense, 4, pools=pools)
  assert enc.calls == first + len(examples)  # the pool came from the cache


def test_own_profile_by_default_and_k_zero():
  ex = PersonalizedExample("e", "u", "q", "t", Profile((_item("u", 0, "x", 0),)))
  assert retrieve([ex], k=1)[0][0].id == "u-0"
  # an example outside the pools' sources still sees its own profile
  assert retrieve([ex], k=1, pools=pools_of("global", _examples()))[0][0].id == "u-0"
  assert retrieve([ex], k=0) == [[]]
  with pytest.raises(ConfigError, match="k must be >= 0"):
    retrieve([ex], k=-1)


def test_user_pool_bm25_recovers_synthetic_preferences():
  task = load_dataset("synthetic", n_personas=2, users_per_persona=3, examples_per_user=10)
  test = task.splits["test"]
  hits = 0
  for ex, items in zip(test, retrieve(test, "bm25", 3)):
    topic = ex.input.split(".")[0].removeprefix("Topic: ")
    picks = [it.fields["choice"] for it in items if it.fields["topic"] == topic]
    hits += bool(picks) and max(set(picks), key=picks.count) == ex.target
  assert hits / len(test) > 0.8


def test_bench_bm25_small():
  r = bench_bm25(n_items=300, n_queries=20)
  assert r["n_items"] == 300 and r["queries_per_s"] > 0
