"""LaMP and LongLaMP: task specs (metric kind, label list) and a reader for the official files.

Official layout: `{split}_questions.json` = [{id, input, profile: [{id, ...fields}]}] and
`{split}_outputs.json` = {task, golds: [{id, output}]}; files may carry a prefix (`LaMP_2_`).
Questions may also carry a `user_id`. Question ids must be unique across the splits.
"""
import dataclasses
import datetime
import functools
import os
import re
from pathlib import Path

from perjax import strict_json
from perjax.data.schema import PersonalizedExample, Profile, ProfileItem, Task, profile_user_id
from perjax.data.files import read_json
from perjax.data.lamp_pairs import lamp_profile_pair
from perjax.data.lamp_prompts import lamp_item_text, lamp_query
from perjax.errors import DataError

LAMP1_LABELS = ("[1]", "[2]")
# LaMP-2 as published now: movie tagging.
LAMP2_MOVIE_TAGS = ("sci-fi", "based on a book", "comedy", "action", "twist ending", "dystopia",
                    "dark comedy", "classic", "psychology", "fantasy", "romance",
                    "thought-provoking", "social commentary", "violence", "true story")
# LaMP-2 as first published: news categorization.
LAMP2_NEWS_CATEGORIES = ("travel", "education", "parenting", "sports", "food & drink", "women",
                         "business", "entertainment", "crime", "science & technology",
                         "style & beauty", "politics", "religion", "healthy living",
                         "culture & arts")
LAMP3_LABELS = ("1", "2", "3", "4", "5")


@dataclasses.dataclass(frozen=True)
class LampSpec:
  """kind: classification | rating | generation; metrics: the official ones, primary first."""
  task: str
  kind: str
  metrics: tuple[str, ...]
  labels: tuple[str, ...] | None = None


_CLASSIFICATION = ("accuracy", "f1")
_RATING = ("MAE", "RMSE")
_GENERATION = ("rouge-1", "rouge-L")


def outputs_task_name(task_name: str) -> str:
  """The task as an outputs file names it: both LaMP-2 versions ("LaMP_2-news",
  "LaMP_2-movies") are "LaMP_2" there; other names are their own."""
  return "LaMP_2" if task_name.startswith("LaMP_2-") else task_name


PREDICTIONS_FILE = "predictions.lamp.json"


def write_predictions(task_name: str, workdir: Path, records) -> None:
  """A run's answers in the LaMP outputs format (WORKDIR/predictions.lamp.json), so
  `perjax evaluate GOLDS RUN/predictions.lamp.json` scores a run with no conversion."""
  golds = [{"id": r["id"], "output": r["prediction"]} for r in records]
  (Path(workdir) / PREDICTIONS_FILE).write_text(strict_json.dumps(
      {"task": outputs_task_name(task_name), "golds": golds}, what="prediction") + "\n")


def lamp_spec(task: str, golds=None, profile_fields=None) -> LampSpec:
  """The spec of a LaMP/LongLaMP task name ("LaMP_2", "LaMP-2", "LongLaMP_1", ...).

  "LaMP_2" names both LaMP-2 versions; they are told apart by the golds (their label sets are
  disjoint) or by the profile fields (news profiles have a "category", movie ones a "tag").
  "LaMP_2-news" / "LaMP_2-movies" name one explicitly.
  """
  name = task.strip()
  if re.fullmatch(r"LongLaMP[_-].+", name):
    return LampSpec(name, "generation", _GENERATION)
  m = re.fullmatch(r"LaMP[_-]([1-7])(?:-(news|movies))?", name)
  if not m:
    raise DataError(f"unknown task {task!r}; expected LaMP_1 .. LaMP_7 or LongLaMP_*")
  n, version = int(m.group(1)), m.group(2)
  if n == 1:
    return LampSpec("LaMP_1", "classification", _CLASSIFICATION, LAMP1_LABELS)
  if n == 2:
    if version is None:
      version = _lamp2_version(golds, profile_fields)
    labels = LAMP2_NEWS_CATEGORIES if version == "news" else LAMP2_MOVIE_TAGS
    return LampSpec(f"LaMP_2-{version}", "classification", _CLASSIFICATION, labels)
  if n == 3:
    return LampSpec("LaMP_3", "rating", _RATING, LAMP3_LABELS)
  return LampSpec(f"LaMP_{n}", "generation", _GENERATION)


def _lamp2_version(golds, profile_fields) -> str:
  if profile_fields:
    if "category" in profile_fields:
      return "news"
    if "tag" in profile_fields:
      return "movies"
  golds = set(golds or ())
  news, movies = len(golds & set(LAMP2_NEWS_CATEGORIES)), len(golds & set(LAMP2_MOVIE_TAGS))
  return "news" if news > movies else "movies"  # the current benchmark when undecided


def _parse_time(value) -> float | None:
  if value is None or value == "":
    return None
  if isinstance(value, (int, float)):
    return float(value)
  for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y"):
    try:
      return datetime.datetime.strptime(str(value).strip(), fmt).replace(
          tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
      pass
  return None  # an unknown date format only costs recency ordering


def read_golds(path) -> tuple[str, dict[str, str]]:
  """(task name, id -> output) from an outputs file, checked for shape and duplicate ids."""
  data = read_json(path)
  if not isinstance(data, dict) or "golds" not in data or "task" not in data:
    raise DataError(f"{path}: expected an object with 'task' and 'golds'")
  if not isinstance(data["golds"], list):
    raise DataError(f"{path}: 'golds' must be a list")
  golds = {}
  for i, g in enumerate(data["golds"]):
    if not isinstance(g, dict) or "id" not in g or "output" not in g:
      raise DataError(f"{path}: golds[{i}] must be an object with 'id' and 'output'")
    gid = str(g["id"])
    if gid in golds:
      raise DataError(f"{path}: duplicate id {gid!r}")
    golds[gid] = str(g["output"])
  return str(data["task"]), golds


def read_questions(path, golds: dict[str, str] | None = None) -> list[PersonalizedExample]:
  """Examples of a questions file; targets come from `golds` (None when there are none)."""
  data = read_json(path)
  if not isinstance(data, list):
    raise DataError(f"{path}: expected a list of questions")
  out = []
  for i, q in enumerate(data):
    if not isinstance(q, dict) or not {"id", "input", "profile"} <= q.keys():
      raise DataError(f"{path}: question {i} must be an object with 'id', 'input' and 'profile'")
    if not isinstance(q["profile"], list):
      raise DataError(f"{path}: question {q['id']!r}: 'profile' must be a list")
    items = []
    for j, p in enumerate(q["profile"]):
      if not isinstance(p, dict) or "id" not in p:
        raise DataError(f"{path}: question {q['id']!r}: profile item {j} has no 'id'")
      fields = {k: str(v) for k, v in p.items() if k not in ("id", "date")}
      items.append(ProfileItem(str(p["id"]), fields, _parse_time(p.get("date"))))
    if any(it.time is not None for it in items):
      items.sort(key=lambda it: (it.time is None, it.time or 0.0))  # oldest first
    qid = str(q["id"])
    if golds is not None and qid not in golds:
      raise DataError(f"{path}: question {qid!r} has no gold output")
    # A user_id field names the user; without one, a user is the set of their profile items.
    user = str(q["user_id"]) if q.get("user_id") not in (None, "") else \
        profile_user_id([it.id for it in items])
    out.append(PersonalizedExample(
        id=qid, user_id=user, input=str(q["input"]),
        target=golds[qid] if golds is not None else None, profile=Profile(tuple(items))))
  return out


_SPLITS = ("train", "dev", "test")


def detect_prefix(path: "str | os.PathLike") -> str:
  """The prefix of the `{prefix}{split}_questions.json` files in folder `path` ("LaMP_2_", or
  "" for plain `train_questions.json`); an error when there are none or several."""
  root = Path(path)
  if not root.is_dir():
    raise DataError(f"{root} is not a folder of LaMP files")
  found = sorted({f.name[:-len(f"{s}_questions.json")] for s in _SPLITS
                  for f in root.glob(f"*{s}_questions.json")})
  if not found:
    raise DataError(f"{root} holds no LaMP files (PREFIX{{train,dev,test}}_questions.json)")
  if len(found) > 1:
    raise DataError(f"{root} holds LaMP files with several prefixes {found}; pass prefix= one "
                    "of them")
  return found[0]


def _check_unique_ids(root, splits):
  """Question ids name examples (and their trained groups): one id in two places is refused."""
  seen = {}
  for split, examples in splits.items():
    for ex in examples:
      if ex.id in seen:
        where = f"{seen[ex.id]} and {split}" if seen[ex.id] != split else f"{split} twice"
        raise DataError(f"{root}: question id {ex.id!r} is in {where}; ids must be unique "
                        "across splits")
      seen[ex.id] = split


def load_lamp(path: "str | os.PathLike", prefix: str | None = None,
              task: str | None = None) -> Task:
  """Reads every `{prefix}{split}_questions.json` (train, dev, test) found in the folder `path`.

  An empty or missing `prefix` is found from the file names (`detect_prefix`). The task name
  comes from `task`, else from an outputs file. Splits without an outputs file (LaMP test sets)
  get target None. A question's `user_id` field, where present, names its user.
  """
  root = Path(path)
  if not prefix:
    prefix = detect_prefix(root)
  splits, names, all_golds, fields = {}, set(), set(), set()
  for split in _SPLITS:
    qpath = root / f"{prefix}{split}_questions.json"
    if not qpath.is_file():
      continue
    opath = root / f"{prefix}{split}_outputs.json"
    golds = None
    if opath.is_file():
      name, golds = read_golds(opath)
      names.add(name)
      all_golds |= set(golds.values())
    splits[split] = read_questions(qpath, golds)
    for ex in splits[split][:5]:
      for it in ex.profile.items[:1]:
        fields |= set(it.fields)
  if not splits:
    raise DataError(f"missing data file {root / (prefix + 'train_questions.json')} "
                    f"(no {prefix}{{train,dev,test}}_questions.json in {root})")
  if len(names) > 1:
    raise DataError(f"{root}: outputs files disagree on the task: {sorted(names)}")
  _check_unique_ids(root, splits)
  name = task or (names.pop() if names else None)
  if name is None:
    raise DataError(f"{root}: no outputs file names the task; pass task=")
  spec = lamp_spec(name, all_golds, fields)
  examples = [e for s in splits.values() for e in s]
  return Task(name=spec.task, granularity="user", splits=splits, metrics=spec.metrics,
              labels=spec.labels, split_by="official",
              description=f"{spec.task} read from {root}/{prefix}*",
              profile_pair=lamp_profile_pair(spec.task, spec.labels, examples, fields),
              query=lamp_query(spec.task), item_text=lamp_item_text(spec.task, fields),
              write_outputs=functools.partial(write_predictions, spec.task))
