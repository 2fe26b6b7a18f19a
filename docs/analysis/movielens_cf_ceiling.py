"""What an item-plus-user-bias estimate reaches on the MovieLens rating task, outside any model:
the ceiling of the "other users' ratings of the movie plus the user's own bias" route
(docs/results.md). Reads the same data set and splits as experiments/movielens_rating.py.

  python docs/analysis/movielens_cf_ceiling.py

Prediction per example: the global mean of every pool rating, plus the movie's shrunk offset
(other users' ratings only, shrinkage 3), plus the user's mean offset from the (shrunk) item
means over their own history (never the item predicted nor anything after it), rounded to a
whole star. Beside it: the user's mean and median rating, rounded.
"""
import collections
import statistics

from perjax.data import load_dataset
from perjax.data.own_history import own_history_pairs

SHRINK = 3


def main():
  task = load_dataset("movielens-rating", split="user", seed=0)
  sources = [e for split in task.splits.values() for e in split]
  by_movie, seen = collections.defaultdict(list), set()
  for e in sources:
    for it in e.profile:
      if (e.user_id, it.id) not in seen:
        seen.add((e.user_id, it.id))
        by_movie[it.fields["movie"]].append((e.user_id, int(it.fields["rating"])))
  overall = statistics.mean(r for ratings in by_movie.values() for _, r in ratings)
  rnd = lambda x: min(5, max(1, int(x + 0.5)))

  def item_mean(movie, user):
    others = [r for u, r in by_movie.get(movie, []) if u != user]
    return overall + (sum(others) - len(others) * overall) / (len(others) + SHRINK)

  for split in ("dev", "test"):
    errors = collections.defaultdict(list)
    for e in task.splits[split]:
      gold, history = int(e.target), own_history_pairs(task, e)
      ratings = [int(t) for _, t, _ in history]
      bias = statistics.mean(int(t) - item_mean(m, e.user_id) for m, t, _ in history)
      errors["user_mean"].append(abs(rnd(statistics.mean(ratings)) - gold))
      errors["user_median"].append(abs(statistics.median_low(ratings) - gold))
      errors["item_plus_user_bias"].append(abs(rnd(item_mean(e.input, e.user_id) + bias) - gold))
    print(split, len(task.splits[split]),
          {k: round(statistics.mean(v), 4) for k, v in errors.items()})


if __name__ == "__main__":
  main()
