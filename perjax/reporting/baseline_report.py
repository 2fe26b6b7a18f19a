"""A finished sweep against the trivial baselines: paired bootstrap of every cell (pooled over its
seeds) against each baseline, and a per-user table of the cells and the baselines.

The sweep's own table (results.md) tests each cell against `zero_shot`; a personalized method
must also beat what needs no model at all: the user's mean past rating, the user's majority
label. This reads the runs' predictions.jsonl and scores the baselines on the same examples.

  python -m perjax.reporting.baseline_report SWEEP_DIR [--metric MAE] > analysis.md
"""
import argparse
import collections
import json
from pathlib import Path

import numpy as np

from perjax import stats
from perjax.baselines import baseline_predictions
from perjax.experiment.phases import subsample
from perjax.experiment.run_name import RunName
from perjax.data import load_dataset


def _runs(sweep_dir: Path) -> dict[str, list[dict]]:
  """cell name -> one {id: record} per seed."""
  cells = collections.defaultdict(list)
  for path in sorted(sweep_dir.glob("*/predictions.jsonl")):
    cell = RunName.parse(path.parent.name).cell
    with open(path) as f:
      cells[cell].append({r["id"]: r for r in map(json.loads, f)})
  return cells


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("sweep_dir", type=Path)
  parser.add_argument("--metric", default="MAE")
  parser.add_argument("--resamples", type=int, default=1000)
  args = parser.parse_args(argv)
  cells = _runs(args.sweep_dir)
  any_run = next(args.sweep_dir.glob("*/config.json"))
  config = json.loads(any_run.read_text())
  task = load_dataset(config["data"]["name"], **config["data"]["params"])
  split = config["eval"]["split"]
  examples = subsample(task.splits[split], config["data"]["max_test"],
                       config["data"].get("sample_seed", 0))
  ids = [e.id for e in examples]
  golds = {e.id: e.target for e in examples}
  users = {e.id: e.user_id for e in examples}
  baselines = {f"baseline:{k}": {i: v[i] for i in ids}
               for k, v in baseline_predictions(task, split).items()}
  systems = {name: [{i: run[i]["prediction"] for i in ids} for run in runs]
             for name, runs in cells.items()}
  m, labels = args.metric, task.labels

  score = lambda preds, keep: stats.metric_on(m, {i: golds[i] for i in keep},
                                             {i: preds[i] for i in keep}, range(len(keep)),
                                             labels)
  names = list(baselines)
  print(f"## {m}: each cell against each trivial baseline ({len(ids)} examples)\n")
  print("One-sided paired bootstrap p that the cell is better (lower MAE / RMSE), "
        f"{args.resamples} resamples of the examples, the cell's seeds averaged.\n")
  print(f"| cell | seeds | {m} | " + " | ".join(f"p better than {b}" for b in names) + " |")
  print("|---|---|---|" + "---|" * len(names))
  for name, runs in systems.items():
    value = np.mean([score(r, ids) for r in runs])
    ps = [stats.paired_bootstrap(runs, baselines[b], golds, m, n=args.resamples, labels=labels)
          for b in names]
    print(f"| {name} | {len(runs)} | {value:.4f} | " + " | ".join(f"{p:.3f}" for p in ps) + " |")
  for b in names:
    print(f"| {b} | - | {score(baselines[b], ids):.4f} | " + " | ".join("" for _ in names) + " |")

  print(f"\n## {m} per user (cells averaged over their seeds)\n")
  columns = list(systems) + names
  print("| user | examples | " + " | ".join(columns) + " |")
  print("|---|---|" + "---|" * len(columns))
  by_user = collections.defaultdict(list)
  for i in ids:
    by_user[users[i]].append(i)
  for user, mine in sorted(by_user.items()):
    row = {name: np.mean([score(r, mine) for r in runs]) for name, runs in systems.items()}
    row.update({b: score(baselines[b], mine) for b in names})
    print(f"| {user} | {len(mine)} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
  main()
