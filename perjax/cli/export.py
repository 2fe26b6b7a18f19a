"""`perjax export RUN_DIR (--user U | --persona P | --global) --format peft|merged|perjax
--out DIR`, `perjax export RUN_DIR --format base --out DIR` and `perjax import-adapter PEFT_DIR
--out GROUP_DIR`.

`--user` picks rows by user id (any granularity); the other flags come from the registered
granularities (`perjax.grouping.Grouping`): `--NAME ROW` for a level of several groups, a bare
`--NAME` for the shared level.
"""


def register(subparsers):
  e = subparsers.add_parser(
      "export", help="a finished run's personal parameters as a peft adapter, a merged "
                     "Hugging Face model, or a perjax group folder")
  e.add_argument("source", help="a finished run folder (or a perjax group folder, to peft)")
  who = e.add_mutually_exclusive_group()
  who.add_argument("--user", help="the user whose rows to export (as in predictions.jsonl)")
  from perjax.grouping import groupings
  for g in groupings():
    if g.per_user:
      continue  # its rows are picked by --user
    if g.shared:
      who.add_argument(f"--{g.name}", dest=f"level:{g.name}", action="store_true",
                       help=f"the shared rows (a {g.name} run's, or name@{g.name} modules)")
    else:
      who.add_argument(f"--{g.name}", dest=f"level:{g.name}", metavar="NAME_OR_ROW",
                       help=f"a {g.name} group, by name (groups.json of the run) or row (the "
                            f"group column of a {g.name} run's predictions.jsonl)")
  e.add_argument("--format", default="peft", choices=("peft", "merged", "perjax", "base"),
                 help="peft: adapter_config.json + adapter_model.safetensors; merged: a "
                      "transformers model folder with the adapter merged in; perjax: a group "
                      "folder for load_groups / init.adapter; base: the run's base model as a "
                      "transformers folder (to serve peft adapters on)")
  e.add_argument("--out", required=True, help="output folder")
  e.set_defaults(func=export)
  i = subparsers.add_parser(
      "import-adapter", help="a peft LoRA folder as a perjax group folder (start every row of "
                             "a run from it with --config.init.adapter=DIR)")
  i.add_argument("peft_dir", help="folder with adapter_config.json and adapter_model.safetensors")
  i.add_argument("--out", required=True, help="the group folder to write")
  i.add_argument("--module", default="lora",
                 help="the personal module's name in the run that will load it (default lora)")
  i.set_defaults(func=import_adapter)


def export(args):
  from perjax.export import adapters
  levels = {k.split(":", 1)[1]: v for k, v in vars(args).items()
            if k.startswith("level:") and v not in (None, False)}
  level, row = next(iter(levels.items()), (None, None))
  out = adapters.export(args.source, args.out, fmt=args.format, user=args.user, level=level,
                        row=None if row is True else row)
  print(out)
  return 0


def import_adapter(args):
  from perjax.export import adapters
  print(adapters.import_adapter(args.peft_dir, args.out, module=args.module))
  return 0
