"""Sweeps: the config file's `sweep(add)` lists override sets; each runs in its own subfolder.

A run's folder name is made from its overrides (`method=rag,granularity=user`), so rerunning a
sweep finds the runs it already finished and skips them. Every run's config is loaded and checked
(`options.check_run`) before the first run starts, so an impossible combination fails at once;
`sweep_plan` stops there. The sweep's tables (results.md) are the reporting side's
(`perjax.reporting.results`); the `perjax sweep` command runs a sweep, then writes them.
"""
import dataclasses
import inspect
import re
import sys
import time
from pathlib import Path

from perjax.errors import ConfigError
from perjax.experiment import config as cfg
from perjax.experiment import distributed_run
from perjax.experiment.options import check_run
from perjax.experiment.run_name import RunName
from perjax.experiment.runner import train_and_evaluate
from perjax.experiment.validate import check_settings
from perjax.experiment.workdir import shared_runs

SEEDS_KEY = "seeds"  # a cell's cap on --seeds, not a config key
KEY_COLUMNS = ("method", "granularity")


def run_name(overrides: dict) -> str:
  name = ",".join(f"{k}={v}" for k, v in overrides.items()) or "base"
  return re.sub(r"[^\w.,=+-]", "_", name)


def sweep_runs(spec: str) -> list[tuple[str, dict]]:
  """(run name, overrides) for each `add(...)` of the config file's `sweep` function."""
  path, arg = cfg.split_spec(spec)
  module = cfg.load_module(path)
  if not hasattr(module, "sweep"):
    raise ConfigError(f"{path} defines no sweep(add) function")
  runs: list[dict] = []
  add = lambda **overrides: runs.append(overrides)
  if len(inspect.signature(module.sweep).parameters) >= 2:
    module.sweep(add, arg)
  else:
    module.sweep(add)
  named = [(run_name(_config_keys(o)), o) for o in runs]
  names = [n for n, _ in named]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ConfigError(f"sweep of {path} adds the run {dupes[0]!r} twice")
  return named


def _config_keys(overrides: dict) -> dict:
  """A run's config overrides: all but `seeds`, the cap a sweep may put on one cell's seeds
  (`add(method="zero_shot", seeds=1)`: a run that uses no randomness needs one)."""
  return {k: v for k, v in overrides.items() if k != SEEDS_KEY}


def checked_configs(spec: str, overrides: dict | None = None) -> list[tuple[str, dict, object]]:
  """(run name, its overrides, its config) for every run of the sweep, each loaded and checked;
  the first invalid run is a ConfigError naming it."""
  out = []
  for name, o in sweep_runs(spec):
    try:
      config = cfg.load(spec, {**_config_keys(o), **(overrides or {})})
      check_settings(config, trains=check_run(config).trains)
    except ConfigError as e:
      raise ConfigError(f"sweep run {name!r}: {e}") from None
    out.append((name, o, config))
  return out


def with_seeds(checked, seeds: int):
  """(run name + ",seed=S", overrides, config with seed S) for S in 0..seeds-1 of each run, or
  fewer where the sweep capped the cell (its overrides' `seeds`: a run without randomness, a
  zero-shot or BM25 retrieval cell, gives the same answers for every seed)."""
  out = []
  for name, overrides, config in checked:
    for s in range(min(seeds, int(overrides.get(SEEDS_KEY, seeds)))):
      seeded = config.copy_and_resolve_references()
      seeded.seed = s
      out.append((RunName(name, s).format(), overrides, seeded))
  return out


def _planned(spec: str, overrides: dict | None, seeds: int | None):
  checked = checked_configs(spec, overrides)
  if seeds is None:
    return checked
  if seeds < 1:
    raise ConfigError(f"--seeds must be at least 1, got {seeds}")
  return with_seeds(checked, seeds)


def sweep_plan(spec: str, workdir, overrides: dict | None = None, *,
               seeds: int | None = None) -> list[dict]:
  """Every run of the sweep, loaded and checked (one row per run: name, workdir, overrides);
  runs and writes nothing."""
  return [{"run": name, "workdir": str(Path(workdir) / name), "overrides": o}
          for name, o, _ in _planned(spec, overrides, seeds)]


@dataclasses.dataclass(frozen=True)
class SweepRuns:
  """A finished sweep's runs: one row each (run, method, granularity, the swept keys' values,
  its metrics), the swept keys, and the first run's config (the data set, its eval split)."""
  rows: list[dict]
  swept: list[str]
  config: object


def run_sweep(spec: str, workdir, overrides: dict | None = None, *,
              seeds: int | None = None) -> SweepRuns:
  """Runs (or skips, when finished) every run of the sweep. With `seeds` N, each cell runs with
  seeds 0..N-1 (folders `NAME,seed=S`). In a jax.distributed sweep only process 0 returns
  rows."""
  workdir = Path(workdir)
  checked = _planned(spec, overrides, seeds)
  swept = [k for k in dict.fromkeys(k for _, o, _ in checked for k in o)
           if k not in KEY_COLUMNS and k != SEEDS_KEY]
  configs = [(name, config) for name, _, config in checked]
  done: dict[int, dict] = {}
  # Each run holds its own folder's lock: a run another sweep holds is waited for after the
  # rest, then its metrics are read (or it is resumed, if that sweep died).
  run = lambda i: done.update({i: _run_one(i, configs, workdir)})
  if distributed_run.several_processes():  # every process runs the runs in the same order
    for i in range(len(configs)):
      run(i)
    if distributed_run.is_follower():  # process 0 writes the results
      return SweepRuns([], swept, configs[0][1])
  else:
    shared_runs(range(len(configs)), lambda i: workdir / configs[i][0], run)
  rows = []
  for i in sorted(done):
    name, config = configs[i]
    row = {"run": name, "method": config.method, "granularity": config.granularity}
    for key in swept:
      node = config
      for part in key.split("."):
        node = node[part]
      row[key] = node
    rows.append({**row, **done[i]})
  return SweepRuns(rows, swept, configs[0][1])


def _run_one(i: int, configs, workdir: Path) -> dict:
  name, config = configs[i]
  print(f"[{i + 1}/{len(configs)}] {name}", file=sys.stderr)
  start = time.time()
  metrics = train_and_evaluate(config, workdir / name)
  print(f"[{i + 1}/{len(configs)}] {name}: {metrics} ({time.time() - start:.0f}s)",
        file=sys.stderr)
  return metrics


def taxonomy_grid(add, methods, granularities=None, baseline: bool = True) -> None:
  """The usual ablation for a config's `sweep(add)`: the non-personalized baseline (the method
  marked `baseline`) once at the shared level, then every method at every granularity (default:
  each level of the taxonomy's axis, in order)."""
  from perjax.grouping import level_where, taxonomy_levels
  from perjax.method import baseline_method
  if baseline:
    add(method=baseline_method(), granularity=level_where("shared"))
  for method in methods:
    for granularity in granularities or taxonomy_levels():
      add(method=method, granularity=granularity)
