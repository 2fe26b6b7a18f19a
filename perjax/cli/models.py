"""`perjax models`: list the model zoo and fetch entries into the cache."""
from perjax.models import zoo
from perjax.registry import MODELS


def register(subparsers):
  p = subparsers.add_parser("models", help="list or fetch zoo models")
  sub = p.add_subparsers(dest="models_command", required=True)
  ls = sub.add_parser("list", help="zoo models, their source and whether they are cached")
  ls.set_defaults(func=run)
  fetch = sub.add_parser("fetch", help="download a zoo model into the cache; prints its path")
  fetch.add_argument("name")
  fetch.add_argument("--quiet", action="store_true", help="no progress bars")
  fetch.set_defaults(func=run)


def run(args):
  if args.models_command == "fetch":
    print(zoo.fetch(args.name, progress=not args.quiet))
    return 0
  rows = [("name", "kind", "source", "cached")]
  for name, entry in MODELS.items():
    if isinstance(entry, zoo.ZooEntry):
      rows.append((name, entry.kind, entry.source, "yes" if zoo.is_cached(name) else "no"))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  for r in rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
  print(f"\ncache: {zoo.cache_dir()}")
  _print_known_shapes()
  return 0


def _print_known_shapes():
  """The architectures `--random-weights` builds without a download."""
  from perjax.models.known_configs import KNOWN_SHAPES, known_config
  from perjax.models.llama import parameter_count
  print("\nknown shapes (--random-weights):")
  for name, cfg in KNOWN_SHAPES.items():
    params = parameter_count(known_config(name)) / 1e9
    print(f"  {name:24s} {cfg['model_type']:12s} d={cfg['hidden_size']} "
          f"layers={cfg['num_hidden_layers']}  {params:.2f}B parameters")
