"""The LaMP reader on real records (lamp_tiny) and on broken files."""
import json
import os
from pathlib import Path

import pytest

from perjax.data import lamp_spec, load_lamp
from perjax.data.lamp import LAMP2_MOVIE_TAGS, LAMP2_NEWS_CATEGORIES
from perjax.errors import DataError

DATA = Path(os.environ.get("PERJAX_DATA",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data"))
TINY = DATA / "lamp_tiny"
needs_tiny = pytest.mark.skipif(not TINY.is_dir(), reason=f"LaMP sample not found at {TINY} "
                                "(set PERJAX_DATA to the shared data folder)")


@needs_tiny
def test_reads_lamp1():
  task = load_lamp(TINY, "LaMP_11_")
  assert task.name == "LaMP_1" and task.labels == ("[1]", "[2]")
  assert task.metrics == ("accuracy", "f1")
  assert [e.target for e in task.splits["train"]] == ["[1]", "[1]", "[2]"]
  assert all(e.target is None for e in task.splits["test"])  # no outputs file
  ex = task.splits["train"][0]
  assert len(ex.profile) == 117 and ex.profile[0].fields["title"]
  assert ex.user_id.startswith("u")


@needs_tiny
def test_reads_first_version_lamp2_news():
  task = load_lamp(TINY, "LaMP_22_")
  assert task.name == "LaMP_2-news" and task.labels == LAMP2_NEWS_CATEGORIES
  assert set(task.splits) == {"train", "dev", "test"}
  assert all(e.target in task.labels for e in task.splits["dev"])
  assert "category" in task.splits["train"][0].profile[0].fields


def test_specs():
  assert lamp_spec("LaMP_2", golds=["comedy"]).labels == LAMP2_MOVIE_TAGS
  assert lamp_spec("LaMP_2", golds=["politics"]).labels == LAMP2_NEWS_CATEGORIES
  assert lamp_spec("LaMP-3").metrics == ("MAE", "RMSE")
  assert lamp_spec("LaMP_3").labels == ("1", "2", "3", "4", "5")
  for t in ("LaMP_4", "LaMP_5", "LaMP_6", "LaMP_7", "LongLaMP_2"):
    assert lamp_spec(t).metrics == ("rouge-1", "rouge-L")
  with pytest.raises(DataError, match="unknown task"):
    lamp_spec("LaMP_9")


def test_user_id_is_the_profile(tmp_path):
  q = [{"id": "1", "input": "a", "profile": [{"id": "p1", "text": "x"}, {"id": "p2", "text": "y"}]},
       {"id": "2", "input": "b", "profile": [{"id": "p2", "text": "y"}, {"id": "p1", "text": "x"}]},
       {"id": "3", "input": "c", "profile": [{"id": "p3", "text": "z", "date": "2020-01-02"}]}]
  (tmp_path / "dev_questions.json").write_text(json.dumps(q))
  (tmp_path / "dev_outputs.json").write_text(json.dumps(
      {"task": "LaMP_7", "golds": [{"id": i, "output": "o"} for i in "123"]}))
  ex = load_lamp(tmp_path).splits["dev"]
  assert ex[0].user_id == ex[1].user_id != ex[2].user_id
  assert ex[2].profile[0].time is not None


@pytest.mark.parametrize("content,problem", [
    ("[{", "malformed JSON"),
    ('{"id": 1}', "expected a list"),
    ('[{"id": "1", "input": "x"}]', "'profile'"),
    ('[{"id": "1", "input": "x", "profile": [{"text": "t"}]}]', "no 'id'"),
])
def test_malformed_questions_name_file_and_problem(tmp_path, content, problem):
  (tmp_path / "train_questions.json").write_text(content)
  with pytest.raises(DataError, match=problem) as e:
    load_lamp(tmp_path, task="LaMP_1")
  assert "train_questions.json" in str(e.value)


def test_gold_missing_for_a_question(tmp_path):
  (tmp_path / "train_questions.json").write_text('[{"id": "1", "input": "x", "profile": []}]')
  (tmp_path / "train_outputs.json").write_text('{"task": "LaMP_1", "golds": []}')
  with pytest.raises(DataError, match="no gold output"):
    load_lamp(tmp_path)


def test_missing_folder_names_the_file(tmp_path):
  with pytest.raises(DataError, match="LaMP_3_train_questions.json"):
    load_lamp(tmp_path, "LaMP_3_")
