"""A sweep's cells run with several seeds: per-cell statistics, significance against the
config's baseline, trivial baselines as extra rows, and each run's per_user.csv.

For each metric M a cell's row holds M_mean, M_std (over seeds), M_ci_low / M_ci_high (a 95%
bootstrap CI over examples, pooled over seeds) and M_p: the two-sided paired bootstrap p-value
of the difference from the baseline cell (method `zero_shot`), 2 min(p_better, p_worse)
capped at 1 (perjax.stats). results.md marks M_mean with `*` where M_p < 0.05. M_p_user is the
same test against the trivial personal baseline (the user's mean rating, majority label or last
target), marked `*` where below 0.05: a method that cannot beat it is not yet personalizing. The trivial
baselines (perjax.baselines) are scored on the same examples and appear as `baseline:NAME`
rows. All statistics use the examples every run evaluated; runs that evaluated different
examples (a `data.max_test` draw that follows the seed) are cut to the common ones, with a
warning. Where every run recorded the gold target's likelihood (eval.gold_likelihood), gold_nll
and gold_ppl get the same columns, a resample's perplexity being recomputed from its examples'
summed log-likelihoods and tokens (lower is better); the trivial baselines have none. Each
cell's row also gives what a run of it cost (experiment/cost.py): wall_seconds, train_steps and
train_examples_seen, means over its seeds.
"""
import dataclasses
import sys
from pathlib import Path

from perjax import stats
from perjax.baselines import ONE_ANSWER_BASELINES, baseline_predictions
from perjax.data import load_dataset
from perjax.errors import DataError
from perjax.experiment.cost import cell_cost
from perjax.experiment.outputs import read_records, write_per_user
from perjax.grouping import level_where
from perjax.method import baseline_method

# the trivial personal baseline a personalized model must beat (perjax.baselines): M_p_user
PERSONAL_BASELINES = ("baseline:user_mean", "baseline:user_majority", "baseline:user_last")
ALPHA = 0.05


def two_sided_p(a, b, golds, metric, labels, n) -> float:
  better = stats.paired_bootstrap(a, b, golds, metric, n=n, labels=labels)
  worse = stats.paired_bootstrap(b, a, golds, metric, n=n, labels=labels)
  return min(1.0, 2 * min(better, worse))


def seeded_rows(cells: list[tuple[dict, list[Path]]], config, n: int = 1000
                ) -> tuple[list[dict], set]:
  """(rows, marks) for cells [(row keys: run, method, granularity, swept..., [run folders])];
  marks holds (row index, column) of the significant M_mean cells. `config` is any run's (the
  data set, its eval split)."""
  task = load_dataset(config.data.name, **config.data.params.to_dict())
  metrics, labels = task.metrics, task.labels
  runs = {}
  for _, dirs in cells:
    for d in dirs:
      runs[d] = {r["id"]: r for r in read_records(d)}
      write_per_user(d, metrics, labels)
  common = set.intersection(*(set(r) for r in runs.values()))
  if not common:
    raise DataError("the runs of the sweep share no evaluated example")
  if any(len(r) != len(common) for r in runs.values()):
    print(f"warning: runs evaluated different examples; statistics use the {len(common)} that "
          "all of them evaluated (set data.max_test to 0, or draw it with a fixed seed)",
          file=sys.stderr)
  first = next(iter(runs.values()))
  ids = [i for i in first if i in common]
  golds = {i: first[i].get("target") for i in ids}
  systems = [(keys, [{i: stats.prediction_of(runs[d][i]) for i in ids} for d in dirs])
             for keys, dirs in cells]
  # {run: [{id: (gold_logprob, gold_tokens)} per seed]} of the cells that recorded them
  gold = {keys.get("run"): [{i: stats.gold_likelihood_of(runs[d][i]) for i in ids} for d in dirs]
          for keys, dirs in cells
          if all(stats.has_gold_likelihood(list(runs[d].values())) for d in dirs)}
  by_id = {e.id: e for e in task.splits[config.eval.split]}
  if "preference_accuracy" not in metrics and all(i in by_id for i in ids):
    sub = dataclasses.replace(task, splits={**task.splits, "_eval": [by_id[i] for i in ids]})
    for name, preds in baseline_predictions(sub, "_eval").items():
      level = level_where("shared" if name in ONE_ANSWER_BASELINES else "per_user")
      systems.append(({"run": f"baseline:{name}", "method": f"baseline:{name}",
                       "granularity": level}, [preds]))
  # (row keys, {metric: per-seed predictions}): the gold metrics score other predictions
  systems = [(keys, {**{m: preds for m in metrics},
                     **{m: gold[keys.get("run")] for m in stats.GOLD_METRICS
                        if keys.get("run") in gold}})
             for keys, preds in systems]
  costs = {keys.get("run"): cell_cost(dirs) for keys, dirs in cells}
  baseline = baseline_method()
  base = next((p for keys, p in systems if keys["method"] == baseline), None)
  personal = next((p for keys, p in systems if keys["method"] in PERSONAL_BASELINES), None)
  rows, marks = [], set()
  for keys, preds in systems:
    row, columns = dict(keys), {}
    for m, p in preds.items():
      columns.update(stats.seed_columns(p, golds, [m], labels=labels, n=n))
    for m in preds:
      row.update({f"{m}_{s}": columns[f"{m}_{s}"] for s in ("mean", "std", "ci_low", "ci_high")})
      if base is None or m not in base:
        continue
      row[f"{m}_p"] = "" if keys["method"] == baseline else \
          two_sided_p(preds[m], base[m], golds, m, labels, n)
      if row[f"{m}_p"] != "" and row[f"{m}_p"] < ALPHA:
        marks.add((len(rows), f"{m}_mean"))
      if personal is not None and m in personal and not keys["method"].startswith("baseline:"):
        row[f"{m}_p_user"] = two_sided_p(preds[m], personal[m], golds, m, labels, n)
        if row[f"{m}_p_user"] < ALPHA:
          marks.add((len(rows), f"{m}_p_user"))
    row["seeds"], row["examples"] = columns["seeds"], len(ids)
    row.update(costs.get(keys.get("run"), {}))  # mean wall time and examples seen per run
    rows.append(row)
  return rows, marks
