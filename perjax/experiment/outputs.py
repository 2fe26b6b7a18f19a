"""What a finished run leaves in its workdir: predictions.jsonl (one record per evaluated
example), per_user.csv, the task's own files (`Task.write_outputs`, e.g. LaMP's), the prompting
methods' notes, and metrics.json, written last: its presence marks the run finished."""
import csv
import json
from pathlib import Path

from perjax import stats, strict_json
from perjax.errors import DataError

CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE = "config.json", "metrics.json", "predictions.jsonl"
GROUPS_FILE, PROMPTING_FILE, PER_USER_FILE = "groups.json", "prompting.json", "per_user.csv"


def read_records(run_dir: Path) -> list[dict]:
  """A run's predictions.jsonl records."""
  path = Path(run_dir) / PREDICTIONS_FILE
  if not path.is_file():
    raise DataError(f"missing {path}")
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_per_user(run_dir: Path, metrics, labels=None) -> list[dict]:
  """RUN/per_user.csv: one row per user (user_id, examples, each metric, and gold_nll /
  gold_ppl where the run recorded the gold likelihood)."""
  records = read_records(run_dir)
  if stats.has_gold_likelihood(records):
    metrics = [*metrics, *stats.GOLD_METRICS]
  rows = stats.per_user_table(records, metrics=metrics, labels=labels)
  with open(Path(run_dir) / PER_USER_FILE, "w", newline="") as f:
    w = csv.DictWriter(f, ["user_id", "examples", *metrics])
    w.writeheader()
    w.writerows(rows)
  return rows


def write_groups(workdir: Path, names: dict) -> None:
  """DIR/groups.json: {level: each row's name}, so exports can name rows."""
  (workdir / GROUPS_FILE).write_text(strict_json.dumps(names, what="group name", indent=1) + "\n")


def write_run(workdir: Path, task, metrics: dict, records: list[dict], notes: dict,
              per_user: bool = False) -> dict:
  """Writes every output of a finished run; returns its metrics, with the prompting methods'
  numeric notes (a chosen setting, say) added. `per_user`: a task scored per user (not
  preference pairs) also gets per_user.csv."""
  if notes:  # what the prompting methods report (summaries generated, a chosen setting)
    (workdir / PROMPTING_FILE).write_text(
        strict_json.dumps(notes, what="prompting note", indent=1) + "\n")
    metrics = {**metrics, **{k: v for k, v in notes.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)}}
  # Checked first, so a non-finite metric leaves no half-written outputs behind.
  text = strict_json.dumps(metrics, what="metric", indent=1,
                           hint="the predictions or golds hold a non-finite number")
  with open(workdir / PREDICTIONS_FILE, "w") as f:
    for r in records:
      f.write(strict_json.dumps(r, what="prediction record") + "\n")
  if task.write_outputs is not None:  # the task's own format (LaMP's outputs file)
    task.write_outputs(workdir, records)
  if per_user:
    write_per_user(workdir, task.metrics, task.labels)
  tmp = workdir / (METRICS_FILE + ".tmp")
  tmp.write_text(text + "\n")
  tmp.replace(workdir / METRICS_FILE)
  return metrics
