"""Two cells of a finished sweep compared on the examples both evaluated: for each metric, both
cells' means (seeds pooled) and the two-sided paired bootstrap p-value of their difference. The
sweep's own table tests every cell against its baseline (zero_shot); this is for any other
pair, such as personalized DPO against plain DPO.

  python -m perjax.reporting.compare SWEEP_DIR CELL_A CELL_B

A cell is named as its run folders are, less ",seed=S": "method=dpo,granularity=user".
"""
import json
import sys
from pathlib import Path

from perjax import stats
from perjax.data import load_dataset
from perjax.errors import DataError
from perjax.experiment.cost import COST_FIELDS
from perjax.experiment.outputs import read_records
from perjax.experiment.run_name import RunName
from perjax.reporting.seeded import two_sided_p


def _cell(run_dir: Path) -> str:
  return RunName.parse(run_dir.name).cell


def cell_runs(sweep_dir: Path, cell: str, of=stats.prediction_of) -> list[dict]:
  """{id: of(record)} per seed of `cell` (its finished runs): the predictions, or another
  statistic's (stats.gold_likelihood_of)."""
  dirs = sorted(d for d in Path(sweep_dir).iterdir()
                if d.is_dir() and _cell(d) == cell and (d / "metrics.json").exists())
  if not dirs:
    names = sorted({_cell(d) for d in Path(sweep_dir).iterdir() if d.is_dir()})
    raise DataError(f"no finished run of cell {cell!r} in {sweep_dir}; cells: {names}")
  return [{r["id"]: of(r) for r in read_records(d)} for d in dirs]


def _task_labels(run_dir: Path):
  """The run's task's label set (multi-label F1 counts only those), from its config.json; None
  for a folder without one (no label set known)."""
  path = run_dir / "config.json"
  if not path.is_file():
    return None
  data = json.loads(path.read_text())["data"]
  return load_dataset(data["name"], **data.get("params", {})).labels


def compare(sweep_dir, cell_a: str, cell_b: str, n: int = 1000) -> list[dict]:
  """[{metric, a, b, p, seeds_a, seeds_b, examples}] for each overall metric of the runs."""
  a, b = cell_runs(sweep_dir, cell_a), cell_runs(sweep_dir, cell_b)
  ids = sorted(set.intersection(*(set(r) for r in a + b)))
  if not ids:
    raise DataError(f"{cell_a!r} and {cell_b!r} share no evaluated example")
  a = [{i: r[i] for i in ids} for r in a]
  b = [{i: r[i] for i in ids} for r in b]
  first = next(d for d in Path(sweep_dir).iterdir() if d.is_dir() and _cell(d) == cell_a)
  golds = {r["id"]: r.get("target") for r in read_records(first) if r["id"] in set(ids)}
  metrics = [m for m, v in json.loads((first / "metrics.json").read_text()).items()
             if "/" not in m and isinstance(v, (int, float))]  # not a stage's nested record
  gold = {}  # the gold metrics' (gold_logprob, gold_tokens) per seed, where both recorded them
  if any(m in stats.GOLD_METRICS for m in metrics):
    gold = {k: [{i: r[i] for i in ids} for r in cell_runs(sweep_dir, c, stats.gold_likelihood_of)]
            for k, c in (("a", cell_a), ("b", cell_b))}
  labels = _task_labels(first)
  out = []
  for m in metrics:
    if m in COST_FIELDS:
      continue  # what the run cost, not what it scored
    pa, pb = (gold["a"], gold["b"]) if m in stats.GOLD_METRICS else (a, b)
    try:
      means = [stats.seed_columns(x, golds, [m], labels=labels, n=2)[f"{m}_mean"]
               for x in (pa, pb)]
    except (KeyError, ValueError):
      continue  # a metric the statistics do not cover (one computed over a whole run)
    out.append({"metric": m, "a": means[0], "b": means[1],
                "p": two_sided_p(pa, pb, golds, m, labels, n), "seeds_a": len(a),
                "seeds_b": len(b), "examples": len(ids)})
  return out


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 3:
    print(__doc__.strip().splitlines()[-3], file=sys.stderr)
    return 2
  try:
    rows = compare(Path(argv[0]), argv[1], argv[2])
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"| metric | {argv[1]} | {argv[2]} | p (two-sided) | seeds | examples |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['metric']} | {r['a']:.4f} | {r['b']:.4f} | {r['p']:.4f} | "
          f"{r['seeds_a']} / {r['seeds_b']} | {r['examples']} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
