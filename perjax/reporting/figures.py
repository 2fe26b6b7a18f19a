"""The panels of a sweep's results.png beyond the bars: the taxonomy grid as a heat map and the
per-user spread of each run."""
import csv
from pathlib import Path

from perjax.errors import ConfigError
from perjax.grouping import level_order

# error metrics and the gold target's NLL / perplexity: the best method has the smallest value
LOWER_IS_BETTER = ("mae", "rmse", "gold_nll", "gold_ppl")
PER_USER_FILE = "per_user.csv"


def lower_is_better(metric: str) -> bool:
  """Whether smaller is better for `metric`, or a seeded table's `metric_mean` column."""
  return metric.lower().removesuffix("_mean") in LOWER_IS_BETTER


def better(metric: str, a: float, b: float) -> bool:
  return a < b if lower_is_better(metric) else a > b


def technique_of(method: str) -> str:
  """A (composed) method's place on the technique axis: its methods' techniques joined by '+'
  (`rag+lora` is prompting+fine-tuning)."""
  from perjax.method import parse_spec
  from perjax.registry import METHODS, load_plugins
  load_plugins()
  techniques = []
  for name, _ in parse_spec(method):
    try:
      techniques.append(METHODS.get(name).info.technique.value)
    except ConfigError:  # a plugin this process has not imported
      techniques.append("other")
  return "+".join(dict.fromkeys(techniques))


def best_per_cell(rows, metric: str) -> dict[tuple[str, str], tuple[str, float]]:
  """{(technique, granularity): (best method, its value)} over the rows that have `metric`."""
  cells: dict[tuple[str, str], tuple[str, float]] = {}
  for r in rows:
    value = r.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
      continue
    key = (technique_of(r["method"]), r["granularity"])
    if key not in cells or better(metric, value, cells[key][1]):
      cells[key] = (r["method"], float(value))
  return cells


def taxonomy_heatmap(ax, rows, metric: str) -> None:
  import numpy as np
  cells = best_per_cell(rows, metric)
  if not cells:
    ax.set_axis_off()
    return
  techniques = sorted({t for t, _ in cells})
  order = level_order()
  grans = sorted({g for _, g in cells}, key=lambda g: order.index(g) if g in order else 9)
  grid = np.full((len(techniques), len(grans)), np.nan)
  for (t, g), (_, v) in cells.items():
    grid[techniques.index(t), grans.index(g)] = v
  cmap = "viridis_r" if lower_is_better(metric) else "viridis"
  image = ax.imshow(grid, cmap=cmap, aspect="auto")
  for (t, g), (method, v) in cells.items():
    ax.text(grans.index(g), techniques.index(t), f"{method}\n{v:.3f}", ha="center",
            va="center", fontsize=8, color="w" if _dark(image, v) else "k")
  ax.set_xticks(range(len(grans)), grans)
  ax.set_yticks(range(len(techniques)), techniques, fontsize=8)
  ax.set_xlabel("granularity")
  ax.set_title(f"best {metric} per taxonomy cell", fontsize=9)
  ax.figure.colorbar(image, ax=ax, fraction=0.03)


def _dark(image, value) -> bool:
  r, g, b, _ = image.cmap(image.norm(value))
  return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def run_folders(workdir: Path, run: str) -> list[Path]:
  """The folders of a row's run: the run itself, or its seeds' (`RUN,seed=S`)."""
  from perjax.experiment.run_name import RunName
  own = Path(workdir) / run
  if (own / PER_USER_FILE).exists():
    return [own]
  return sorted(p for p in Path(workdir).glob(f"{_glob_escape(run)},seed=*")
                if RunName.parse(p.name).seed is not None)


def _glob_escape(text: str) -> str:
  return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def per_user_values(workdir: Path, rows, metric: str) -> dict[str, list[float]]:
  """{row label: each user's `metric`} from the rows' runs' per_user.csv (seeds pooled)."""
  out = {}
  for r in rows:
    values = []
    for folder in run_folders(workdir, r["run"]):
      with open(folder / PER_USER_FILE, newline="") as f:
        values += [float(u[metric]) for u in csv.DictReader(f) if u.get(metric) not in (None, "")]
    if values:
      out[f"{r['method']}@{r['granularity']}"] = values
  return out


def per_user_boxes(ax, values: dict[str, list[float]], metric: str) -> None:
  labels = list(values)
  ax.boxplot([values[k] for k in labels], showmeans=True)
  ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, ha="right", fontsize=8)
  ax.set_ylabel(f"{metric} per user")
  ax.set_title("spread over users (box: quartiles, triangle: mean)", fontsize=9)
