"""MovieLens (ml-latest-small) as two per-user tasks in the style of LaMP-2 and LaMP-3.

ratings.csv and movies.csv have no header row; tags.csv has one.
"""
import collections
import math
import random

from perjax.data.catalog import dataset
from perjax.data.files import data_root, read_csv
from perjax.data.pairs import FieldPair
from perjax.data.schema import ProfileItem, Task
from perjax.data.splits import Record, history_splits
from perjax.errors import ConfigError, DataError

RATING_LABELS = ("1", "2", "3", "4", "5")


def read_movies(root) -> dict[str, tuple[str, str]]:
  """movie id -> (title, genres joined by ", ") from `root`/movies.csv."""
  rows = read_csv(root / "movies.csv", header=False, columns=3)
  return {mid: (title, genres.replace("|", ", ")) for mid, title, genres in rows}


def describe_movie(movies, mid, path) -> str:
  """The text a movie stands for in prompts and profiles: "Title (Year) (Genre, Genre)";
  `path` names the file that mentioned `mid`, for the error."""
  if mid not in movies:
    raise DataError(f"{path}: movie {mid} is not in movies.csv")
  title, genres = movies[mid]
  return f"{title} ({genres})"


def round_rating(stars: float) -> int:
  """Half stars round up (3.5 -> 4) as LaMP-3 uses whole stars; 0.5 becomes 1."""
  return min(5, max(1, math.floor(stars + 0.5)))


@dataset("movielens-tagging", "user",
         "predict the tag a user gives a movie from its title and genres (LaMP-2 style); profile = "
         "the user's earlier (movie, tag) pairs", split_kinds=("user", "time"))
def movielens_tagging(data_dir=None, split="user", seed=0, n_tags=20, min_history=1,
                      max_profile=64, fractions=(0.8, 0.1, 0.1), profile_tags="vocab") -> Task:
  """Examples are (user, movie) pairs with a tag in the `n_tags` most frequent tags.

  `profile_tags="vocab"` (default) keeps only profile items whose tag is in that vocabulary, as
  LaMP-2 does: most tags users give are outside it, so a profile of every tag would show
  retrieval and per-user training mostly answers the task can never have. `"all"` keeps every
  earlier tag the user gave. Either way a profile holds only earlier records (see splits).
  """
  if profile_tags not in ("vocab", "all"):
    raise ConfigError(f"profile_tags must be 'vocab' or 'all', got {profile_tags!r}")
  root = data_root(data_dir) / "movielens"
  movies = read_movies(root)
  path = root / "tags.csv"
  rows = read_csv(path, header=True, columns=4)
  counts = collections.Counter(r["tag"].strip().lower() for r in rows)
  # Most frequent tags; ties broken by name so the vocabulary is stable.
  vocab = tuple(t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n_tags])
  rank = {t: i for i, t in enumerate(vocab)}
  chosen: dict[tuple[str, str], str] = {}  # one example per (user, movie): its most common tag
  for r in rows:
    tag, key = r["tag"].strip().lower(), (r["userId"], r["movieId"])
    if tag in rank and (key not in chosen or rank[tag] < rank[chosen[key]]):
      chosen[key] = tag
  records = []
  for i, r in enumerate(rows):
    tag, uid, mid = r["tag"].strip().lower(), r["userId"], r["movieId"]
    if profile_tags == "vocab" and tag not in rank:
      continue  # neither an example nor a profile item
    try:
      t = float(r["timestamp"])
    except ValueError:
      raise DataError(f"{path}: row {i + 2}: bad timestamp {r['timestamp']!r}") from None
    movie = describe_movie(movies, mid, path)
    item = ProfileItem(f"{uid}-{mid}-{i}", {"movie": movie, "tag": tag}, t)
    is_example = chosen.get((uid, mid)) == tag
    if is_example:
      chosen[(uid, mid)] = None  # later rows of the same pair are history only
    records.append(Record(id=f"ml-tag-{uid}-{mid}-{i}", user_id=f"ml{uid}", input=movie,
                          target=tag, item=item, time=t, is_example=is_example))
  splits = history_splits(records, by=split, seed=seed, fractions=fractions,
                          min_history=min_history, max_profile=max_profile)
  # An item is (movie, tag): the example's own format; a tag outside the vocabulary forms no pair.
  return Task("movielens-tagging", "user", splits, ("accuracy", "f1"), vocab, split,
              f"MovieLens tags, {len(vocab)}-tag vocabulary",
              profile_pair=FieldPair("movie", "tag", labels=vocab))


@dataset("movielens-rating", "user",
         "predict the 1-5 star rating a user gives a movie (LaMP-3 style); profile = the user's "
         "earlier ratings", split_kinds=("user", "time"))
def movielens_rating(data_dir=None, split="user", seed=0, max_users=200,
                     max_ratings_per_user=60, min_history=20, max_profile=32,
                     fractions=(0.8, 0.1, 0.1)) -> Task:
  """Ratings are rounded to whole stars by `round_rating`. To stay small, `max_users` users are
  drawn (seeded) and each keeps their `max_ratings_per_user` most recent ratings.

  A rating is an example once the user has `min_history` strictly earlier ratings, its profile
  the (at most `max_profile`) latest of them. So under split "user" (no dev/test user in train)
  each held-out user's first `min_history` ratings are history only: the own history that
  per-user training reads. The defaults give about 570 test examples from 18 users. Other
  users' ratings of the same movie reach an example through a global pool (perjax.pools), which
  holds every user's profile items, training users' included."""
  root = data_root(data_dir) / "movielens"
  movies = read_movies(root)
  path = root / "ratings.csv"
  rows = read_csv(path, header=False, columns=4)
  by_user = collections.defaultdict(list)
  for i, (uid, mid, stars, ts) in enumerate(rows):
    try:
      by_user[uid].append((float(ts), mid, float(stars), i))
    except ValueError:
      raise DataError(f"{path}: row {i + 1}: rating and timestamp must be numbers") from None
  users = sorted(by_user, key=int)
  if max_users is not None and len(users) > max_users:
    users = sorted(random.Random(seed).sample(users, max_users), key=int)
  records = []
  for uid in users:
    for t, mid, stars, i in sorted(by_user[uid])[-max_ratings_per_user:]:
      movie = describe_movie(movies, mid, path)
      label = str(round_rating(stars))
      item = ProfileItem(f"{uid}-{mid}", {"movie": movie, "rating": label}, t)
      records.append(Record(id=f"ml-rate-{uid}-{mid}-{i}", user_id=f"ml{uid}", input=movie,
                            target=label, item=item, time=t))
  splits = history_splits(records, by=split, seed=seed, fractions=fractions,
                          min_history=min_history, max_profile=max_profile)
  return Task("movielens-rating", "user", splits, ("MAE", "RMSE"), RATING_LABELS, split,
              "MovieLens ratings rounded to whole stars",
              profile_pair=FieldPair("movie", "rating", labels=RATING_LABELS))
