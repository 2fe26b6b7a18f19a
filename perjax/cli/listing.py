"""`perjax list`: the taxonomy grid of registered methods."""
import json

from perjax import registry
from perjax.taxonomy import Granularity, Technique, parse_granularity, parse_technique


def register(subparsers):
  p = subparsers.add_parser("list", help="methods by technique x granularity")
  p.add_argument("--technique", help="prompting | embedding | finetuning")
  p.add_argument("--granularity", help="user | persona | global")
  p.add_argument("--json", action="store_true", help="print a JSON list")
  p.set_defaults(func=run)


def _grid_table(methods) -> str:
  cols = list(Granularity)
  rows = [["technique"] + [g.value for g in cols]]
  for t in Technique:
    cells = []
    for g in cols:
      names = [m.info.name for m in methods if m.info.technique == t and g in m.info.granularities]
      cells.append(", ".join(names) or "-")
    rows.append([t.value] + cells)
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  fmt = lambda r: " | ".join(c.ljust(w) for c, w in zip(r, widths))
  lines = [fmt(rows[0]), "-+-".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
  return "\n".join(lines)


def run(args):
  technique = parse_technique(args.technique) if args.technique else None
  granularity = parse_granularity(args.granularity) if args.granularity else None
  methods = registry.methods_for(technique, granularity)
  if args.json:
    print(json.dumps([m.info.as_json() for m in methods]))
    return 0
  print(_grid_table(methods))
  print()
  for m in methods:
    i = m.info
    print(f"{i.name:14s} {i.technique.value:11s} {','.join(g.value for g in i.granularities):20s} "
          f"§{i.section}  {i.reference}")
  return 0
