"""`perjax report DIR`: a sweep's (or one run's) results.csv, results.md and results.png again,
from the finished runs' metrics.json, config.json and per_user.csv; nothing is run."""
import json
from pathlib import Path

import ml_collections

from perjax.errors import PerjaxError
from perjax.reporting import report
from perjax.reporting.results import write_results
from perjax.experiment.config import flatten

NAME_KEYS = ("method", "granularity", "seed")  # columns of their own, or the seeds' axis


def finished(folder: Path) -> bool:
  return (folder / "metrics.json").is_file() and (folder / "config.json").is_file()


def name_keys(run: str) -> list[str]:
  """The override keys a sweep put into a run's folder name (`method=rag,train.lr=0.01`);
  a value holding commas (`targets=q,v`) continues the previous key."""
  return [token.split("=", 1)[0] for token in run.split(",") if "=" in token]


def _row(folder: Path, name: str, swept) -> dict:
  config = json.loads((folder / "config.json").read_text())
  metrics = json.loads((folder / "metrics.json").read_text())
  flat = flatten(config)
  row = {"run": name, "method": config["method"], "granularity": config["granularity"]}
  row.update({k: flat.get(k, "") for k in swept})
  return {**row, **metrics}


def _started(folder: Path) -> float:
  """When the run started: its config.json is written (claimed) first, so the runs of a sweep
  come back in the sweep's order."""
  return (folder / "config.json").stat().st_mtime


def rereport(folder) -> Path:
  """Writes DIR/results.{csv,md,png} from the finished runs in DIR (or from DIR, one run);
  returns the path of results.md."""
  folder = Path(folder)
  if finished(folder):
    report.write(folder, [_row(folder, ".", [])])
    return folder / "results.md"
  runs = sorted(p for p in folder.iterdir() if p.is_dir() and finished(p)) \
      if folder.is_dir() else []
  if not runs:
    raise PerjaxError(f"{folder} holds no finished run (a folder with metrics.json and "
                      "config.json, or subfolders with them)")
  swept = [k for k in dict.fromkeys(k for p in runs for k in name_keys(p.name))
           if k not in NAME_KEYS]
  runs.sort(key=lambda p: (_started(p), p.name))
  rows = [_row(p, p.name, swept) for p in runs]
  config = ml_collections.ConfigDict(json.loads((runs[0] / "config.json").read_text()))
  write_results(folder, rows, swept, config)
  return folder / "results.md"
