"""Trivial baselines on hand-built tasks, with expectations worked out by hand."""
import pytest

from perjax.baselines import baseline_predictions, baseline_scores
from perjax.data import PersonalizedExample, Profile, ProfileItem, Task, load_lamp
from perjax.data.pairs import FieldPair


def _ex(id, user, input, target, history, time=None):
  """history: [(input, target, time)] as profile items of fields x, y."""
  items = tuple(ProfileItem(f"{id}-{i}", {"x": x, "y": y}, t) for i, (x, y, t) in
                enumerate(history))
  return PersonalizedExample(id, user, input, target, Profile(items), time=time)


def _task(metrics, labels, train, dev):
  return Task("hand", "user", {"train": train, "dev": dev}, metrics, labels,
              profile_pair=FieldPair("x", "y", labels=labels))


def test_classification():
  train = [_ex(f"t{i}", "tr", "q", y, []) for i, y in enumerate("aab")]
  dev = [_ex("d1", "u1", "q1", "b", [("h1", "b", None), ("h2", "c", None), ("h3", "b", None)]),
         _ex("d2", "u2", "q2", "c", [("h1", "c", None), ("h2", "b", None)]),  # tie: latest, b
         _ex("d3", "u3", "q3", "a", []),  # no history: the global majority
         # its only item is the predicted one itself (same input): dropped, so the majority
         _ex("d4", "u4", "q4", "c", [("q4", "c", None)])]
  task = _task(("accuracy", "f1"), ("a", "b", "c"), train, dev)
  preds = baseline_predictions(task, "dev")
  assert preds == {"global_majority": dict.fromkeys(["d1", "d2", "d3", "d4"], "a"),
                   "user_majority": {"d1": "b", "d2": "b", "d3": "a", "d4": "a"}}
  scores = baseline_scores(task, "dev")
  assert scores["global_majority"]["accuracy"] == 0.25
  assert scores["user_majority"]["accuracy"] == 0.5
  # macro F1 over a, b, c: a: p=1/2 r=1 -> 2/3; b: p=1/2 r=1 -> 2/3; c: 0
  assert scores["user_majority"]["f1"] == pytest.approx((2 / 3 + 2 / 3) / 3)


def test_rating():
  stars = ("1", "2", "3", "4", "5")
  train = [_ex(f"t{i}", "tr", "m", y, []) for i, y in enumerate("554")]
  dev = [_ex("d1", "u1", "m1", "2", [("a", "1", 1.0), ("b", "2", 2.0), ("c", "4", 3.0),
                                     ("m1", "5", 4.0)], time=5.0),  # m1: the predicted movie
         _ex("d2", "u2", "m2", "4", [("a", "3", 1.0), ("b", "4", 2.0),
                                     ("c", "1", 9.0)], time=5.0)]  # c: rated later
  task = _task(("MAE", "RMSE"), stars, train, dev)
  preds = baseline_predictions(task, "dev")
  assert preds["global_majority"] == {"d1": "5", "d2": "5"}
  assert preds["user_mean"] == {"d1": "2", "d2": "4"}  # 7/3 -> 2; 3.5 -> 4 (half up)
  assert preds["user_mean_raw"] == {"d1": "2.33333", "d2": "3.5"}
  scores = baseline_scores(task, "dev")
  assert scores["user_mean"] == {"MAE": 0.0, "RMSE": 0.0}
  assert scores["user_mean_raw"]["MAE"] == pytest.approx((0.33333 + 0.5) / 2)
  assert scores["global_majority"]["MAE"] == pytest.approx((3 + 1) / 2)


def test_generation_predicts_the_latest_allowed_target():
  dev = [_ex("d1", "u1", "article", "gold headline",
             [("old", "first", 1.0), ("newer", "second", 2.0), ("x", "gold headline", 3.0),
              ("later", "future", 8.0)], time=5.0),
         _ex("d2", "u2", "article", "g", [])]
  task = Task("gen", "user", {"train": [], "dev": dev}, ("rouge-1",), None,
              profile_pair=FieldPair("x", "y"))
  # "gold headline" is the example's own answer, "future" comes after it.
  assert baseline_predictions(task, "dev") == {"user_last": {"d1": "second", "d2": ""}}


def test_lamp_tiny_user_majority_counts_own_categories(shared_data):
  tiny = shared_data / "lamp_tiny"
  if not tiny.is_dir():
    pytest.skip(f"LaMP sample not found at {tiny}")
  task = load_lamp(tiny, "LaMP_22_")
  preds = baseline_predictions(task, "dev")["user_majority"]
  for e in task.splits["dev"]:
    cats = [it.fields["category"] for it in e.profile]
    assert cats.count(preds[e.id]) == max(cats.count(c) for c in cats)
  assert set(baseline_scores(task, "dev")) == {"global_majority", "user_majority"}
