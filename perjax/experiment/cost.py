"""What a run cost, in its metrics.json beside what it scored, and the per-stage bookkeeping
of the training budget (`train.max_passes`) and early stopping.

  wall_seconds         the run's wall time, from loading its data to writing its metrics. A
                       resumed run counts the part that finished it (its interrupted parts
                       wrote nothing), so it is a lower bound there.
  train_steps          the steps the run's own-level stage ran (`train_steps/task_stage`:
                       the task stage's, where there is one)
  train_examples_seen  examples drawn over all stages: sum of steps x batch_size x accum

wall_seconds is the one field that differs between two runs of the same config: anything that
compares runs for determinism compares `deterministic(metrics)`.
"""
import dataclasses

import numpy as np

from perjax.training import budget  # numpy only: reports import this module without jax

COST_FIELDS = ("wall_seconds", "train_steps", "train_examples_seen")
WALL_FIELDS = ("wall_seconds",)  # measured, so never the same twice


def deterministic(metrics: dict) -> dict:
  """`metrics` less the measured wall time: what two runs of one config must agree on."""
  return {k: v for k, v in metrics.items() if k not in WALL_FIELDS}


def early_stop_of(config, stage):
  """The stage's `EarlyStop` settings, or None: the task stage (`stage.folder`), and with
  early_stop_stages=train_split also the one stage of a `train.on=train_split` run."""
  from perjax.training.early_stopping import EarlyStop
  t = config.train
  fraction = t.get("early_stop_fraction", 0.0)
  if not fraction:
    return None
  if not stage.folder and not (t.get("early_stop_stages") == "train_split"
                               and t.on == "train_split"):
    return None
  return EarlyStop(fraction, t.early_stop_every, t.early_stop_patience)


def budgeted(settings, examples: int):
  """`settings` with the stage's steps capped by its pass budget over `examples`."""
  steps = budget.capped_steps(settings.steps, settings.max_passes, examples,
                              settings.batch_size * settings.accum)
  return dataclasses.replace(settings, steps=steps,
                             warmup=budget.capped_warmup(settings.warmup, settings.steps, steps))


@dataclasses.dataclass(frozen=True)
class StageCost:
  name: str  # the stage's folder ("" for the run's own-level stage)
  steps: int  # the steps it ran (fewer than planned where it stopped early)
  examples_seen: int
  passes: np.ndarray  # [G] passes over each row's own examples
  early_stopping: dict | None  # the stage's record (kept step, held-out losses)


def stage_cost(name: str, folder, settings, fit_group_ids, num_groups: int) -> StageCost:
  """A finished stage's cost: its steps (the early-stopping record's last evaluation where it
  stopped), the examples drawn and each row's passes over its training examples."""
  from perjax.training.early_stopping import read_record
  record = read_record(folder)
  steps = record["history"][-1][0] if record and record["stopped"] else settings.steps
  per_step = settings.batch_size * settings.accum
  counts = budget.draw_counts(len(fit_group_ids), steps, per_step, settings.seed)
  return StageCost(name, steps, steps * per_step,
                   budget.row_passes(fit_group_ids, counts, num_groups), record)


def cost_metrics(costs: list[StageCost]) -> dict:
  """metrics.json's training-cost fields from the stages' costs (the last: the run's own)."""
  if not costs:
    return {"train_steps": 0, "train_examples_seen": 0}
  out = {"train_steps": costs[-1].steps,
         "train_examples_seen": sum(c.examples_seen for c in costs)}
  for c in costs[:-1]:
    out[f"train_steps/{c.name}"] = c.steps
  stopped = {c.name or "train": {"kept_step": c.early_stopping["best_step"],
                                 "held_out_losses": c.early_stopping["history"]}
             for c in costs if c.early_stopping}
  if stopped:
    out["early_stopping"] = stopped
  return out


def cell_cost(run_dirs) -> dict:
  """A sweep cell's cost columns: the mean over its runs (seeds) of each cost field their
  metrics.json holds (runs from before these fields hold none)."""
  import json
  from pathlib import Path
  runs = [json.loads((Path(d) / "metrics.json").read_text()) for d in run_dirs
          if (Path(d) / "metrics.json").is_file()]
  out = {}
  for k in COST_FIELDS:
    if runs and all(k in m for m in runs):
      mean = float(np.mean([m[k] for m in runs]))
      # counts stay whole numbers where the seeds agree (they do unless one stopped early)
      out[k] = int(mean) if mean.is_integer() and k not in WALL_FIELDS else round(mean, 1)
  return out
