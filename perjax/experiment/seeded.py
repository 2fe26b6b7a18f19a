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
warning.
"""
import csv
import dataclasses
import json
import sys
from pathlib import Path

from perjax import stats
from perjax.baselines import ONE_ANSWER_BASELINES, baseline_predictions
from perjax.data import load_dataset
from perjax.errors import DataError
from perjax.grouping import level_where
from perjax.method import baseline_method

# the trivial personal baseline a personalized model must beat (perjax.baselines): M_p_user
PERSONAL_BASELINES = ("baseline:user_mean", "baseline:user_majority", "baseline:user_last")
ALPHA = 0.05
PREDICTIONS_FILE, PER_USER_FILE = "predictions.jsonl", "per_user.csv"


def with_seeds(checked, seeds: int):
  """(run name + ",seed=S", overrides, config with seed S) for S in 0..seeds-1 of each run, or
  fewer where the sweep capped the cell (its overrides' `seeds`: a run without randomness, a
  zero-shot or BM25 retrieval cell, gives the same answers for every seed)."""
  out = []
  for name, overrides, config in checked:
    for s in range(min(seeds, int(overrides.get("seeds", seeds)))):
      seeded = config.copy_and_resolve_references()
      seeded.seed = s
      out.append((f"{name},seed={s}", overrides, seeded))
  return out


def cell_of(run: str) -> str:
  return run.rsplit(",seed=", 1)[0]


def read_records(run_dir: Path) -> list[dict]:
  path = Path(run_dir) / PREDICTIONS_FILE
  if not path.is_file():
    raise DataError(f"missing {path}")
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_per_user(run_dir: Path, metrics, labels=None) -> list[dict]:
  """RUN/per_user.csv: one row per user (user_id, examples, each metric)."""
  rows = stats.per_user_table(read_records(run_dir), metrics=metrics, labels=labels)
  with open(Path(run_dir) / PER_USER_FILE, "w", newline="") as f:
    w = csv.DictWriter(f, ["user_id", "examples", *metrics])
    w.writeheader()
    w.writerows(rows)
  return rows


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
  by_id = {e.id: e for e in task.splits[config.eval.split]}
  if "preference_accuracy" not in metrics and all(i in by_id for i in ids):
    sub = dataclasses.replace(task, splits={**task.splits, "_eval": [by_id[i] for i in ids]})
    for name, preds in baseline_predictions(sub, "_eval").items():
      level = level_where("shared" if name in ONE_ANSWER_BASELINES else "per_user")
      systems.append(({"run": f"baseline:{name}", "method": f"baseline:{name}",
                       "granularity": level}, [preds]))
  baseline = baseline_method()
  base = next((p for keys, p in systems if keys["method"] == baseline), None)
  personal = next((p for keys, p in systems if keys["method"] in PERSONAL_BASELINES), None)
  rows, marks = [], set()
  for keys, preds in systems:
    row, columns = dict(keys), stats.seed_columns(preds, golds, metrics, labels=labels, n=n)
    for m in metrics:
      row.update({f"{m}_{s}": columns[f"{m}_{s}"] for s in ("mean", "std", "ci_low", "ci_high")})
      if base is None:
        continue
      row[f"{m}_p"] = "" if keys["method"] == baseline else \
          two_sided_p(preds, base, golds, m, labels, n)
      if row[f"{m}_p"] != "" and row[f"{m}_p"] < ALPHA:
        marks.add((len(rows), f"{m}_mean"))
      if personal is not None and not keys["method"].startswith("baseline:"):
        row[f"{m}_p_user"] = two_sided_p(preds, personal, golds, m, labels, n)
        if row[f"{m}_p_user"] < ALPHA:
          marks.add((len(rows), f"{m}_p_user"))
    row["seeds"], row["examples"] = columns["seeds"], len(ids)
    rows.append(row)
  return rows, marks
