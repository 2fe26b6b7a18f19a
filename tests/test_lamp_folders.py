"""LaMP-format folders from elsewhere: the prefix is found, user_id is honoured, ids repeated
across splits are refused, and profile items become pairs in the task's format."""
import importlib.util
import json
from pathlib import Path

import pytest

from perjax.data import data_root, load_dataset, load_lamp
from perjax.data.lamp import detect_prefix
from perjax.errors import DataError

REVIEW = "What is the score of the following review on a scale of 1 to 5? just answer with 1, 2, 3, 4, or 5 without further explanation. review: "  # noqa: E501


def _write(folder: Path, prefix: str, split: str, questions, task="LaMP_3", golds=None):
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"{prefix}{split}_questions.json").write_text(json.dumps(questions))
  golds = golds or {q["id"]: "4" for q in questions}
  (folder / f"{prefix}{split}_outputs.json").write_text(json.dumps(
      {"task": task, "golds": [{"id": i, "output": o} for i, o in golds.items()]}))


def _rating(qid, user=None, items=(("r1", "great", "5.0"), ("r2", "bad", "1"))):
  q = {"id": qid, "input": REVIEW + f"review {qid}",
       "profile": [{"id": i, "text": t, "score": s} for i, t, s in items]}
  if user is not None:
    q["user_id"] = user
  return q


def test_prefix_is_found_when_empty_or_missing(tmp_path):
  _write(tmp_path, "Mine_3_", "train", [_rating("1")])
  _write(tmp_path, "Mine_3_", "dev", [_rating("2")])
  assert detect_prefix(tmp_path) == "Mine_3_"
  for prefix in (None, ""):
    assert set(load_lamp(tmp_path, prefix).splits) == {"train", "dev"}
  _write(tmp_path / "plain", "", "dev", [_rating("1")])
  assert detect_prefix(tmp_path / "plain") == ""


def test_several_prefixes_or_none_are_one_line_errors(tmp_path):
  _write(tmp_path, "A_", "dev", [_rating("1")])
  _write(tmp_path, "B_", "dev", [_rating("2")])
  with pytest.raises(DataError, match=r"several prefixes \['A_', 'B_'\]") as e:
    load_lamp(tmp_path, "")
  assert "\n" not in str(e.value)
  assert load_lamp(tmp_path, "B_").splits["dev"][0].id == "2"
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="holds no LaMP files"):
    detect_prefix(tmp_path / "empty")


def test_user_id_field_names_the_user(tmp_path):
  items_b = (("r9", "meh", "3"),)
  _write(tmp_path, "", "dev", [_rating("1", "alice"), _rating("2", "alice", items_b),
                               _rating("3")])
  a1, a2, anon = load_lamp(tmp_path).splits["dev"]
  assert a1.user_id == a2.user_id == "alice"  # different profiles, one user
  assert anon.user_id.startswith("u")  # no field: identified by the profile items


def test_ids_repeated_across_splits_are_refused(tmp_path):
  _write(tmp_path, "", "train", [_rating("7")])
  _write(tmp_path, "", "dev", [_rating("7")])
  with pytest.raises(DataError, match="question id '7' is in train and dev") as e:
    load_lamp(tmp_path)
  assert "\n" not in str(e.value)


def test_rating_items_become_pairs_on_the_label_scale(tmp_path):
  _write(tmp_path, "", "dev", [_rating("1")])
  task = load_lamp(tmp_path)
  great, bad = task.splits["dev"][0].profile
  assert task.profile_pair(great) == (REVIEW + "great", "5")  # "5.0" is the label "5"
  assert task.profile_pair(bad) == (REVIEW + "bad", "1")


def test_generation_and_longlamp_pairs(tmp_path):
  q = [{"id": "1", "input": "Generate a headline for the following article: news",
        "profile": [{"id": "p", "text": "old news", "title": "Old headline"}]}]
  _write(tmp_path / "l4", "", "dev", q, task="LaMP_4", golds={"1": "New"})
  task = load_lamp(tmp_path / "l4")
  assert task.profile_pair(task.splits["dev"][0].profile[0]) == (
      "Generate a headline for the following article: old news", "Old headline")
  item = {"id": "p", "overall": "4.0", "summary": "Fine", "reviewText": "It works.",
          "description": "A lamp"}
  _write(tmp_path / "ll", "", "dev", [{"id": "1", "input": "x", "profile": [item]}],
         task="LongLaMP_3", golds={"1": "y"})
  task = load_lamp(tmp_path / "ll")
  x, y = task.profile_pair(task.splits["dev"][0].profile[0])
  assert '"4.0"' in x and '"A lamp"' in x and '"Fine"' in x and y == "It works."
  q7 = [{"id": "1", "input": "Paraphrase the following tweet: a", "profile": [{"id": "p",
                                                                               "text": "b"}]}]
  _write(tmp_path / "l7", "", "dev", q7, task="LaMP_7", golds={"1": "c"})
  assert load_lamp(tmp_path / "l7").profile_pair is None


def test_lamp_config_finds_the_prefix_of_any_folder(tmp_path):
  _write(tmp_path, "Other_", "train", [_rating("1")])
  _write(tmp_path, "Other_", "dev", [_rating("2")])
  spec = importlib.util.spec_from_file_location(
      "lamp_cfg", Path(__file__).resolve().parents[1] / "experiments" / "lamp.py")
  cfg = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(cfg)
  c = cfg.get_config(f"path={tmp_path},prefix=")
  assert load_dataset(c.data.name, **c.data.params).name == "LaMP_3"
  if (data_root() / "lamp_tiny").is_dir():  # the default: lamp_tiny's LaMP-2 sample
    c = cfg.get_config(None)
    assert load_dataset(c.data.name, **c.data.params).name == "LaMP_2-news"
