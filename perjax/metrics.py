"""Metrics with the official LaMP semantics, plus BLEU, multi-label F1 and preference accuracy.

Predictions and golds are strings (stripped before comparison), matched by position.
- accuracy / f1: a prediction outside the task's label list is simply wrong; f1 is the macro
  average over the label list (labels never gold nor predicted score 0), as sklearn's
  f1_score(average="macro", labels=...).
- MAE / RMSE: a prediction that is not a number counts as 1 or 5, whichever is farther from the
  gold (5 on a tie), as LaMP-3's evaluation does.
- rouge-1 / rouge-L: F-measure of rouge-score (default tokenizer, no stemming), mean over examples.
"""
import math
from typing import Mapping, Sequence

from perjax.errors import DataError
from perjax.registry import METRICS, suggest


def _check(golds, preds):
  if len(golds) != len(preds):
    raise DataError(f"{len(golds)} golds but {len(preds)} predictions")
  if not golds:
    raise DataError("no examples to score")


def accuracy(golds: Sequence[str], preds: Sequence[str]) -> float:
  _check(golds, preds)
  return sum(g.strip() == p.strip() for g, p in zip(golds, preds)) / len(golds)


def macro_f1(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]) -> float:
  _check(golds, preds)
  golds, preds = [g.strip() for g in golds], [p.strip() for p in preds]
  total = 0.0
  for label in labels:
    tp = sum(g == label and p == label for g, p in zip(golds, preds))
    n_pred, n_gold = preds.count(label), golds.count(label)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    total += 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  return total / len(labels)


def parse_rating(pred: str, gold: float) -> float:
  try:
    value = float(pred.strip())
    if math.isfinite(value):
      return value
  except ValueError:
    pass
  return 1.0 if abs(1.0 - gold) > abs(5.0 - gold) else 5.0


def rating_errors(golds: Sequence[str], preds: Sequence[str]) -> dict:
  _check(golds, preds)
  try:
    gold_values = [float(g) for g in golds]
  except ValueError as e:
    raise DataError(f"a gold rating is not a number ({e})") from None
  bad = next((g for g, v in zip(golds, gold_values) if not math.isfinite(v)), None)
  if bad is not None:
    raise DataError(f"a gold rating is not a finite number: {bad!r}")
  errors = [parse_rating(p, g) - g for g, p in zip(gold_values, preds)]
  return {"MAE": sum(abs(e) for e in errors) / len(errors),
          "RMSE": math.sqrt(sum(e * e for e in errors) / len(errors))}


_ROUGE = None


def rouge(golds: Sequence[str], preds: Sequence[str]) -> dict:
  global _ROUGE
  _check(golds, preds)
  if _ROUGE is None:  # building the scorer loads nltk bits once
    from rouge_score import rouge_scorer
    _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)
  r1 = rl = 0.0
  for g, p in zip(golds, preds):
    s = _ROUGE.score(g, p)  # (target, prediction)
    r1, rl = r1 + s["rouge1"].fmeasure, rl + s["rougeL"].fmeasure
  return {"rouge-1": r1 / len(golds), "rouge-L": rl / len(golds)}


def bleu(golds: Sequence[str], preds: Sequence[str]) -> float:
  """Corpus BLEU of sacrebleu (0-100), one reference per example."""
  import sacrebleu
  _check(golds, preds)
  return sacrebleu.corpus_bleu(list(preds), [list(golds)]).score


def multilabel_f1(golds: Sequence[str], preds: Sequence[str], labels: Sequence[str]) -> float:
  """Micro F1 over the labels of ", "-joined label sets (unknown labels are ignored)."""
  _check(golds, preds)
  known = set(labels)
  split = lambda s: {x.strip() for x in s.split(",")} & known
  tp = n_pred = n_gold = 0
  for g, p in zip(golds, preds):
    gs, ps = split(g), split(p)
    tp, n_pred, n_gold = tp + len(gs & ps), n_pred + len(ps), n_gold + len(gs)
  return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 1.0


def preference_accuracy(chosen_scores: Sequence[float], rejected_scores: Sequence[float]) -> float:
  """Fraction of pairs whose chosen response scores strictly higher (e.g. log-likelihood or
  implicit DPO reward)."""
  _check(chosen_scores, rejected_scores)
  return sum(c > r for c, r in zip(chosen_scores, rejected_scores)) / len(chosen_scores)


# Each registered metric scores string predictions: (golds, preds, labels) -> float.
@METRICS.register("accuracy")
def _accuracy(golds, preds, labels):
  return accuracy(golds, preds)


@METRICS.register("f1")
def _macro_f1(golds, preds, labels):
  if not labels:
    raise DataError("f1 needs the task's label list")
  return macro_f1(golds, preds, labels)


def _one_of(family, name):
  """The metric `name` of a function that scores several at once (MAE with RMSE, the ROUGEs)."""
  return lambda golds, preds, labels: family(golds, preds)[name]


for _name, _family in (("MAE", rating_errors), ("RMSE", rating_errors),
                       ("rouge-1", rouge), ("rouge-L", rouge)):
  METRICS.register(_name, _one_of(_family, _name))


@METRICS.register("bleu")
def _bleu(golds, preds, labels):
  return bleu(golds, preds)


@METRICS.register("multilabel_f1")
def _multilabel_f1(golds, preds, labels):
  return multilabel_f1(golds, preds, labels or ())


def compute_metrics(names: Sequence[str], golds: Sequence[str], preds: Sequence[str],
                    labels: Sequence[str] | None = None) -> dict:
  """The named metrics (as in Task.metrics) for string predictions."""
  out = {}
  for name in names:
    if name not in METRICS:
      raise DataError(f"metric {name!r} is not computed from string predictions"
                      f"{suggest(name, METRICS)}")
    out[name] = METRICS.get(name)(golds, preds, labels)
  return out


def evaluate_task(task, split: str, predictions: Mapping[str, str]) -> dict:
  """Scores `predictions` (example id -> text) on a split of a perjax Task."""
  examples = task.splits[split]
  missing = [e.id for e in examples if e.id not in predictions]
  if missing:
    raise DataError(f"{len(missing)} {split} examples have no prediction, e.g. {missing[0]!r}")
  return compute_metrics(task.metrics, [e.target for e in examples],
                         [predictions[e.id] for e in examples], task.labels)


def evaluate_lamp(task_name: str, golds: Mapping[str, str], preds: Mapping[str, str]) -> dict:
  """The official metrics of a LaMP/LongLaMP task for id -> output maps with the same ids."""
  from perjax.data.lamp import lamp_spec
  missing, extra = golds.keys() - preds.keys(), preds.keys() - golds.keys()
  if missing or extra:
    parts = []
    if missing:
      parts.append(f"{len(missing)} gold id(s) without a prediction, e.g. {sorted(missing)[0]!r}")
    if extra:
      parts.append(f"{len(extra)} predicted id(s) not in the golds, e.g. {sorted(extra)[0]!r}")
    raise DataError("mismatched ids: " + "; ".join(parts))
  spec = lamp_spec(task_name, golds.values())
  ids = sorted(golds)
  return compute_metrics(spec.metrics, [golds[i] for i in ids], [preds[i] for i in ids],
                         spec.labels)
