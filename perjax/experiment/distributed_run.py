"""An experiment run as several `jax.distributed` processes (`perjax run --processes P` on one
machine, `--distributed` on a cluster).

Every process runs the whole experiment up to the end of training: the same data, groups,
prompts and batch order (all are seeded), and the training step as one SPMD program over all
processes' devices (`perjax.training.across_processes`: each process supplies its own rows of
every batch). Checkpoints are orbax's multi-process ones: every process saves and restores
together, orbax commits each step atomically (process 0 renames it into place once all are
done), so a killed run resumes as a one-process run does.

Process 0 alone owns the workdir: it holds the lock, writes config.json, TensorBoard and every
output, and evaluates the trained model (the others hold the same parameters, so evaluating on
one process gives the one-process run's predictions). Before training, process 0 tells the
others whether the run goes ahead (`lead`/`follow`): not when it failed to claim the workdir
or found the run finished already.
"""
import contextlib

import jax
import numpy as np

from perjax import distributed
from perjax.errors import ConfigError

_STOP, _GO = 0, 1


def check_batch(config, processes: int) -> None:
  """The training batch must split into equal blocks of rows, one per process."""
  batch = config.train.batch_size
  if processes > 1 and batch % processes:
    raise ConfigError(f"train.batch_size {batch} does not split over {processes} processes: "
                      f"use a multiple of {processes}")


def _tell(decision: int) -> int:
  from jax.experimental import multihost_utils
  return int(multihost_utils.broadcast_one_to_all(np.int32(decision)))


class _Lead:
  def __init__(self):
    self.told = jax.process_count() == 1  # nobody to tell

  def go(self) -> None:
    """The run goes ahead: the other processes start it too."""
    if not self.told:
      self.told = True
      _tell(_GO)


@contextlib.contextmanager
def lead():
  """Process 0's side: `go()` inside the block starts the others; leaving the block without it
  (finished already, or an error) lets them stop."""
  lead = _Lead()
  try:
    yield lead
  finally:
    if not lead.told:
      lead.told = True
      _tell(_STOP)


def follow(run):
  """The other processes' side: `run()` if process 0 goes ahead, else {} (process 0 reports)."""
  return run() if _tell(_STOP) == _GO else {}


def is_follower() -> bool:
  """Whether this process computes beside process 0 and writes nothing."""
  return not distributed.is_primary()
