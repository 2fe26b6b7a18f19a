"""Own-history training pairs: a user's pairs come from their own earlier profile items only,
never another user's, never the item being predicted, never anything later."""
import dataclasses
import json

import pytest

from perjax.data import PersonalizedExample, Profile, ProfileItem, load_dataset, load_lamp
from perjax.data.own_history import own_history_pairs, user_history_pairs


def _check_pairs(task, examples):
  """The no-leak properties of every example's pairs; returns how many pairs there were."""
  profiles_of = {}
  for e in task.examples():
    profiles_of.setdefault(e.user_id, set()).update(it.id for it in e.profile)
  total = 0
  for e in examples:
    own = {it.id for it in e.profile}
    others = set().union(*(ids for u, ids in profiles_of.items() if u != e.user_id)) - own
    for x, y, item in own_history_pairs(task, e):
      assert item.id in own and item.id not in others
      assert item.id != e.id and x.strip() != e.input.strip()
      if item.time is not None and e.time is not None:
        assert item.time < e.time
      assert (x, y) == task.profile_pair(item)
      total += 1
  return total


@pytest.mark.parametrize("split", ["time", "user"])
def test_synthetic_pairs_are_own_earlier_and_in_task_format(split):
  task = load_dataset("synthetic", split=split, n_personas=2, users_per_persona=2,
                      examples_per_user=6, profile_size=8)
  assert _check_pairs(task, task.examples()) > 0
  e = task.splits["test"][0]
  x, y, _ = own_history_pairs(task, e)[-1]
  assert x.startswith("Topic: ") and x.endswith(e.input[e.input.index("Which option"):])
  assert y in task.labels


def test_the_predicted_item_and_later_items_are_dropped():
  task = load_dataset("synthetic", split="time", n_personas=1, users_per_persona=2,
                      examples_per_user=4, profile_size=4)
  e = task.splits["test"][0]
  # The example's own record (same question) and a later one, smuggled into its profile.
  topic, item = e.input.split(". ")[0][7:], e.input.split(". ")[1][6:]
  own = ProfileItem("own-target", {"topic": topic, "item": item, "choice": e.target}, e.time - 1)
  later = ProfileItem("later", {"topic": topic, "item": "x", "choice": e.target}, e.time + 1)
  same_id = ProfileItem(e.id, {"topic": topic, "item": "y", "choice": e.target}, 0.0)
  poisoned = dataclasses.replace(e, profile=Profile(e.profile.items + (own, later, same_id)))
  kept = {it.id for _, _, it in own_history_pairs(task, poisoned)}
  assert kept == {it.id for it in e.profile}


def test_a_user_row_gets_the_pairs_all_its_examples_allow():
  task = load_dataset("synthetic", split="user", n_personas=2, users_per_persona=2,
                      examples_per_user=6, profile_size=8)
  held_out = task.splits["test"]
  rows = user_history_pairs(task, held_out)
  assert set(rows) == {e.user_id for e in held_out}
  for user, pairs in rows.items():
    mine = [e for e in held_out if e.user_id == user]
    first = min(e.time for e in mine)
    assert pairs and all(it.time < first for _, _, it in pairs)
    assert {it.id for _, _, it in pairs} <= {it.id for e in mine for it in e.profile}
    assert not {x for x, _, _ in pairs} & {e.input for e in mine}


def test_untimed_items_must_be_in_every_example_profile(tmp_path):
  q = [{"id": "1", "user_id": "a", "input": "Generate a headline for the following article: A",
        "profile": [{"id": "p1", "text": "old", "title": "t1"}]},
       {"id": "2", "user_id": "a", "input": "Generate a headline for the following article: B",
        "profile": [{"id": "p1", "text": "old", "title": "t1"},
                    {"id": "p2", "text": "A", "title": "the gold of 1"}]}]
  (tmp_path / "dev_questions.json").write_text(json.dumps(q))
  (tmp_path / "dev_outputs.json").write_text(json.dumps(
      {"task": "LaMP_4", "golds": [{"id": "1", "output": "the gold of 1"},
                                   {"id": "2", "output": "y"}]}))
  task = load_lamp(tmp_path)
  e1, e2 = task.splits["dev"]
  assert [it.id for _, _, it in own_history_pairs(task, e2)] == ["p1", "p2"]
  # p2 is example 1's own article and headline: it may not train the row serving both.
  assert [it.id for _, _, it in user_history_pairs(task, [e1, e2])["a"]] == ["p1"]


def test_lamp_tiny_pairs(shared_data):
  tiny = shared_data / "lamp_tiny"
  if not tiny.is_dir():
    pytest.skip(f"LaMP sample not found at {tiny}")
  task = load_lamp(tiny, "LaMP_22_")
  assert _check_pairs(task, task.examples()) > 0
  e = task.splits["dev"][0]
  x, y, item = own_history_pairs(task, e)[0]
  head = e.input[:e.input.index("article: ") + len("article: ")]
  assert x == head + item.fields["text"] and y == item.fields["category"] in task.labels
  assert load_lamp(tiny, "LaMP_11_").profile_pair is None  # LaMP-1 items form no pair


def test_movielens_pairs(shared_data):
  if not (shared_data / "movielens").is_dir():
    pytest.skip(f"MovieLens not found at {shared_data / 'movielens'}")
  for name in ("movielens-rating", "movielens-tagging"):
    task = load_dataset(name, data_dir=shared_data, split="user", max_profile=24,
                        **({"max_users": 20, "max_ratings_per_user": 30}
                           if name == "movielens-rating" else {}))
    assert _check_pairs(task, task.splits["test"]) > 0
    for e in task.splits["test"]:
      user = e.user_id[2:]
      for x, y, item in own_history_pairs(task, e):
        assert item.id.startswith(user + "-") and y in task.labels and x == item.fields["movie"]


def test_every_builder_states_its_pairs():
  # Preference data has no profiles; every other builder sets profile_pair.
  task = load_dataset("synthetic")
  assert task.profile_pair is not None
  ex = PersonalizedExample("e", "u", "in", "red", Profile((ProfileItem("p", {"choice": "red"}),)))
  assert own_history_pairs(task, ex) == []  # an item without topic and item forms no pair
