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
others whether the run goes ahead (`lead`/`follow`, through the coordination service's
key-value store): not when it failed to claim the workdir or found the run finished already.
A sweep runs its runs in the same order in every process (no skipping of runs another sweep
holds) and process 0 writes the results.
"""
import contextlib

import jax

from perjax import distributed
from perjax.errors import ConfigError

_STOP, _GO = "stop", "go"


def check_batch(config, processes: int) -> None:
  """The training batch must split into equal blocks of rows, one per process."""
  batch = config.train.batch_size
  if processes > 1 and batch % processes:
    raise ConfigError(f"train.batch_size {batch} does not split over {processes} processes: "
                      f"use a multiple of {processes}")


def check_processes(config) -> None:
  """`check_batch` for the processes this one belongs to (any number of hosts)."""
  check_batch(config, jax.process_count())


class _Lead:
  def __init__(self):
    self.told = jax.process_count() == 1  # nobody to tell

  def go(self) -> None:
    """The run goes ahead: the other processes start it too."""
    if not self.told:
      self.told = True
      distributed.from_primary(_GO)


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
      distributed.from_primary(_STOP)


def follow(run):
  """The other processes' side: `run()` if process 0 goes ahead, else {} (process 0 reports)."""
  return run() if distributed.from_primary() == _GO else {}


def several_processes() -> bool:
  return jax.process_count() > 1


def is_follower() -> bool:
  """Whether this process computes beside process 0 and writes nothing."""
  return not distributed.is_primary()
