"""`perjax data list` and `perjax data inspect NAME_OR_PATH`: what a data set holds."""
import inspect
import json
import statistics
from pathlib import Path


def register(subparsers):
  p = subparsers.add_parser("data", help="list and inspect data sets")
  sub = p.add_subparsers(dest="data_command", required=True)
  ls = sub.add_parser("list", help="registered data sets")
  ls.add_argument("--json", action="store_true", help="print a JSON list")
  ls.set_defaults(func=run_list)
  ins = sub.add_parser("inspect", help="users, examples, profile sizes, split sizes")
  ins.add_argument("name", help="a registered data set, or a folder of LaMP files")
  ins.add_argument("--split", help="split kind (user, time, ...); default: the data set's first")
  ins.add_argument("--seed", type=int, default=0)
  ins.add_argument("--data-dir", help="data root (default: ../shared/data or $PERJAX_DATA)")
  ins.add_argument("--prefix", default=None, help="LaMP file prefix, e.g. LaMP_2_")
  ins.add_argument("--json", action="store_true", help="print one JSON object")
  ins.set_defaults(func=run_inspect)


def run_list(args):
  import perjax.data  # noqa: F401  (registers the builders)
  from perjax.registry import DATASETS
  rows = [{"name": n, "granularity": b.granularity, "splits": list(b.split_kinds),
           "description": b.description} for n, b in DATASETS.items()]
  if args.json:
    print(json.dumps(rows))
    return 0
  width = max(len(r["name"]) for r in rows)
  for r in rows:
    print(f"{r['name'].ljust(width)}  {r['granularity']:<8} splits: {', '.join(r['splits']):<12} "
          f"{r['description']}")
  return 0


_LAMP_SUFFIXES = tuple(f"{split}_{kind}.json" for split in ("train", "dev", "test")
                       for kind in ("questions", "outputs"))


def _lamp_prefix(path: Path) -> str:
  """LaMP_2_train_questions.json -> "LaMP_2_"; a file not named like a LaMP file is an error."""
  from perjax.errors import DataError
  suffix = next((s for s in _LAMP_SUFFIXES if path.name.endswith(s)), None)
  if suffix is None:
    with open(path, "rb") as f:
      binary = b"\0" in f.read(4096)
    what = "a binary file" if binary else "not a LaMP file"
    raise DataError(f"{path} is {what}; give a data set name (see `perjax data list`), a folder "
                    "of LaMP files or one of its PREFIX{train,dev,test}_questions.json files")
  return path.name[:-len(suffix)]


def _load(args):
  from perjax.data import load_dataset, load_lamp
  from perjax.errors import DataError
  from perjax.registry import DATASETS
  path = Path(args.name)
  if path.exists():
    folder = path if path.is_dir() else path.parent
    prefix = args.prefix
    if prefix is None:
      probe = path if path.is_file() else next(iter(sorted(folder.glob("*_questions.json"))), None)
      if probe is None:
        raise DataError(f"{folder} holds no LaMP files (PREFIX{{train,dev,test}}_questions.json)")
      prefix = _lamp_prefix(probe)
    return load_lamp(folder, prefix)
  if args.name not in DATASETS and ("/" in args.name or args.name.endswith(".json")):
    raise DataError(f"{args.name}: no such file or folder")
  # Only the parameters the builder takes (the LaMP files have no seed, for one).
  accepted = inspect.signature(DATASETS.get(args.name).build).parameters
  params = {"seed": args.seed} if "seed" in accepted else {}
  if args.split:
    params["split"] = args.split
  if args.data_dir:
    params["data_dir"] = args.data_dir
  if args.prefix is not None:
    params["prefix"] = args.prefix
  return load_dataset(args.name, **params)


def summarize(task) -> dict:
  examples = task.examples()
  users = {e.user_id for e in examples}
  personas = {e.persona_id for e in examples if e.persona_id is not None}
  out = {"name": task.name, "granularity": task.granularity, "split_by": task.split_by,
         "metrics": list(task.metrics), "labels": list(task.labels) if task.labels else None,
         "users": len(users), "personas": len(personas), "examples": len(examples),
         "splits": {s: {"examples": len(v), "users": len({e.user_id for e in v})}
                    for s, v in task.splits.items()}}
  sizes = [len(e.profile) for e in examples if hasattr(e, "profile")]
  if sizes:
    out["profile_size"] = {"min": min(sizes), "median": statistics.median(sizes),
                           "mean": round(statistics.fmean(sizes), 2), "max": max(sizes)}
  return out


def run_inspect(args):
  info = summarize(_load(args))
  if args.json:
    print(json.dumps(info))
    return 0
  print(f"{info['name']}  ({info['granularity']}; split by {info['split_by']})")
  print(f"  users {info['users']}, personas {info['personas']}, examples {info['examples']}")
  print(f"  metrics {', '.join(info['metrics'])}")
  if info["labels"]:
    print(f"  labels ({len(info['labels'])}): {', '.join(info['labels'])}")
  if "profile_size" in info:
    p = info["profile_size"]
    print(f"  profile size: min {p['min']}, median {p['median']}, mean {p['mean']}, max {p['max']}")
  for s, v in info["splits"].items():
    print(f"  {s:<6} {v['examples']:>7} examples  {v['users']:>6} users")
  return 0
