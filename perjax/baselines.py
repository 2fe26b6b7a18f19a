"""Trivial baselines every results table should show beside the models.

From a Task's train split and each evaluated example's own history (its profile items as
training pairs, `perjax.data.own_history`: never the item being predicted nor a later one):

| baseline | tasks | prediction |
|---|---|---|
| `global_majority` | with a label set | the commonest train target |
| `user_majority` | classification | the commonest target in the user's history |
| `user_mean` | rating (MAE in the metrics) | the mean of the user's past ratings, rounded half up to a label |
| `user_mean_raw` | rating | that mean unrounded (MAE / RMSE score numbers) |
| `user_last` | generation (no label set) | the target of the user's most recent profile item |

A user whose history holds no usable target gets the global majority (no answer, "", for
generation). A user's majority tie goes to the label they gave most recently; the global one's
to the first in the task's label list. Score them with `perjax.metrics.evaluate_task`, like model predictions
(`baseline_scores`).
"""
import collections
import math
from typing import Sequence

from perjax.data.own_history import own_history_pairs
from perjax.data.schema import Task
from perjax.errors import DataError
from perjax.metrics import evaluate_task


def is_rating(task: Task) -> bool:
  return "MAE" in task.metrics or "RMSE" in task.metrics


def _majority(targets: Sequence[str]) -> str:
  """The commonest of `targets` (oldest first); ties to the one given most recently."""
  counts = collections.Counter(targets)
  top = max(counts.values())
  return next(t for t in reversed(targets) if counts[t] == top)


def _numbers(targets) -> list[float]:
  out = []
  for t in targets:
    try:
      value = float(t)
    except ValueError:
      continue
    if math.isfinite(value):
      out.append(value)
  return out


def _nearest_label(value: float, labels: Sequence[str]) -> str:
  """The label nearest to `value`, half up (3.5 -> "4")."""
  numeric = [(float(l), l) for l in labels]
  return min(numeric, key=lambda nl: (abs(nl[0] - value), -nl[0]))[1]


# the baselines that give every user the same answer (reported at the shared level; the others
# read each user's own history)
ONE_ANSWER_BASELINES = frozenset({"global_majority"})


def global_majority(task: Task) -> str:
  targets = [e.target for e in task.splits.get("train", ()) if e.target is not None]
  if not targets:
    raise DataError(f"{task.name}: no train targets for a global majority baseline")
  counts = collections.Counter(targets)
  order = list(task.labels or ()) + sorted(counts)
  # most common; ties to the task's label order, then alphabetical
  return min(counts, key=lambda t: (-counts[t], order.index(t)))


def baseline_predictions(task: Task, split: str) -> dict[str, dict[str, str]]:
  """{baseline name: {example id: prediction}} for the examples of `split` (see the module)."""
  examples = task.splits[split]
  out: dict[str, dict[str, str]] = {}
  if task.labels is None:
    out["user_last"] = {}
    for e in examples:
      pairs = own_history_pairs(task, e)
      out["user_last"][e.id] = pairs[-1][1] if pairs else ""
    return out
  majority = global_majority(task)
  out["global_majority"] = {e.id: majority for e in examples}
  if is_rating(task):
    out["user_mean"], out["user_mean_raw"] = {}, {}
    for e in examples:
      values = _numbers(y for _, y, _ in own_history_pairs(task, e))
      if values:
        mean = sum(values) / len(values)
        out["user_mean"][e.id] = _nearest_label(mean, task.labels)
        out["user_mean_raw"][e.id] = f"{mean:.6g}"
      else:
        out["user_mean"][e.id] = out["user_mean_raw"][e.id] = majority
    return out
  out["user_majority"] = {}
  for e in examples:
    targets = [y for _, y, _ in own_history_pairs(task, e)]
    out["user_majority"][e.id] = _majority(targets) if targets else majority
  return out


def baseline_scores(task: Task, split: str) -> dict[str, dict[str, float]]:
  """{baseline name: the task's metrics} for `split`, scored as model predictions are."""
  return {name: evaluate_task(task, split, preds)
          for name, preds in baseline_predictions(task, split).items()}
