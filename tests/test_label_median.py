"""`predict.mode=label_median`: the label with the least expected absolute error, checked against
brute force over random label distributions."""
import numpy as np
import pytest

from perjax.errors import ConfigError, DataError
from perjax.experiment.predict import median_labels, predict, quantile_labels
from perjax.experiment.settings import EvalSettings

LABELS = ("1", "2", "3", "4", "5")


def _least_expected_error(logp, labels):
  p = np.exp(logp - logp.max())
  p /= p.sum()
  values = np.array([float(l) for l in labels])
  risk = [float(np.sum(p * np.abs(values - v))) for v in values]
  return labels[int(np.argmin(risk))], sorted(risk)


def test_median_minimises_expected_absolute_error():
  rng = np.random.default_rng(3)
  scores = rng.normal(scale=2.0, size=(400, 5)).astype(np.float32)
  got = median_labels(scores, LABELS)
  for row, label in zip(scores, got):
    best, risks = _least_expected_error(row, LABELS)
    if risks[1] - risks[0] > 1e-5:  # a unique minimiser (ties: any of them is a median)
      assert label == best


def test_median_differs_from_the_mode_where_mass_is_spread():
  # 5 is the single most likely label, but 4 is nearer on average: P(3)=.25, P(4)=.3, P(5)=.45
  scores = np.log(np.array([[1e-9, 1e-9, 0.25, 0.30, 0.45]], np.float32))
  assert median_labels(scores, LABELS) == ["4"]
  assert LABELS[int(np.argmax(scores))] == "5"


def test_median_follows_numeric_order_not_label_order():
  labels = ("5", "1", "3")
  scores = np.log(np.array([[0.4, 0.35, 0.25]], np.float32))  # P(1)=.35, P(3)=.25, P(5)=.4
  assert median_labels(scores, labels) == ["3"]


def test_label_median_needs_numeric_labels():
  with pytest.raises(ConfigError, match="numeric labels"):
    predict(None, None, ["p"], [0], ("comedy", "drama"), EvalSettings(mode="label_median"))


def test_decision_rules_rescore_a_recorded_run(tmp_path):
  from perjax.reporting.decision_rules import main, rule_metrics
  # targets 4 and 2; distributions whose mode and median differ on the first row
  records = [
      {"id": "a", "target": "4", "label_probs": {"1": 0, "2": 0, "3": .25, "4": .3, "5": .45}},
      {"id": "b", "target": "2", "label_probs": {"1": .1, "2": .6, "3": .1, "4": .1, "5": .1}},
  ]
  scores = rule_metrics(records, ("MAE",))
  assert scores["label_likelihood"]["MAE"] == pytest.approx((1 + 0) / 2)  # 5 for 4, 2 for 2
  assert scores["label_median"]["MAE"] == pytest.approx(0.0)             # 4 for 4, 2 for 2
  (tmp_path / "predictions.jsonl").write_text("\n".join(__import__("json").dumps(r)
                                                        for r in records))
  assert main([str(tmp_path)]) == 0
  (tmp_path / "predictions.jsonl").write_text('{"id": "a", "target": "4", "prediction": "4"}\n')
  assert main([str(tmp_path)]) == 1  # no label distributions recorded: one error line


def test_quantiles_walk_the_cdf_in_numeric_order():
  labels = ("5", "1", "3")
  scores = np.log(np.array([[0.4, 0.35, 0.25]], np.float32))  # CDF over 1, 3, 5: .35, .6, 1
  assert [quantile_labels(scores, labels, q)[0] for q in (0.3, 0.35, 0.5, 0.6, 0.61, 1.0)] == \
      ["1", "1", "3", "3", "5", "5"]
  assert quantile_labels(scores, labels, 0.5) == median_labels(scores, labels)
  with pytest.raises(ValueError, match="quantile"):
    quantile_labels(scores, labels, 0.0)


def test_decision_rules_score_requested_quantiles(tmp_path, capsys):
  from perjax.reporting.decision_rules import main, rule_metrics
  records = [
      {"id": "a", "target": "5", "label_probs": {"1": 0, "2": 0, "3": .25, "4": .3, "5": .45}},
      {"id": "b", "target": "2", "label_probs": {"1": .1, "2": .6, "3": .1, "4": .1, "5": .1}},
  ]
  scores = rule_metrics(records, ("MAE",), quantiles=(0.6,))
  # q = .6: row a's CDF over 3, 4, 5 is .25, .55, 1 -> 5; row b's .1, .7 -> 2
  assert scores["label_quantile_0.6"]["MAE"] == pytest.approx(0.0)
  assert scores["label_median"]["MAE"] == pytest.approx((1 + 0) / 2)  # 4 for a's 5
  (tmp_path / "predictions.jsonl").write_text("\n".join(__import__("json").dumps(r)
                                                        for r in records))
  assert main(["--quantiles", "0.6", str(tmp_path)]) == 0
  assert "label_quantile_0.6\tMAE=0.0000" in capsys.readouterr().out
  assert main(["--quantiles", "1.5", str(tmp_path)]) == 2
  assert "--quantiles must each be in (0, 1]" in capsys.readouterr().err
  records = [{"id": "c", "target": "drama", "label_probs": {"comedy": .4, "drama": .6}}]
  with pytest.raises(DataError, match="--quantiles needs numeric labels"):
    rule_metrics(records, ("accuracy",), quantiles=(0.6,))


def test_decision_rules_score_an_ensemble_of_runs(tmp_path, capsys):
  import json
  from perjax.reporting.decision_rules import ensemble_records, main
  # each run alone answers 5 for row a (median); their mean distribution answers 3
  runs = [[{"id": "a", "target": "3", "label_probs": {"1": .1, "3": .3, "5": .6}}],
          [{"id": "a", "target": "3", "label_probs": {"1": .3, "3": .3, "5": .4}}]]
  merged = ensemble_records(runs)
  assert merged[0]["label_probs"] == pytest.approx({"1": .2, "3": .3, "5": .5})
  dirs = []
  for i, records in enumerate(runs):
    (tmp_path / f"r{i}").mkdir()
    (tmp_path / f"r{i}" / "predictions.jsonl").write_text(json.dumps(records[0]))
    dirs.append(str(tmp_path / f"r{i}"))
  assert main([dirs[0]]) == 0 and "label_median\tMAE=2.0000" in capsys.readouterr().out
  assert main(["--ensemble", *dirs]) == 0
  assert "ensemble of 2 runs\tlabel_median\tMAE=0.0000" in capsys.readouterr().out
  (tmp_path / "r1" / "predictions.jsonl").write_text(json.dumps({**runs[1][0], "id": "b"}))
  assert main(["--ensemble", *dirs]) == 1
  assert "same examples" in capsys.readouterr().err
  assert main(["--ensemble", dirs[0]]) == 2  # one run is not an ensemble
  (tmp_path / "r1" / "predictions.jsonl").write_text(json.dumps({"id": "a", "target": "3"}))
  assert main(["--ensemble", *dirs]) == 1
  assert "no label distributions" in capsys.readouterr().err
