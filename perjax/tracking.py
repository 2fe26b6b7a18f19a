"""Experiment tracking: TensorBoard event files in every run's workdir, and optionally W&B.

A run writes `WORKDIR/tensorboard/events.out.tfevents.*` (one writer kept open for the run):
per training step the loss, learning rate, gradient norm and number of groups in the batch,
and the evaluation metrics at the end. `log.wandb=PROJECT` also logs to Weights & Biases when
the optional `wandb` package is installed (`pip install 'perjax[wandb]'`); without an API key
or `WANDB_MODE` it runs offline (files under the workdir, `wandb sync` uploads them later).
"""
import contextlib
import contextvars
import importlib.util
import math
import os
from pathlib import Path

from perjax.errors import ConfigError

TENSORBOARD_DIR = "tensorboard"


def check_wandb(project: str) -> None:
  """A one-line error when W&B logging is asked for but the package is missing."""
  if project and importlib.util.find_spec("wandb") is None:
    raise ConfigError(f"log.wandb={project!r} needs the wandb package: "
                      "pip install 'perjax[wandb]' (or leave log.wandb empty)")


class Tracker:
  """`scalars(step, {tag: value})` to TensorBoard (and W&B); `close()` flushes."""

  def __init__(self, workdir, *, tensorboard: bool = True, wandb_project: str = "",
               config: dict | None = None):
    self.workdir = Path(workdir)
    self.writer = None
    if tensorboard:
      from tensorboardX import SummaryWriter
      self.writer = SummaryWriter(logdir=str(self.workdir / TENSORBOARD_DIR), flush_secs=10)
    self.wandb = None
    if wandb_project:
      check_wandb(wandb_project)
      import wandb
      mode = os.environ.get("WANDB_MODE") or (
          "online" if os.environ.get("WANDB_API_KEY") else "offline")
      self.wandb = wandb.init(project=wandb_project, dir=str(self.workdir),
                              name=self.workdir.name, config=config, mode=mode)

  @classmethod
  def from_config(cls, workdir, config) -> "Tracker":
    log = config.get("log") or {}
    return cls(workdir, tensorboard=log.get("tensorboard", True),
               wandb_project=log.get("wandb", ""), config=config.to_dict())

  def scalars(self, step: int, values: dict, *, folder=None) -> None:
    """Logs `values` at `step`. `folder`: the training stage's checkpoint folder; a stage in a
    subfolder of the workdir (OPPU's task stage) logs under tags prefixed with its name."""
    if folder is not None and Path(folder).absolute().is_relative_to(self.workdir.absolute()):
      prefix = Path(folder).absolute().relative_to(self.workdir.absolute()).as_posix()
      if prefix != ".":
        values = {f"{prefix}/{k}": v for k, v in values.items()}
    numbers = {k: float(v) for k, v in values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(float(v))}
    if self.writer is not None:
      for tag, value in numbers.items():
        self.writer.add_scalar(tag, value, step)
    if self.wandb is not None and numbers:
      self.wandb.log(numbers, step=step)

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
      self.writer = None
    if self.wandb is not None:
      self.wandb.finish()
      self.wandb = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class NoTracker:
  """What the training loop logs to when nobody tracks (library use, benchmarks)."""

  def scalars(self, step: int, values: dict, *, folder=None) -> None:
    del step, values, folder


_CURRENT = contextvars.ContextVar("perjax_tracker", default=NoTracker())


def current():
  """The tracker of the run in progress (a no-op one outside `active`)."""
  return _CURRENT.get()


@contextlib.contextmanager
def active(tracker):
  """Makes `tracker` the one `current()` returns inside the block: the training loop and the
  evaluation log to it without every layer between the runner and them passing it on."""
  token = _CURRENT.set(tracker)
  try:
    yield tracker
  finally:
    _CURRENT.reset(token)
