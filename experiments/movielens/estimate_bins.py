"""Where a MovieLens rating run that states the peer estimate in its prompt
(`methods.peer_stats.estimate`) gains or loses, by the estimate's value: per bin, the gold's
mean, the model's expected rating (from `label_probs`), the MAE of its answers and of the
estimate read as the training split suggests (a + b x estimate fitted on train,
`cf_ceiling.fitted_reading`), and how often each answers 5. Several runs (seeds) are
pooled and their counts given per run.

  python experiments/movielens/estimate_bins.py runs/mlr-cos/*schedule=cosine,seed=*
"""
import collections
import json
import re
import sys
from pathlib import Path

from cf_ceiling import fitted_reading, stars, task_pool
from perjax.data import load_dataset

BINS = [(float("-inf"), 3.25, "< 3.25"), (3.25, 3.75, "3.25-3.75"), (3.75, 4.25, "3.75-4.25"),
        (4.25, 4.7, "4.25-4.7"), (4.7, float("inf"), ">= 4.7")]
ESTIMATE = re.compile(r"Estimate from these: ([0-9]+\.[0-9])")


def main(run_dirs):
  if not run_dirs:
    sys.exit(__doc__.strip().splitlines()[-1].strip())
  task = load_dataset("movielens-rating", split="user", seed=0)
  a, b = fitted_reading(task, task_pool(task))
  cells = collections.defaultdict(lambda: collections.Counter())
  for run in run_dirs:
    for line in open(Path(run) / "predictions.jsonl"):
      r = json.loads(line)
      found = ESTIMATE.search(r["prompt"])
      if not found:
        sys.exit(f"{run}: a prompt without a stated estimate (methods.peer_stats.estimate)")
      estimate, gold, answer = float(found.group(1)), int(r["target"]), int(r["prediction"])
      probs = r["label_probs"]
      expected = sum(float(l) * p for l, p in probs.items()) / sum(probs.values())
      fitted = int(stars(a + b * estimate))
      name = next(name for lo, hi, name in BINS if lo <= estimate < hi)
      cells[name].update(n=1, gold=gold, expected=expected, model=abs(answer - gold),
                         fitted=abs(fitted - gold), fives_model=answer == 5,
                         fives_fitted=fitted == 5, fives_gold=gold == 5)
  runs = len(run_dirs)
  print(f"fitted reading: {a:.3f} + {b:.3f} x estimate; {runs} run(s) pooled\n")
  print("| stated estimate | examples per run | gold mean | model's expected rating | model MAE |"
        " fitted reading MAE | answers of 5 per run: model / fitted / gold |")
  print("|---|---|---|---|---|---|---|")
  for _, _, name in BINS:
    c = cells[name]
    if not c["n"]:
      continue
    n = c["n"]
    print(f"| {name} | {n / runs:.0f} | {c['gold'] / n:.2f} | {c['expected'] / n:.2f} | "
          f"{c['model'] / n:.3f} | {c['fitted'] / n:.3f} | {c['fives_model'] / runs:.0f} / "
          f"{c['fives_fitted'] / runs:.0f} / {c['fives_gold'] / runs:.0f} |")
  n = sum(c["n"] for c in cells.values())
  print(f"| all | {n / runs:.0f} | | | {sum(c['model'] for c in cells.values()) / n:.3f} | "
        f"{sum(c['fitted'] for c in cells.values()) / n:.3f} | |")


if __name__ == "__main__":
  main(sys.argv[1:])
