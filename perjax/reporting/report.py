"""A sweep's results as DIR/results.csv, results.md (a markdown table) and results.png: bars of
the primary metric (one group of bars per method, one bar per granularity), the taxonomy grid as
a heat map (technique x granularity, the best method of each cell) and the spread over users of
each run (box plots of the runs' per_user.csv)."""
import csv
from pathlib import Path

from perjax.experiment.cost import COST_FIELDS
from perjax.grouping import level_order
from perjax.reporting import figures

NON_METRIC = ("run", "method", "granularity")


def _columns(rows, swept) -> list[str]:
  # a run's nested records (its early-stopping losses) stay in its metrics.json
  metric_cols = list(dict.fromkeys(k for r in rows for k in r
                                   if k not in NON_METRIC and k not in swept
                                   and not isinstance(r[k], (dict, list))))
  return ["method", "granularity", *swept, *metric_cols]


def _fmt(v) -> str:
  return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_csv(path: Path, rows, columns) -> None:
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, columns, extrasaction="ignore")
    w.writeheader()
    for r in rows:
      w.writerow({c: _fmt(r.get(c, "")) for c in columns})


def markdown(rows, columns, marks=frozenset()) -> str:
  """A markdown table; the cells (row index, column) in `marks` get a `*` (significant)."""
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_fmt(r.get(c, "")) + ("*" if (i, c) in marks else "")
                              for c in columns) + " |" for i, r in enumerate(rows)]
  return "\n".join(lines) + "\n"


def plot(path: Path, rows, swept, metric: str, workdir: Path | None = None) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  boxes = figures.per_user_values(workdir, rows, metric) if workdir is not None else {}
  panels = 2 + bool(boxes)
  # baseline rows (perjax.baselines) have no swept settings
  label = lambda r: " ".join([r["method"]] + [f"{k}={r[k]}" for k in swept
                                              if r.get(k, "") != ""])
  xs = list(dict.fromkeys(label(r) for r in rows))
  width_in = max(5.0, 1.3 * len(xs))
  fig, axes = plt.subplots(panels, 1, figsize=(width_in, 3.6 * panels), squeeze=False)
  ax = axes[0, 0]
  order = level_order()  # the taxonomy's order, not the sweep's
  hues = sorted(dict.fromkeys(r["granularity"] for r in rows),
                key=lambda g: order.index(g) if g in order else len(order))
  width = 0.8 / len(hues)
  for j, g in enumerate(hues):
    pos, vals = [], []
    for r in rows:
      if r["granularity"] == g and isinstance(r.get(metric), (int, float)):
        pos.append(xs.index(label(r)) + (j - (len(hues) - 1) / 2) * width)
        vals.append(r[metric])
    bars = ax.bar(pos, vals, width, label=g)
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
  ax.set_xticks(range(len(xs)), xs, rotation=20, ha="right", fontsize=8)
  ax.set_ylabel(metric)
  ax.margins(y=0.25)  # headroom for the legend above the bars
  ax.legend(title="granularity", fontsize=8, ncol=len(hues), loc="upper left")
  figures.taxonomy_heatmap(axes[1, 0], rows, metric)
  if boxes:
    figures.per_user_boxes(axes[2, 0], boxes, metric)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write(workdir, rows, swept=(), marks=frozenset()) -> None:
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  columns = _columns(rows, list(swept))
  write_csv(workdir / "results.csv", rows, columns)
  (workdir / "results.md").write_text(markdown(rows, columns, marks))
  metrics = [c for c in columns if c not in NON_METRIC and c not in swept
             and c not in COST_FIELDS]
  if rows and metrics:
    plot(workdir / "results.png", rows, list(swept), metrics[0], workdir)
