"""Metric semantics on hand-checked cases."""
import math

import pytest

from perjax.metrics import (accuracy, bleu, compute_metrics, macro_f1, multilabel_f1,
                            preference_accuracy, rating_errors, rouge)
from perjax.errors import DataError


def test_accuracy_and_macro_f1_over_the_label_list():
  labels = ["a", "b", "c"]
  golds, preds = ["a", "a", "b", "b"], ["a", "zzz", "b", "a"]
  assert accuracy(golds, preds) == 0.5
  # a: p=1/2 r=1/2 f=1/2; b: p=1 r=1/2 f=2/3; c: never gold nor predicted -> 0
  assert macro_f1(golds, preds, labels) == pytest.approx((0.5 + 2 / 3 + 0) / 3)


def test_unparseable_rating_counts_as_the_farther_extreme():
  r = rating_errors(["1", "4", "3"], ["oops", "five", "2"])
  # gold 1 -> counted 5 (err 4); gold 4 -> counted 1 (err 3); gold 3: err 1
  assert r["MAE"] == pytest.approx(8 / 3)
  assert r["RMSE"] == pytest.approx(math.sqrt((16 + 9 + 1) / 3))
  assert rating_errors(["3"], ["?"])["MAE"] == 2  # a tie counts as 5


def test_rouge_is_the_mean_f_measure():
  r = rouge(["the cat sat", "a b c d"], ["the cat sat", "a x"])
  # second: 1 overlap, p=1/2 r=1/4 -> f=1/3 (rouge-1 and rouge-L alike)
  assert r["rouge-1"] == pytest.approx((1 + 1 / 3) / 2)
  assert r["rouge-L"] == pytest.approx((1 + 1 / 3) / 2)


def test_bleu_multilabel_preference():
  assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
  assert multilabel_f1(["joy, trust", "none"], ["joy", "anger"], ["joy", "trust", "anger"]) == (
      pytest.approx(2 * 1 / (2 + 2)))
  assert preference_accuracy([1.0, 0.0, 2.0], [0.5, 0.0, 3.0]) == pytest.approx(1 / 3)


def test_compute_metrics_by_name_and_errors():
  out = compute_metrics(("accuracy", "f1"), ["a"], ["a"], ["a", "b"])
  assert out == {"accuracy": 1.0, "f1": 0.5}
  with pytest.raises(DataError):
    accuracy(["a"], [])
  with pytest.raises(DataError):
    compute_metrics(("f1",), ["a"], ["a"])
