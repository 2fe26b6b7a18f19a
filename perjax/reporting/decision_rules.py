"""A finished run's label distributions (`label_probs` in predictions.jsonl, written in the
label_likelihood and label_median modes) scored under each decision rule, without running the
model again: the most likely label (`label_likelihood`), the median (`label_median`, numeric
labels) and, with `--quantiles`, other quantiles of the distribution (`label_quantile_Q`: the
first label whose CDF reaches Q). Choosing the rule on dev then costs one run, not one per rule.
With `--ensemble`, the runs (the same examples, e.g. one cell's seeds) are scored as one
predictor whose distribution is the mean of theirs.

  python -m perjax.reporting.decision_rules [--quantiles 0.55,0.6] [--ensemble] RUN_DIR [RUN_DIR ...]
"""
import sys

import numpy as np

from perjax.errors import DataError
from perjax.experiment.predict import median_labels, numeric_labels, quantile_labels
from perjax.experiment.outputs import read_records
from perjax.metrics import compute_metrics


def rule_predictions(records, quantiles=()) -> dict[str, list[str]]:
  """{rule: predictions} for records that carry `label_probs`."""
  if not records or any("label_probs" not in r for r in records):
    raise DataError("the run recorded no label distributions (predict.mode=generate?)")
  labels = list(records[0]["label_probs"])
  logp = np.log(np.array([[max(r["label_probs"][l], 1e-12) for l in labels] for r in records]))
  out = {"label_likelihood": [labels[i] for i in np.argmax(logp, axis=1)]}
  try:
    out["label_median"] = median_labels(logp, labels)
  except ValueError:  # non-numeric labels: no median, no quantiles
    if quantiles:
      raise DataError(f"--quantiles needs numeric labels, got {labels[:5]}") from None
    return out
  for q in quantiles:
    out[f"label_quantile_{q:g}"] = quantile_labels(logp, labels, q)
  return out


def ensemble_records(runs: list[list[dict]]) -> list[dict]:
  """One run's records whose `label_probs` are the mean of the runs' (same ids, same order)."""
  first = runs[0]
  if any("label_probs" not in r for records in runs for r in records):
    raise DataError("a run recorded no label distributions (predict.mode=generate?)")
  for records in runs[1:]:
    if [r["id"] for r in records] != [r["id"] for r in first]:
      raise DataError("--ensemble needs runs over the same examples in the same order")
  for records in runs:
    if any(set(r["label_probs"]) != set(first[0]["label_probs"]) for r in records):
      raise DataError("--ensemble needs runs that recorded distributions over the same labels")
  return [{**r, "label_probs": {l: float(np.mean([run[i]["label_probs"][l] for run in runs]))
                                for l in r["label_probs"]}}
          for i, r in enumerate(first)]


def rule_metrics(records, metrics, quantiles=()) -> dict[str, dict[str, float]]:
  golds = [r["target"] for r in records]
  return {rule: compute_metrics(metrics, golds, preds)
          for rule, preds in rule_predictions(records, quantiles).items()}


def _quantiles(text: str) -> tuple[float, ...]:
  try:
    qs = tuple(float(q) for q in text.split(","))
  except ValueError:
    raise DataError(f"--quantiles takes numbers separated by commas, got {text!r}") from None
  if not all(0 < q <= 1 for q in qs):
    raise DataError(f"--quantiles must each be in (0, 1], got {text!r}")
  return qs


def _score(name, records, quantiles):
  labels = list(records[0].get("label_probs", {})) if records else []
  metrics = ("MAE", "RMSE") if numeric_labels(labels) else ("accuracy",)
  for rule, scores in rule_metrics(records, metrics, quantiles).items():
    print(f"{name}\t{rule}\t" + "\t".join(f"{k}={v:.4f}" for k, v in scores.items()))


def main(argv=None) -> int:
  args = list(argv if argv is not None else sys.argv[1:])
  quantiles, ensemble = (), "--ensemble" in args
  args = [a for a in args if a != "--ensemble"]
  if args and args[0] == "--quantiles":
    try:
      quantiles = _quantiles(args[1] if len(args) > 1 else "")
    except DataError as e:
      print(f"perjax: error: {e}", file=sys.stderr)
      return 2
    args = args[2:]
  if not args or (ensemble and len(args) < 2):
    print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
    return 2
  name = "?"
  try:
    if ensemble:
      name = f"ensemble of {len(args)} runs"
      _score(name, ensemble_records([read_records(d) for d in args]), quantiles)
      return 0
    for name in args:
      _score(name, read_records(name), quantiles)
  except DataError as e:
    print(f"perjax: error: {name}: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
