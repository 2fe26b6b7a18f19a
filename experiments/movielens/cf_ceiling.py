"""What an item-plus-user-bias estimate reaches on the MovieLens rating task, outside any model:
the ceiling of the "other users' ratings of the movie plus the user's own bias" route
(docs/results.md), and whether even it beats the user's mean rating significantly. Reads the
same data set and splits as experiments/movielens_rating.py.

  python experiments/movielens/cf_ceiling.py

Prediction per example: the global mean of every pool rating, plus the movie's shrunk offset
(other users' ratings only, shrinkage 3), plus the user's mean offset from the (shrunk) item
means over their own history (never the item predicted nor anything after it), rounded to a
whole star. Two pools of other users' ratings: the task's own (what global retrieval can
bring: the profiles of the 200 drawn users) and every rating in ratings.csv dated before the
predicted one. Beside them: the user's mean and median rating, rounded. `p` is the one-sided
paired bootstrap p-value (perjax.stats, 1,000 resamples) that the estimate beats the user
mean, on the whole split and on the 500 test examples the runs score (`data.max_test`).

A second table reads the same estimate the way a model trained on the train split could at
best learn to: a + b x estimate, fitted by least squares on the train split's examples (task
pool), rounded. It asks whether the prompt's number carries enough to beat the user mean on
dev and test when read as the training users' ratings suggest.
"""
import collections
import csv
import statistics

from perjax.data import load_dataset
from perjax.data.files import data_root
from perjax.data.movielens import describe_movie, read_movies, round_rating
from perjax.data.own_history import own_history_pairs
from perjax.experiment.phases import subsample
from perjax.stats import paired_bootstrap

SHRINK = 3
SCORED = 500  # experiments/movielens_rating.py's data.max_test, drawn with sample_seed 0


def stars(x: float) -> str:
  """`x` rounded to a whole star, halves up, within 1-5."""
  return str(min(5, max(1, int(x + 0.5))))


def task_pool(task):
  """movie -> [(user, rating, time)] from every profile of the task (global retrieval's pool)."""
  by_movie, seen = collections.defaultdict(list), set()
  for e in (e for split in task.splits.values() for e in split):
    for it in e.profile:
      if (e.user_id, it.id) not in seen:
        seen.add((e.user_id, it.id))
        by_movie[it.fields["movie"]].append((e.user_id, int(it.fields["rating"]), it.time))
  return by_movie


def full_pool():
  """movie -> [(user, rating, time)] from all of ratings.csv."""
  root = data_root(None) / "movielens"
  movies, by_movie = read_movies(root), collections.defaultdict(list)
  with open(root / "ratings.csv") as f:
    for uid, mid, stars, ts in list(csv.reader(f))[1:]:
      by_movie[describe_movie(movies, mid, root)].append((f"ml{uid}", round_rating(float(stars)),
                                                     float(ts)))
  return by_movie


def estimates(task, examples, by_movie, before_time: bool):
  overall = statistics.mean(r for ratings in by_movie.values() for _, r, _ in ratings)
  def item_mean(movie, user, t):
    others = [r for u, r, ti in by_movie.get(movie, [])
              if u != user and not (before_time and ti is not None and ti >= t)]
    return overall + (sum(others) - len(others) * overall) / (len(others) + SHRINK)

  out = collections.defaultdict(dict)
  for e in examples:
    history = own_history_pairs(task, e)
    ratings = [int(t) for _, t, _ in history]
    bias = statistics.mean(int(t) - item_mean(m, e.user_id, e.time) for m, t, _ in history)
    out["user_mean"][e.id] = stars(statistics.mean(ratings))
    out["user_median"][e.id] = str(statistics.median_low(ratings))
    out["item_plus_user_bias"][e.id] = stars(item_mean(e.input, e.user_id, e.time) + bias)
    out["raw"][e.id] = item_mean(e.input, e.user_id, e.time) + bias
  return out


def fitted_reading(task, pool):
  """(a, b) of gold ~ a + b x estimate, least squares over the train split."""
  train = task.splits["train"]
  xs = estimates(task, train, pool, False)["raw"]
  ys = {e.id: int(e.target) for e in train}
  n = len(ys)
  mx, my = sum(xs.values()) / n, sum(ys.values()) / n
  b = (sum((xs[i] - mx) * (ys[i] - my) for i in ys) /
       sum((xs[i] - mx) ** 2 for i in ys))
  return my - b * mx, b


def main():
  task = load_dataset("movielens-rating", split="user", seed=0)
  pools = {"task pool": (task_pool(task), False), "all ratings, earlier only": (full_pool(), True)}
  print("| split | pool | examples | user mean | user median | item + user bias | p |")
  print("|---|---|---|---|---|---|---|")
  for split in ("dev", "test"):
    for name, (pool, before) in pools.items():
      subsets = {split: task.splits[split]}
      if split == "test":
        subsets["test, scored 500"] = subsample(task.splits[split], SCORED, 0)
      for label, examples in subsets.items():
        golds = {e.id: e.target for e in examples}
        preds = estimates(task, examples, pool, before)
        mae = {k: statistics.mean(abs(int(v[i]) - int(g)) for i, g in golds.items())
               for k, v in preds.items()}
        p = paired_bootstrap(preds["item_plus_user_bias"], preds["user_mean"], golds, "MAE")
        print(f"| {label} | {name} | {len(examples)} | {mae['user_mean']:.4f} | "
              f"{mae['user_median']:.4f} | {mae['item_plus_user_bias']:.4f} | {p:.3f} |")

  pool = pools["task pool"][0]
  a, b = fitted_reading(task, pool)
  print(f"\nThe estimate read as {a:.3f} + {b:.3f} x estimate (fitted on train), rounded:\n")
  print("| split | examples | user mean | fitted reading | p |")
  print("|---|---|---|---|---|")
  for label, examples in (("dev", task.splits["dev"]), ("dev, scored 200", subsample(
      task.splits["dev"], 200, 0)), ("test, scored 500", subsample(task.splits["test"], SCORED, 0))):
    golds = {e.id: e.target for e in examples}
    preds = estimates(task, examples, pool, False)
    fitted = {i: stars(a + b * x) for i, x in preds["raw"].items()}
    mae = lambda pr: statistics.mean(abs(int(pr[i]) - int(g)) for i, g in golds.items())
    p = paired_bootstrap(fitted, preds["user_mean"], golds, "MAE")
    print(f"| {label} | {len(examples)} | {mae(preds['user_mean']):.4f} | {mae(fitted):.4f} | "
          f"{p:.3f} |")


if __name__ == "__main__":
  main()
