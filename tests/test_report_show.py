"""`perjax report` (tables and plots again from finished runs) and `perjax show`, on run folders
written by hand: nothing is trained."""
import csv
import json
import os

import pytest

from perjax.cli import main
from perjax.reporting import figures

RUNS = {  # run: (method, granularity, accuracy, per-user accuracies)
    "method=zero_shot,granularity=global": ("zero_shot", "global", 0.25, [0.0, 0.5]),
    "method=rag,granularity=user": ("rag", "user", 0.5, [0.25, 0.75]),
    "method=rag,granularity=persona": ("rag", "persona", 0.375, [0.5, 0.25]),
    "method=lora,granularity=user": ("lora", "user", 0.625, [0.5, 0.75]),
    "method=soft_prompt,granularity=user": ("soft_prompt", "user", 0.75, [1.0, 0.5]),
}


def make_sweep(root):
  for i, (run, (method, granularity, acc, per_user)) in enumerate(RUNS.items()):
    d = root / run
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"method": method, "granularity": granularity,
                                               "seed": 0, "train": {"lr": 0.01}}))
    os.utime(d / "config.json", (1e9 + i, 1e9 + i))  # started in the order of RUNS
    (d / "metrics.json").write_text(json.dumps({"accuracy": acc, "f1": acc / 2}))
    with open(d / "per_user.csv", "w", newline="") as f:
      w = csv.writer(f)
      w.writerow(["user_id", "examples", "accuracy", "f1"])
      w.writerows([[f"u{i}", 4, a, a / 2] for i, a in enumerate(per_user)])
  (root / "unfinished").mkdir()  # no metrics.json: not a row
  return root


def test_report_rebuilds_the_tables_from_finished_runs(tmp_path, capsys):
  sweep = make_sweep(tmp_path / "sweep")
  assert main(["report", str(sweep)]) == 0
  assert "| lora | user | 0.6250 | 0.3125 |" in capsys.readouterr().out
  with open(sweep / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  # the runs in the order they started (the sweep's), not the folders' alphabetical order
  assert [(r["method"], r["granularity"], float(r["accuracy"])) for r in rows] == \
      [(m, g, a) for m, g, a, _ in RUNS.values()]
  assert (sweep / "results.png").stat().st_size > 10_000


def test_heat_map_cells_hold_the_best_method():
  rows = [{"run": run, "method": m, "granularity": g, "accuracy": a, "mae": 1 - a}
          for run, (m, g, a, _) in RUNS.items()]
  cells = figures.best_per_cell(rows, "accuracy")
  assert cells[("finetuning", "user")] == ("lora", 0.625)
  assert cells[("embedding", "user")] == ("soft_prompt", 0.75)
  assert cells[("prompting", "user")] == ("rag", 0.5)
  assert cells[("prompting", "persona")] == ("rag", 0.375)
  # an error metric: the smallest value is the best
  assert figures.best_per_cell(rows, "mae")[("prompting", "user")] == ("rag", 0.5)
  assert figures.best_per_cell(rows, "mae")[("prompting", "global")] == ("zero_shot", 0.75)


def test_per_user_values_come_from_each_runs_csv(tmp_path):
  sweep = make_sweep(tmp_path / "sweep")
  rows = [{"run": run, "method": m, "granularity": g} for run, (m, g, _, _) in RUNS.items()]
  values = figures.per_user_values(sweep, rows, "accuracy")
  assert values["lora@user"] == [0.5, 0.75]
  assert values["zero_shot@global"] == [0.0, 0.5]


def test_report_of_nothing_is_a_one_line_error(tmp_path, capsys):
  assert main(["report", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip()
  assert "no finished run" in err and len(err.splitlines()) == 1


def write_run(d):
  d.mkdir()
  records = [{"id": f"x{i}", "user_id": f"u{i % 2}", "group": i % 2,
              "prompt": f"Past items: ALPHA{i}\nQuestion {i}?", "system": "Be brief.",
              "output": f"out{i}", "prediction": f"pred{i}", "target": f"pred{i}" if i else "t"}
             for i in range(4)]
  (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  return records


def test_show_prints_prompt_output_prediction_target(tmp_path, capsys):
  write_run(tmp_path / "run")
  assert main(["show", str(tmp_path / "run"), "--user", "u1", "--n", "5", "--width", "150"]) == 0
  out = capsys.readouterr().out
  assert out.count("user u1") == 2 and "user u0" not in out  # u1 has rows x1 and x3
  for text in ("ALPHA1", "Question 3?", "out1", "pred3", "Be brief.", "(correct)"):
    assert text in out
  header = next(l for l in out.splitlines() if l.startswith("prompt"))
  assert [c.strip() for c in header.split("|")] == ["prompt", "output", "prediction", "target"]


def test_show_limits_and_unknown_user(tmp_path, capsys):
  write_run(tmp_path / "run")
  assert main(["show", str(tmp_path / "run"), "--n", "1"]) == 0
  out = capsys.readouterr().out
  assert "#1 user u0" in out and "(wrong)" in out and "#2" not in out
  assert main(["show", str(tmp_path / "run"), "--user", "nobody"]) == 2
  err = capsys.readouterr().err.strip()
  assert "nobody" in err and "u0" in err and len(err.splitlines()) == 1


def test_show_preference_rows(tmp_path, capsys):
  (tmp_path / "run").mkdir()
  record = {"id": "q1", "user_id": "d1", "group": 0, "prompt": "Which answer?", "system": None,
            "chosen_reward": 0.25, "rejected_reward": 0.5}
  (tmp_path / "run" / "predictions.jsonl").write_text(json.dumps(record) + "\n")
  assert main(["show", str(tmp_path / "run"), "--width", "120"]) == 0
  out = capsys.readouterr().out
  assert "(wrong)" in out and "0.2500" in out and "0.5000" in out and "rejected reward" in out


def test_results_png_with_baseline_rows_that_lack_the_swept_settings(tmp_path):
  from perjax.reporting import report
  rows = [{"run": "a", "method": "lora", "granularity": "user", "train.on": "own_history",
           "MAE_mean": 0.8},
          {"run": "baseline:user_mean", "method": "baseline:user_mean", "granularity": "user",
           "MAE_mean": 0.7}]
  report.write(tmp_path, rows, swept=("train.on",))
  assert (tmp_path / "results.png").stat().st_size > 0
  assert "baseline:user_mean" in (tmp_path / "results.md").read_text()
