"""Builders over the real shared data (skipped where ../shared/data is absent)."""
import os
from pathlib import Path

import pytest

from perjax.data import PreferenceExample, load_dataset
from perjax.errors import DataError
from perjax.registry import DATASETS

from test_data_splits import assert_no_time_leak, assert_no_user_leak

DATA = Path(os.environ.get("PERJAX_DATA",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA} "
                                "(set PERJAX_DATA to the shared data folder)")

SMALL = {"movielens-rating": {"max_users": 30, "max_ratings_per_user": 30},
         "persona-chat": {"max_personas": 300}, "dsp-preferences": {"max_queries": 80}}
CASES = [("movielens-tagging", "user"), ("movielens-tagging", "time"),
         ("movielens-rating", "user"), ("movielens-rating", "time"), ("persona-chat", "user"),
         ("dsp-preferences", "query"), ("dsp-preferences", "user"), ("studemo", "user"),
         ("studemo", "random")]


def _build(name, split, seed=0):
  return load_dataset(name, data_dir=DATA, split=split, seed=seed, **SMALL.get(name, {}))


@needs_data
@pytest.mark.parametrize("name,split", CASES)
def test_builder_splits(name, split):
  task = _build(name, split)
  assert all(task.splits[s] for s in ("train", "dev", "test")), {
      s: len(v) for s, v in task.splits.items()}
  again = _build(name, split)
  assert {s: [e.id for e in v] for s, v in task.splits.items()} == {
      s: [e.id for e in v] for s, v in again.splits.items()}
  if split == "user":
    assert_no_user_leak(task.splits)
  if split == "time":
    assert_no_time_leak(task.splits)
  if split == "random":  # a held-out annotation never sits in the same user's train profiles
    test_ids = {e.id.rsplit("-", 1)[0].split("-", 1)[1] for e in task.splits["test"]}
    for e in task.splits["train"]:
      assert not test_ids & {it.id for it in e.profile}
  ex = task.splits["test"][0]
  if isinstance(ex, PreferenceExample):
    assert ex.chosen != ex.rejected and ex.persona_id == ex.user_id
  else:
    assert ex.input and ex.target and len(ex.profile) > 0
    if task.labels and name != "studemo":
      assert all(e.target in task.labels for e in task.examples())


@needs_data
def test_rating_rounds_half_stars():
  from perjax.data.movielens import round_rating
  assert [round_rating(x) for x in (0.5, 1.0, 2.5, 3.5, 4.5, 5.0)] == [1, 1, 3, 4, 5, 5]
  task = _build("movielens-rating", "time")
  assert {e.target for e in task.examples()} <= {"1", "2", "3", "4", "5"}


@needs_data
def test_tagging_profile_holds_vocabulary_tags_unless_all():
  # LaMP-2 semantics: profile items carry one of the task's labels; "all" keeps every tag.
  task = _build("movielens-tagging", "time")
  assert all(it.fields["tag"] in task.labels for e in task.examples() for it in e.profile)
  full = load_dataset("movielens-tagging", data_dir=DATA, split="time", profile_tags="all")
  assert any(it.fields["tag"] not in full.labels for e in full.examples() for it in e.profile)
  assert_no_time_leak(full.splits)


@pytest.mark.parametrize("name", [n for n in DATASETS.names() if n not in ("synthetic", "lamp")])
def test_missing_files_name_the_file(name, tmp_path):
  with pytest.raises(DataError, match=str(tmp_path)):
    load_dataset(name, data_dir=tmp_path)


def test_malformed_csv_names_file_and_row(tmp_path):
  ml = tmp_path / "movielens"
  ml.mkdir()
  (ml / "movies.csv").write_text("1,Toy Story (1995),Comedy\n")
  (ml / "ratings.csv").write_text("1,1,4.0,100\n1,1,4.0\n")
  with pytest.raises(DataError, match=r"ratings\.csv: row 2"):
    load_dataset("movielens-rating", data_dir=tmp_path)
