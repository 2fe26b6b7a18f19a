"""perjax.reporting.compare: two cells of a sweep on the same examples."""
import json

import pytest

from perjax.errors import DataError
from perjax.reporting.compare import compare, main


def write_run(folder, predictions, golds):
  folder.mkdir(parents=True)
  rows = [{"id": f"e{i}", "prediction": p, "target": g}
          for i, (p, g) in enumerate(zip(predictions, golds))]
  (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  (folder / "metrics.json").write_text(json.dumps({"MAE": 0.0, "MAE/extra": 0.0}))


def test_a_perfect_cell_beats_one_always_off_by_one(tmp_path, capsys):
  golds = [str(1 + i % 5) for i in range(40)]
  off = [str(g + 1 if g < 5 else g - 1) for g in map(int, golds)]
  for s in range(2):
    write_run(tmp_path / f"method=a,granularity=user,seed={s}", golds, golds)
  write_run(tmp_path / "method=b,granularity=global,seed=0", off, golds)
  [row] = compare(tmp_path, "method=a,granularity=user", "method=b,granularity=global", n=200)
  assert (row["metric"], row["a"], row["b"]) == ("MAE", 0.0, 1.0)
  assert row["p"] < 0.02 and (row["seeds_a"], row["seeds_b"], row["examples"]) == (2, 1, 40)
  [same] = compare(tmp_path, "method=a,granularity=user", "method=a,granularity=user", n=200)
  assert same["p"] == 1.0
  assert main([str(tmp_path), "method=a,granularity=user", "method=b,granularity=global"]) == 0
  assert "| MAE | 0.0000 | 1.0000 |" in capsys.readouterr().out


def test_an_unknown_cell_names_the_cells_there(tmp_path):
  write_run(tmp_path / "method=a,granularity=user,seed=0", ["1"], ["1"])
  with pytest.raises(DataError, match=r"no finished run of cell 'method=c'.*method=a"):
    compare(tmp_path, "method=c", "method=a,granularity=user")


def test_gold_perplexity_is_compared_and_cost_is_not(tmp_path):
  for cell, logprob in (("method=a,granularity=user", -2.0), ("method=b,granularity=user", -4.0)):
    folder = tmp_path / f"{cell},seed=0"
    folder.mkdir(parents=True)
    rows = [{"id": f"e{i}", "prediction": "x", "target": "x", "gold_tokens": 2,
             "gold_logprob": logprob - 0.01 * i} for i in range(30)]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "metrics.json").write_text(json.dumps({
        "accuracy": 1.0, "gold_ppl": 0.0, "wall_seconds": 3.0, "train_steps": 5,
        "early_stopping": {"task_stage": {"kept_step": 2}}}))
  rows = compare(tmp_path, "method=a,granularity=user", "method=b,granularity=user", n=200)
  by_metric = {r["metric"]: r for r in rows}
  assert set(by_metric) == {"accuracy", "gold_ppl"}
  gold = by_metric["gold_ppl"]
  assert gold["a"] < gold["b"] and gold["p"] < 0.02  # lower perplexity: a is the better cell


def test_multi_label_f1_counts_the_tasks_labels(tmp_path, shared_data):
  """A label-set task's F1 over its own labels, read from the run's config: without them every
  set read as empty and both cells scored 1.0."""
  root = shared_data
  golds = ["joy, trust", "anger", "disgust, anger", "none"] * 5
  for cell, preds in (("method=a,granularity=user", golds),
                      ("method=b,granularity=user", ["sadness"] * len(golds))):
    folder = tmp_path / f"{cell},seed=0"
    write_run(folder, preds, golds)
    (folder / "metrics.json").write_text(json.dumps({"multilabel_f1": 0.0}))
    (folder / "config.json").write_text(json.dumps(
        {"data": {"name": "studemo", "params": {"data_dir": str(root)}}}))
  [row] = compare(tmp_path, "method=a,granularity=user", "method=b,granularity=user", n=200)
  assert (row["metric"], row["a"], row["b"]) == ("multilabel_f1", 1.0, 0.0)
  assert row["p"] < 0.02
