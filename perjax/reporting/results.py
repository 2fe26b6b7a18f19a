"""A sweep's results from its runs' rows: DIR/results.{csv,md,png} (`report.write`). Where the
runs are a cell's seeds (folders `CELL,seed=S`), each cell's row holds statistics over its
seeds, beside the trivial baselines (`seeded.seeded_rows`)."""
from pathlib import Path

from perjax.experiment.run_name import RunName
from perjax.reporting import report, seeded

KEY_COLUMNS = ("method", "granularity")


def write_results(folder, rows: list[dict], swept, config, seeded_runs: bool | None = None
                  ) -> list[dict]:
  """Writes the tables of `rows` (one per run: run, method, granularity, the swept keys, the
  metrics); returns the table's rows. `config`: any run's (the data set, its eval split).
  `seeded_runs`: whether the runs are cells' seeds (None: where a run's name says so)."""
  folder, swept = Path(folder), list(swept)
  if seeded_runs is None:
    seeded_runs = any(RunName.parse(r["run"]).seed is not None for r in rows)
  if not seeded_runs:
    report.write(folder, rows, swept)
    return rows
  cells: dict[str, tuple[dict, list]] = {}
  for row in rows:
    cell = RunName.parse(row["run"]).cell
    keys = {k: row[k] for k in (*KEY_COLUMNS, *swept)}
    cells.setdefault(cell, ({"run": cell, **keys}, []))[1].append(folder / row["run"])
  rows, marks = seeded.seeded_rows(list(cells.values()), config)
  report.write(folder, rows, swept, marks)
  return rows
