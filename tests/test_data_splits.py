"""Splits and the synthetic task: no files needed."""
import pytest

from perjax.data import ProfileItem, Record, history_splits, load_dataset
from perjax.errors import ConfigError


def _records(n_users=6, per_user=12):
  out = []
  for u in range(n_users):
    for i in range(per_user):
      t = float(i // 2)  # pairs share a timestamp: ties must not leak across the cut
      out.append(Record(id=f"{u}-{i}", user_id=f"u{u}", input=f"q{i}", target=str(i % 3),
                        item=ProfileItem(f"{u}-{i}", {"text": f"q{i}"}, t), time=t))
  return out


def assert_no_user_leak(splits):
  users = {s: {e.user_id for e in v} for s, v in splits.items()}
  assert not users["train"] & users["test"]
  assert not users["train"] & users["dev"]
  assert not users["dev"] & users["test"]


def assert_no_time_leak(splits):
  """Every train example and every profile item precedes the user's test examples."""
  first_test = {}
  for e in splits["test"]:
    first_test[e.user_id] = min(first_test.get(e.user_id, float("inf")), e.time)
  for s, examples in splits.items():
    for e in examples:
      cut = first_test.get(e.user_id)
      if cut is None:
        continue
      if s != "test":
        assert e.time < cut, (e.id, e.time, cut)
      assert all(it.time < cut for it in e.profile), e.id


def _ids(splits):
  return {s: [e.id for e in v] for s, v in splits.items()}


@pytest.mark.parametrize("by", ["user", "time", "random"])
def test_splits_nonempty_and_deterministic(by):
  a = history_splits(_records(), by=by, seed=3)
  assert all(a[s] for s in ("train", "dev", "test"))
  assert _ids(a) == _ids(history_splits(_records(), by=by, seed=3))
  assert _ids(a) != _ids(history_splits(_records(), by=by, seed=4)) or by == "time"


def test_user_split_has_no_user_leak():
  assert_no_user_leak(history_splits(_records(), by="user", seed=0))


def test_time_split_has_no_time_leak():
  assert_no_time_leak(history_splits(_records(), by="time", seed=0))


def test_profiles_never_hold_the_example_itself():
  for by in ("user", "time", "random"):
    for examples in history_splits(_records(), by=by, causal=by != "random").values():
      for e in examples:
        assert e.id not in {it.id for it in e.profile}


def test_unknown_split_is_a_config_error():
  with pytest.raises(ConfigError):
    history_splits(_records(), by="season")
  with pytest.raises(ConfigError):
    load_dataset("synthetic", split="random")


@pytest.mark.parametrize("split", ["time", "user"])
def test_synthetic_task(split):
  kw = dict(split=split, seed=1, n_personas=3, users_per_persona=3, examples_per_user=8,
            profile_size=10)
  task = load_dataset("synthetic", **kw)
  again = load_dataset("synthetic", **kw)
  assert _ids(task.splits) == _ids(again.splits)
  assert all(task.splits[s] for s in ("train", "dev", "test"))
  assert task.primary_metric == "accuracy" and task.labels
  for e in task.examples():
    assert e.persona_id and e.target in task.labels and len(e.profile) == 10
  (assert_no_time_leak if split == "time" else assert_no_user_leak)(task.splits)


def test_synthetic_needs_personalization():
  """The input alone does not fix the answer: some inputs' topics have different answers for
  different users of the same persona, and the user's own same-topic picks predict the target."""
  task = load_dataset("synthetic", n_personas=2, users_per_persona=4, examples_per_user=20,
                      profile_size=30, override_prob=0.5)
  by_topic_persona = {}
  hits = total = 0
  for e in task.examples():
    topic = e.input.split(".")[0]
    by_topic_persona.setdefault((topic, e.persona_id), set()).add(e.target)
    picks = [it.fields["choice"] for it in e.profile if f"Topic: {it.fields['topic']}" == topic]
    if picks:
      total += 1
      hits += max(set(picks), key=picks.count) == e.target
  assert any(len(v) > 1 for v in by_topic_persona.values())
  assert hits / total > 0.95
