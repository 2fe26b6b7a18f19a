"""`perjax run CONFIG[:ARGS] --workdir DIR [--config.key=value ...]` and
`perjax sweep CONFIG[:ARGS] --workdir DIR [--dry-run] [--seeds N] [--config.key=value ...]`.

`--config.a.b=v` (or `--config.a.b v`) overrides a field of the locked config; `v` is parsed
with the field's type, and an unknown key is an error that names it.
"""
import json

PREFIX = "--config."


def _split_overrides(arg_strings):
  """(other args, {key: value}) with every --config.key=value / --config.key value taken out."""
  rest, overrides = [], {}
  it = iter(arg_strings)
  for a in it:
    if a.startswith(PREFIX):
      key, eq, value = a[len(PREFIX):].partition("=")
      if not eq:
        value = next(it, None)
        if value is None:
          raise SystemExit(f"perjax: {a} needs a value")
      overrides[key] = value
    else:
      rest.append(a)
  return rest, overrides


def _accepting_overrides(parser):
  # argparse cannot declare an open-ended `--config.*` family, so this parser takes them out of
  # the arguments before parsing the rest (subparsers call parse_known_args on their parser).
  original = parser.parse_known_args

  def parse_known_args(args=None, namespace=None):
    rest, overrides = _split_overrides(args or [])
    ns, extra = original(rest, namespace)
    ns.overrides = {**getattr(ns, "overrides", {}), **overrides}
    return ns, extra

  parser.parse_known_args = parse_known_args
  return parser


def register(subparsers):
  p = _accepting_overrides(subparsers.add_parser(
      "run", help="train and evaluate one experiment config"))
  p.add_argument("config", help="config file, optionally with :key=value,... arguments")
  p.add_argument("--workdir", required=True, help="output folder (resumes if it exists)")
  _processes_arguments(p)
  p.set_defaults(func=run, overrides={})
  s = _accepting_overrides(subparsers.add_parser(
      "sweep", help="run every override set of a config file's sweep(add)"))
  s.add_argument("config", help="config file, optionally with :key=value,... arguments")
  s.add_argument("--workdir", required=True, help="folder of the runs and results.{csv,md,png}")
  s.add_argument("--dry-run", action="store_true",
                 help="list and check every run (config, method x granularity, options); "
                      "run and write nothing")
  s.add_argument("--seeds", type=int, default=None, metavar="N",
                 help="run each cell with seeds 0..N-1; results get mean, std, 95%% CI and "
                      "significance against zero_shot, beside trivial baselines")
  _processes_arguments(s)
  s.set_defaults(func=sweep, overrides={})


def _processes_arguments(parser):
  parser.add_argument("--processes", type=int, default=1, metavar="P",
                      help="run as P local JAX processes joined by jax.distributed (CPU: gloo "
                           "collectives), training data parallel over them")
  parser.add_argument("--distributed", action="store_true",
                      help="join the processes of a cluster (one per host, started by its "
                           "launcher, e.g. srun): jax.distributed.initialize() reads the "
                           "coordinator, count and id from the environment")


def _join(args, config=None) -> str | None:
  """Joins the run's processes (None), or launches them and returns process 0's output.
  `config`: the run's, to check its batch before launching (a sweep's runs check their own)."""
  from perjax import distributed
  from perjax.errors import ConfigError
  from perjax.experiment.distributed_run import check_batch
  if args.processes < 1:
    raise ConfigError(f"--processes must be >= 1, got {args.processes}")
  if args.distributed and args.processes > 1:
    raise ConfigError("--distributed takes the process count from the cluster: drop --processes")
  if config is not None:
    check_batch(config, args.processes)
  return distributed.join(args.argv, args.processes, cluster=args.distributed)


def run(args):
  from perjax import distributed, experiment
  config = experiment.load_config(args.config, args.overrides)
  launched = _join(args, config)
  if launched is not None:  # the launcher: process 0 printed the metrics
    print(launched, end="")
    return 0
  metrics = experiment.train_and_evaluate(config, args.workdir)
  from perjax import strict_json
  if distributed.is_primary():
    print(strict_json.dumps(metrics, what="metric"))
  return 0


def sweep(args):
  from pathlib import Path
  from perjax import distributed, experiment
  if args.dry_run:
    rows = experiment.sweep_plan(args.config, args.workdir, args.overrides, seeds=args.seeds)
    for row in rows:
      print(f"{row['run']}\t{json.dumps(row['overrides'])}")
    print(f"{len(rows)} runs, all valid (dry run: nothing run or written)")
    return 0
  launched = _join(args)
  if launched is not None:  # the launcher: process 0 printed the results
    print(launched, end="")
    return 0
  runs = experiment.run_sweep(args.config, args.workdir, args.overrides, seeds=args.seeds)
  if not distributed.is_primary():  # process 0 writes and prints the results
    return 0
  # the sweep's tables come from the reporting side: the command composes the two
  from perjax.reporting.results import write_results
  write_results(args.workdir, runs.rows, runs.swept, runs.config,
                seeded_runs=args.seeds is not None)
  print((Path(args.workdir) / "results.md").read_text(), end="")
  return 0
