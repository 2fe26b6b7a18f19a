"""Locating and reading data files, with errors that name the file and the problem."""
import csv
import json
import os
from pathlib import Path

from perjax.errors import DataError

# The shared data folder sits beside the project checkout (../shared/data); PERJAX_DATA overrides.
_DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def data_root(data_dir: "str | os.PathLike | None" = None) -> Path:
  if data_dir is not None:
    return Path(data_dir)
  return Path(os.environ.get("PERJAX_DATA", _DEFAULT_ROOT))


def require(path: "str | os.PathLike") -> Path:
  path = Path(path)
  if not path.is_file():
    raise DataError(f"missing data file {path}")
  return path


def read_json(path: "str | os.PathLike"):
  path = require(path)
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None


def read_csv(path: "str | os.PathLike", header: bool, columns: int) -> list:
  """Rows of a CSV file (dicts when it has a header row), each checked to have `columns` fields."""
  path = require(path)
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f) if header else csv.reader(f)
    rows = list(reader)
  for i, row in enumerate(rows):
    if header:  # DictReader files extra fields under None and fills missing ones with None
      n = columns + len(row.get(None, ())) - sum(v is None for v in row.values())
    else:
      n = len(row)
    if n != columns:
      raise DataError(f"{path}: row {i + 1 + header} has {n} fields, expected {columns}")
  return rows
