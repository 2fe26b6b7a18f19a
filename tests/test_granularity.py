"""Granularity groupings: ids in [0, G), fallbacks for unseen users, persona labels or k-means."""
import numpy as np
import pytest

from perjax.data.schema import PersonalizedExample, Profile, ProfileItem
from perjax.grouping import GroupingContext
from perjax.registry import GRANULARITIES, load_plugins
from perjax.taxonomy import Granularity

load_plugins()


def ex(user, persona=None, words=()):
  items = tuple(ProfileItem(f"{user}-{i}", {"text": w}, float(i)) for i, w in enumerate(words))
  return PersonalizedExample(f"{user}-x", user, "q", "a", Profile(items), persona)


class WordEncoder:
  """A fake sentence encoder: one axis per known word."""
  VOCAB = ("cat", "dog", "car", "bus")

  def encode(self, texts):
    return np.asarray([[float(w in t.split()) for w in self.VOCAB] for t in texts]) + 1e-3


def ctx(**options):
  return GroupingContext(options={"use_labels": True, "clusters": 2, "max_items": 8, **options},
                         seed=0, encoder=WordEncoder)


def test_registered():
  assert set(GRANULARITIES.names()) == {"user", "persona", "global"}
  for name, grouping in GRANULARITIES.items():
    assert grouping.granularity == Granularity(name)


def test_user_groups_and_fallback():
  groups = GRANULARITIES.get("user").fit([ex("b"), ex("a"), ex("b")], ctx())
  assert groups.num_groups == 3
  assert groups.group_ids([ex("a"), ex("b"), ex("new")]).tolist() == [0, 1, 2]


def test_global_is_one_group():
  groups = GRANULARITIES.get("global").fit([ex("a"), ex("b")], ctx())
  assert groups.num_groups == 1 and groups.group_ids([ex("a"), ex("zz")]).tolist() == [0, 0]


def test_persona_from_labels():
  train = [ex("a", "p1"), ex("b", "p0"), ex("c", "p1")]
  groups = GRANULARITIES.get("persona").fit(train, ctx())
  assert groups.num_groups == 3
  # a new user of a known persona joins it; an unknown persona falls back
  assert groups.group_ids([ex("a", "p1"), ex("b", "p0"), ex("d", "p0"), ex("e", "p9")]
                          ).tolist() == [1, 0, 0, 2]
  key = lambda e: groups.pool.key(e, groups.group_of([e])[e.user_id])
  assert key(ex("a", "p1")) == key(ex("c", "p1")) != key(ex("b", "p0"))
  # new users of two unseen personas share the fallback group's parameters, not a pool
  assert groups.group_ids([ex("e", "p8"), ex("f", "p9")]).tolist() == [2, 2]
  assert key(ex("e", "p8")) != key(ex("f", "p9"))


@pytest.mark.parametrize("use_labels", [False, True])
def test_persona_by_clustering(use_labels):
  # No labels (or labels switched off): k-means over profile embeddings, seeded.
  persona = None if use_labels else "ignored"
  train = [ex("a", persona, ["cat", "dog"]), ex("b", persona, ["dog", "cat"]),
           ex("c", persona, ["car", "bus"]), ex("d", persona, ["bus"])]
  grouping = GRANULARITIES.get("persona")
  groups = grouping.fit(train, ctx(use_labels=use_labels))
  ids = groups.group_ids(train).tolist()
  assert groups.num_groups == 2 and ids[0] == ids[1] != ids[2] == ids[3]
  new = groups.group_ids([ex("e", None, ["car"]), ex("f", None, ["cat"])]).tolist()
  assert new == [ids[2], ids[0]]  # new users join the nearest centroid
  assert grouping.fit(train, ctx(use_labels=use_labels)).known == groups.known  # deterministic
