"""Experiments: config files, `train_and_evaluate(config, workdir)` and sweeps (their tables:
perjax.reporting).

  from perjax import experiment
  config = experiment.load_config("experiments/quickstart.py:smoke,method=rag")
  metrics = experiment.train_and_evaluate(config, "/tmp/run")
"""
from perjax.experiment.config import defaults, load as load_config, override, parse_arg
from perjax.experiment.runner import train_and_evaluate
from perjax.experiment.sweep import run_sweep, sweep_plan, sweep_runs

__all__ = ["defaults", "load_config", "override", "parse_arg", "train_and_evaluate", "run_sweep",
           "sweep_plan", "sweep_runs"]
