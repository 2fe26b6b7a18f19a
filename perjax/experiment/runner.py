"""`train_and_evaluate(config, workdir)`: one experiment, from a config to DIR/metrics.json.

The task is loaded, users are grouped by the granularity, prompting methods rewrite the prompts,
personal parameters (if any method declares them) are trained, and the evaluation split is
answered and scored: the phases of `phases`, each with a small typed result. The task's kind
(`kinds`: supervised generation/classification, preference pairs) says how rows are encoded,
batched and evaluated; one training loop serves them all. A workdir holds one run: rerunning a
finished run returns its metrics, an interrupted one resumes from its checkpoint.
"""
import logging
import sys
import time
from pathlib import Path

from perjax import tracking
from perjax.experiment import config as cfg
from perjax.experiment import distributed_run, kinds, outputs, phases
from perjax.experiment.options import check_run
from perjax.experiment.validate import check_settings
from perjax.experiment.workdir import WorkdirLock, check_writable, claim, finished_metrics

# bm25s sets its logger to DEBUG on import and logs every index build; keep warnings only.
logging.getLogger("bm25s").addFilter(lambda record: record.levelno >= logging.WARNING)


def train_and_evaluate(config, workdir) -> dict:
  """Runs (or resumes, or just returns) the experiment `config` in `workdir`; returns metrics."""
  workdir = Path(workdir)
  recipe = check_run(config)
  check_settings(config, trains=recipe.trains)  # before the workdir is touched
  distributed_run.check_processes(config)
  if distributed_run.is_follower():  # another process of a jax.distributed run: process 0 owns
    return distributed_run.follow(lambda: _run(config, workdir, recipe))  # the workdir
  # The whole run holds the workdir's lock: claim, finished check and outputs cannot interleave
  # with another run's.
  with distributed_run.lead() as lead, WorkdirLock(workdir):
    claim(workdir, cfg.to_json(config), {m.name for m in recipe.methods})
    metrics = finished_metrics(workdir)
    if metrics is not None:
      print(f"{workdir}: finished already", file=sys.stderr)
      return metrics
    check_writable(workdir)  # now, not after training: the checkpoints must be writable
    lead.go()
    with tracking.Tracker.from_config(workdir, config) as tracker, tracking.active(tracker):
      return _run(config, workdir, recipe)


def _run(config, workdir: Path, recipe) -> dict:
  """data -> groups -> model -> fit -> evaluate -> write."""
  started = time.monotonic()  # the run's cost (experiment/cost.py: wall_seconds)
  data = phases.load_data(config, recipe)
  grouping = phases.group(config, recipe, data)
  print(f"{workdir}: {config.method} @ {config.granularity} ({grouping.groups.num_groups} "
        f"groups), {len(data.train)} train / {len(data.eval)} {data.split} examples",
        file=sys.stderr)
  if not distributed_run.is_follower():
    outputs.write_groups(workdir, grouping.names(config.granularity))
  run = phases.build_model(config, recipe, data, grouping)
  inputs = phases.prepare_eval(config, recipe, data, grouping, run)
  trained = phases.fit(config, recipe, data, grouping, run, workdir)
  if distributed_run.is_follower():  # process 0 evaluates and writes (distributed_run)
    return {}
  result = phases.evaluate(config, recipe, data, run, inputs, trained)
  metrics = {**result.metrics, "wall_seconds": round(time.monotonic() - started, 1)}
  return outputs.write_run(workdir, data.task, metrics, result.records, result.notes,
                           per_user=data.kind is kinds.Supervised)

