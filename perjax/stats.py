"""Uncertainty for results tables: bootstrap confidence intervals over examples (pooled over
seeds), a paired bootstrap test between two systems, and per-user metrics.

Every metric of perjax.metrics is computed here from per-example sufficient statistics whose
sum over any resample gives that resample's full metric exactly:

| metric | per example | metric from the sums over n examples |
|---|---|---|
| accuracy | [gold == prediction] | sum / n |
| MAE / RMSE | [abs error] / [squared error] (LaMP-3's rule for a non-number) | sum / n, sqrt(sum / n) |
| rouge-1 / rouge-L | [F-measure] | sum / n |
| preference_accuracy | [chosen score > rejected score] | sum / n |
| f1 (macro) | per label: [tp, predicted, gold] | mean over the label list of 2 tp / (predicted + gold) |
| multilabel_f1 | [tp, predicted, gold] summed over labels | 2 tp / (predicted + gold), 1 if both 0 |
| gold_nll / gold_ppl | [-log p(gold), gold tokens] | sum_0 / sum_1 (token-weighted), exp of it |

So macro F1 is not averaged per example: each resample recomputes the whole metric. Any other
metric (bleu, a plugin's) is recomputed by perjax.metrics on each resample's lists (slower).

Resampling draws examples with replacement, the same draws for every seed and both systems
(Efron & Tibshirani, 1993, "An Introduction to the Bootstrap"). The CI is the percentile
interval of the seed-averaged metric; the paired test is Koehn's (2004, "Statistical
Significance Tests for Machine Translation Evaluation"): the p-value of "A is better than B"
is the share of resamples in which A is not better, (1 + count) / (1 + resamples).

Predictions are given per seed: a list of runs, each a list aligned with `golds` or a
{example id: prediction} map when `golds` is such a map. For preference_accuracy a
prediction is a (chosen score, rejected score) pair and golds may be None; for gold_nll and
gold_ppl it is a record's (gold_logprob, gold_tokens) pair (`gold_likelihood_of`), so a
resample's perplexity is the corpus-level one of its examples, not a mean of per-example ones.
"""
import collections
import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from perjax.errors import DataError
from perjax.metrics import compute_metrics, parse_rating, rouge

# the gold output's mean per-token negative log-likelihood under the run's model, and its
# perplexity (experiment/gold_likelihood.py): predictions are (gold_logprob, gold_tokens) pairs
GOLD_METRICS = ("gold_nll", "gold_ppl")
LOWER_IS_BETTER = frozenset({"MAE", "RMSE", *GOLD_METRICS})
_MEAN_METRICS = ("accuracy", "MAE", "rouge-1", "rouge-L", "preference_accuracy")


def higher_is_better(metric: str) -> bool:
  return metric not in LOWER_IS_BETTER


@dataclasses.dataclass(frozen=True)
class Interval:
  value: float  # the metric on all examples, averaged over seeds
  low: float
  high: float


# -- per-example statistics ---------------------------------------------------------------------

def _label_split(text: str, known: set) -> set:
  return {x.strip() for x in text.split(",")} & known


def contributions(metric: str, golds: Sequence[Any], preds: Sequence[Any],
                  labels: Sequence[str] | None = None) -> np.ndarray | None:
  """[N, k] per-example sufficient statistics of `metric` (see the module table); None for a
  metric recomputed from whole lists."""
  if metric == "accuracy":
    return np.array([[g.strip() == p.strip()] for g, p in zip(golds, preds)], np.float64)
  if metric in ("MAE", "RMSE"):
    errors = []
    for g, p in zip(golds, preds):
      gold = float(g)
      errors.append(parse_rating(p, gold) - gold)
    errors = np.array(errors, np.float64)[:, None]
    return np.abs(errors) if metric == "MAE" else errors ** 2
  if metric in ("rouge-1", "rouge-L"):
    return np.array([[rouge([g], [p])[metric]] for g, p in zip(golds, preds)], np.float64)
  if metric == "preference_accuracy":
    return np.array([[float(c) > float(r)] for c, r in preds], np.float64)
  if metric in GOLD_METRICS:
    return np.array([[-float(lp), float(tokens)] for lp, tokens in preds], np.float64)
  if metric == "f1":
    if not labels:
      raise DataError("f1 needs the task's label list")
    g = np.array([x.strip() for x in golds], object)[:, None]
    p = np.array([x.strip() for x in preds], object)[:, None]
    lab = np.array(list(labels), object)[None, :]
    return np.concatenate([(g == lab) & (p == lab), p == lab, g == lab], axis=1).astype(np.float64)
  if metric == "multilabel_f1":
    known = set(labels or ())
    rows = []
    for gold, pred in zip(golds, preds):
      gs, ps = _label_split(gold, known), _label_split(pred, known)
      rows.append([len(gs & ps), len(ps), len(gs)])
    return np.array(rows, np.float64)
  return None


def _from_sums(metric: str, sums: np.ndarray, n: int) -> np.ndarray:
  """The metric from summed statistics [..., k] over n examples."""
  if metric in _MEAN_METRICS:
    return sums[..., 0] / n
  if metric == "RMSE":
    return np.sqrt(sums[..., 0] / n)
  if metric in GOLD_METRICS:
    nll = sums[..., 0] / np.maximum(sums[..., 1], 1.0)
    return nll if metric == "gold_nll" else np.exp(nll)
  if metric == "f1":
    tp, pred, gold = np.split(sums, 3, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
      f = np.where(pred + gold > 0, 2 * tp / (pred + gold), 0.0)
    return f.mean(axis=-1)
  if metric == "multilabel_f1":
    tp, pred, gold = sums[..., 0], sums[..., 1], sums[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
      return np.where(pred + gold > 0, 2 * tp / (pred + gold), 1.0)
  raise DataError(f"metric {metric!r} has no per-example statistics")


# -- aligning inputs ----------------------------------------------------------------------------

def _is_run(x) -> bool:
  """Whether `x` is one run's predictions (not a list of runs)."""
  if isinstance(x, Mapping):
    return True
  if not x:
    return True
  first = x[0]
  if isinstance(first, str):
    return True
  # a (chosen, rejected) score pair, not a run
  return isinstance(first, (tuple, list)) and len(first) == 2 and \
      all(isinstance(v, (int, float)) for v in first)


def as_seeds(preds) -> list:
  """One run's predictions, or a list of runs (one per seed), as a list of runs."""
  return [preds] if _is_run(preds) else list(preds)


def _align(golds, runs) -> tuple[list, list[list]]:
  """(golds as a list, each run as a list in the same order)."""
  if isinstance(golds, Mapping):
    ids = list(golds)
    out = []
    for run in runs:
      if not isinstance(run, Mapping):
        raise DataError("golds are an {id: gold} map, so predictions must be too")
      missing = [i for i in ids if i not in run]
      if missing:
        raise DataError(f"{len(missing)} examples have no prediction, e.g. {missing[0]!r}")
      out.append([run[i] for i in ids])
    return [golds[i] for i in ids], out
  if any(isinstance(r, Mapping) for r in runs):
    raise DataError("predictions are {id: prediction} maps, so golds must be too")
  runs = [list(r) for r in runs]
  n = len(runs[0]) if golds is None else len(golds)
  if any(len(r) != n for r in runs):
    raise DataError(f"{n} golds but runs of {sorted({len(r) for r in runs})} predictions")
  if n == 0:
    raise DataError("no examples to score")
  return (list(golds) if golds is not None else [None] * n), runs


# -- resampling ---------------------------------------------------------------------------------

class _Scorer:
  """One run's metric on resamples given as index arrays."""

  def __init__(self, metric, golds, preds, labels):
    self.metric, self.golds, self.preds, self.labels = metric, golds, preds, labels
    self.stats = contributions(metric, golds, preds, labels)

  def full(self) -> float:
    if self.stats is not None:
      return float(_from_sums(self.metric, self.stats.sum(axis=0), len(self.golds)))
    return compute_metrics([self.metric], self.golds, self.preds, self.labels)[self.metric]

  def on(self, indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[B] metric values for resamples `indices` [B, N] (`counts` [B, N]: how often each
    example is drawn)."""
    n = indices.shape[1]
    if self.stats is not None:
      return _from_sums(self.metric, counts @ self.stats, n)
    return np.array([compute_metrics([self.metric], [self.golds[i] for i in row],
                                     [self.preds[i] for i in row], self.labels)[self.metric]
                     for row in indices])


def _resamples(n_examples: int, n: int, seed: int):
  """(indices [b, N], counts [b, N]) chunks of `n` resamples of N examples, seeded."""
  rng = np.random.default_rng(seed)
  chunk = max(1, min(n, 2_000_000 // n_examples))
  done = 0
  while done < n:
    b = min(chunk, n - done)
    idx = rng.integers(0, n_examples, size=(b, n_examples))
    counts = np.zeros((b, n_examples), np.float64)
    np.add.at(counts, (np.arange(b)[:, None], idx), 1.0)
    yield idx, counts
    done += b


def _scorers(metric, golds, runs, labels):
  return [_Scorer(metric, golds, r, labels) for r in runs]


def metric_on(metric: str, golds, preds, indices: Sequence[int],
              labels: Sequence[str] | None = None) -> float:
  """`metric` on the examples at `indices` (repeats count), from per-example statistics."""
  golds, (preds,) = _align(golds, [preds])
  idx = np.asarray(indices)[None, :]
  counts = np.bincount(idx[0], minlength=len(golds)).astype(np.float64)[None, :]
  return float(_Scorer(metric, golds, preds, labels).on(idx, counts)[0])


def bootstrap_ci(per_seed_predictions, golds, metric: str, n: int = 1000, seed: int = 0,
                 labels: Sequence[str] | None = None, level: float = 0.95) -> Interval:
  """The metric averaged over seeds, with a `level` percentile bootstrap interval over
  examples: each resample draws N examples with replacement, scores every seed's run on them
  and averages over the seeds."""
  golds, runs = _align(golds, as_seeds(per_seed_predictions))
  scorers = _scorers(metric, golds, runs, labels)
  values = np.concatenate([np.mean([s.on(idx, c) for s in scorers], axis=0)
                           for idx, c in _resamples(len(golds), n, seed)])
  low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
  return Interval(float(np.mean([s.full() for s in scorers])), float(low), float(high))


def paired_bootstrap(preds_a, preds_b, golds, metric: str, n: int = 1000, seed: int = 0,
                     labels: Sequence[str] | None = None) -> float:
  """One-sided p-value that system A is better than B on the same examples (lower is better for
  MAE / RMSE). Each may be one run or a list of runs (seeds); a resample's score of a system is
  its seed average. p = (1 + resamples where A is not better) / (1 + n)."""
  _, runs_b = _align(golds, as_seeds(preds_b))
  golds, runs_a = _align(golds, as_seeds(preds_a))
  a, b = _scorers(metric, golds, runs_a, labels), _scorers(metric, golds, runs_b, labels)
  sign = 1.0 if higher_is_better(metric) else -1.0
  not_better = 0
  for idx, counts in _resamples(len(golds), n, seed):
    delta = sign * (np.mean([s.on(idx, counts) for s in a], axis=0) -
                    np.mean([s.on(idx, counts) for s in b], axis=0))
    not_better += int(np.sum(delta <= 0))
  return (1 + not_better) / (1 + n)


def seed_columns(per_seed_predictions, golds, metrics: Sequence[str],
                 labels: Sequence[str] | None = None, n: int = 1000, seed: int = 0) -> dict:
  """results.csv columns: for each metric M, M_mean and M_std (over seeds; 0 for one seed),
  M_ci_low and M_ci_high (bootstrap_ci), plus `seeds`."""
  golds, runs = _align(golds, as_seeds(per_seed_predictions))
  out = {}
  for m in metrics:
    ci = bootstrap_ci(runs, golds, m, n=n, seed=seed, labels=labels)
    per_seed = [s.full() for s in _scorers(m, golds, runs, labels)]
    out[f"{m}_mean"] = ci.value
    out[f"{m}_std"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
    out[f"{m}_ci_low"], out[f"{m}_ci_high"] = ci.low, ci.high
  out["seeds"] = len(runs)
  return out


# -- per user -----------------------------------------------------------------------------------

def prediction_of(record: Mapping) -> Any:
  """A predictions.jsonl record's prediction: its answer, or its (chosen, rejected) rewards."""
  if "prediction" in record:
    return record["prediction"]
  if "chosen_reward" in record:
    return (record["chosen_reward"], record["rejected_reward"])
  raise DataError(f"prediction record {record.get('id')!r} has no prediction")


def gold_likelihood_of(record: Mapping) -> tuple[float, int]:
  """A Supervised prediction record's (gold_logprob, gold_tokens): the prediction of the
  gold_nll and gold_ppl metrics."""
  if "gold_logprob" not in record:
    raise DataError(f"prediction record {record.get('id')!r} has no gold_logprob "
                    "(eval.gold_likelihood=False?)")
  return (record["gold_logprob"], record["gold_tokens"])


def has_gold_likelihood(records: Sequence[Mapping]) -> bool:
  return bool(records) and all("gold_logprob" in r for r in records)


def per_user_table(records: Sequence[Mapping], golds: Mapping[str, Any] | None = None,
                   metrics: Sequence[str] = ("accuracy",),
                   labels: Sequence[str] | None = None) -> list[dict]:
  """One row per user of prediction records (predictions.jsonl rows: id, user_id, and
  prediction or chosen_reward / rejected_reward): user_id, examples, and each metric on that
  user's examples. Golds come from `golds` ({id: gold}) or else each record's target."""
  by_user = collections.defaultdict(list)
  for r in records:
    by_user[str(r["user_id"])].append(r)
  rows = []
  for user in sorted(by_user):
    mine = by_user[user]
    gold = [golds[r["id"]] if golds is not None else r.get("target") for r in mine]
    preds = [prediction_of(r) for r in mine]
    row = {"user_id": user, "examples": len(mine)}
    for m in metrics:
      row[m] = _Scorer(m, gold, [gold_likelihood_of(r) for r in mine] if m in GOLD_METRICS
                       else preds, labels).full()
    rows.append(row)
  return rows
