"""perjax.stats against independent references: perjax.metrics on resampled lists, the exact
bootstrap distribution of a tiny set (every resample enumerated), and the known behaviour of
the paired test (identical systems: p ~ 1; equal quality: p ~ 0.5; clearly better: p < 0.05)."""
import itertools
import random

import numpy as np
import pytest

from perjax.metrics import compute_metrics, preference_accuracy
from perjax.stats import (bootstrap_ci, metric_on, paired_bootstrap, per_user_table,
                          seed_columns)

LABELS = ("a", "b", "c")
STARS = ("1", "2", "3", "4", "5")


def _data(seed=0, n=12):
  rng = random.Random(seed)
  return {
      "accuracy": ([rng.choice(LABELS) for _ in range(n)], [rng.choice(LABELS) for _ in range(n)]),
      "f1": ([rng.choice(LABELS) for _ in range(n)], [rng.choice(LABELS + ("zz",))
                                                      for _ in range(n)]),
      "MAE": ([rng.choice(STARS) for _ in range(n)], [rng.choice(STARS + ("x",))
                                                      for _ in range(n)]),
      "RMSE": ([rng.choice(STARS) for _ in range(n)], [rng.choice(STARS + ("3.5",))
                                                       for _ in range(n)]),
      "rouge-1": ([" ".join(rng.choices("the cat sat on a mat".split(), k=5)) for _ in range(n)],
                  [" ".join(rng.choices("the cat sat on a hat".split(), k=4)) for _ in range(n)]),
      "multilabel_f1": ([", ".join(rng.sample(LABELS, rng.randint(0, 2))) or "none"
                         for _ in range(n)],
                        [", ".join(rng.sample(LABELS, rng.randint(0, 2))) or "none"
                         for _ in range(n)]),
  }


@pytest.mark.parametrize("metric", ["accuracy", "f1", "MAE", "RMSE", "rouge-1", "rouge-L",
                                    "multilabel_f1", "bleu"])
def test_resampled_metric_equals_the_metric_on_resampled_lists(metric):
  golds, preds = _data()["rouge-1" if metric in ("rouge-L", "bleu") else metric]
  rng = np.random.default_rng(1)
  for indices in [range(len(golds)), rng.integers(0, len(golds), len(golds)), [0, 0, 3]]:
    want = compute_metrics([metric], [golds[i] for i in indices], [preds[i] for i in indices],
                           LABELS)[metric]
    assert metric_on(metric, golds, preds, list(indices), LABELS) == pytest.approx(want)


def test_preference_accuracy_from_score_pairs():
  pairs = [(0.5, 0.1), (0.1, 0.2), (1.0, 1.0), (2.0, -1.0)]
  assert metric_on("preference_accuracy", None, pairs, [0, 1, 2, 3]) == preference_accuracy(
      [c for c, _ in pairs], [r for _, r in pairs])
  assert metric_on("preference_accuracy", None, pairs, [0, 0, 1, 3]) == 0.75


def _exact_distribution(golds, per_seed, metric):
  """Every one of the N^N equally likely resamples: the seed-averaged metric of each."""
  n = len(golds)
  return np.array([np.mean([compute_metrics([metric], [golds[i] for i in idx],
                                            [run[i] for i in idx], LABELS)[metric]
                            for run in per_seed])
                   for idx in itertools.product(range(n), repeat=n)])


def test_ci_matches_the_exact_bootstrap_distribution():
  golds = ["1", "3", "5", "2", "4"]
  per_seed = [["2", "3", "3", "2", "5"], ["1", "4", "4", "2", "5"]]
  exact = _exact_distribution(golds, per_seed, "MAE")
  ci = bootstrap_ci(per_seed, golds, "MAE", n=20000, seed=3)
  lo, hi = np.quantile(exact, [0.025, 0.975])
  assert ci.value == pytest.approx((0.8 + 0.6) / 2)
  step = 0.1  # the atoms of a 2-seed, 5-example MAE lie 0.1 apart
  assert abs(ci.low - lo) <= step and abs(ci.high - hi) <= step


def test_paired_p_value_matches_the_exact_share_where_a_is_not_better():
  golds = ["a", "b", "c", "a"]
  a, b = ["a", "b", "a", "a"], ["a", "c", "c", "b"]
  exact_a = _exact_distribution(golds, [a], "accuracy")
  exact_b = _exact_distribution(golds, [b], "accuracy")
  want = np.mean(exact_a - exact_b <= 0)
  assert paired_bootstrap(a, b, golds, "accuracy", n=20000, seed=0) == pytest.approx(want,
                                                                                    abs=0.01)


def test_paired_test_behaviour():
  rng = random.Random(0)
  golds = [rng.choice(LABELS) for _ in range(200)]
  wrong = lambda g: LABELS[(LABELS.index(g) + 1) % 3]
  half = [g if i < 100 else wrong(g) for i, g in enumerate(golds)]
  other_half = [wrong(g) if i < 100 else g for i, g in enumerate(golds)]
  mostly = [g if i % 10 else wrong(g) for i, g in enumerate(golds)]
  assert paired_bootstrap(half, half, golds, "accuracy") == 1.0  # identical: never better
  assert 0.3 < paired_bootstrap(half, other_half, golds, "accuracy") < 0.7  # equal quality
  assert paired_bootstrap(mostly, half, golds, "accuracy") < 0.05
  assert paired_bootstrap(half, mostly, golds, "accuracy") > 0.95


def test_lower_is_better_for_errors_and_seeds_pool():
  rng = random.Random(1)
  golds = [rng.choice(STARS) for _ in range(150)]
  close = [[str(min(5, max(1, int(g) + rng.choice((-1, 0, 0, 1))))) for g in golds]
           for _ in range(3)]
  far = [[str(6 - int(g)) for g in golds] for _ in range(2)]
  assert paired_bootstrap(close, far, golds, "MAE") < 0.05
  assert paired_bootstrap(close, far, golds, "RMSE") < 0.05
  assert paired_bootstrap(far, close, golds, "MAE") > 0.95
  cols = seed_columns(close, golds, ("MAE", "RMSE"))
  assert cols["seeds"] == 3 and set(cols) == {"seeds"} | {
      f"{m}_{s}" for m in ("MAE", "RMSE") for s in ("mean", "std", "ci_low", "ci_high")}
  per_seed = [compute_metrics(["MAE"], golds, run)["MAE"] for run in close]
  assert cols["MAE_mean"] == pytest.approx(np.mean(per_seed))
  assert cols["MAE_std"] == pytest.approx(np.std(per_seed, ddof=1))
  assert cols["MAE_ci_low"] < cols["MAE_mean"] < cols["MAE_ci_high"]


def test_id_maps_align_by_id():
  golds = {"x": "a", "y": "b", "z": "c"}
  a = {"z": "c", "y": "b", "x": "a"}
  b = {"y": "a", "x": "b", "z": "c"}
  assert bootstrap_ci([a], golds, "accuracy").value == 1.0
  assert bootstrap_ci(b, golds, "accuracy").value == pytest.approx(1 / 3)
  assert paired_bootstrap(a, [b, b], golds, "accuracy", n=200) < 0.2


def test_per_user_table():
  records = [{"id": "1", "user_id": "u2", "prediction": "a", "target": "a"},
             {"id": "2", "user_id": "u1", "prediction": "b", "target": "a"},
             {"id": "3", "user_id": "u1", "prediction": "a", "target": "a"}]
  rows = per_user_table(records, metrics=("accuracy", "f1"), labels=LABELS)
  assert [(r["user_id"], r["examples"], r["accuracy"]) for r in rows] == [
      ("u1", 2, 0.5), ("u2", 1, 1.0)]
  assert rows[0]["f1"] == pytest.approx(compute_metrics(["f1"], ["a", "a"], ["b", "a"],
                                                        LABELS)["f1"])
  rows = per_user_table(records, golds={"1": "b", "2": "b", "3": "b"})
  assert [r["accuracy"] for r in rows] == [0.5, 0.0]
  prefs = [{"id": "1", "user_id": "u", "chosen_reward": 1.0, "rejected_reward": 0.0}]
  assert per_user_table(prefs, metrics=("preference_accuracy",))[0]["preference_accuracy"] == 1
