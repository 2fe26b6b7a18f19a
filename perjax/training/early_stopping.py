"""Early stopping by a held-out slice of the training examples (`train.early_stop_*`).

A seeded `fraction` of a stage's examples is held out of training; every `every` steps (and at
the stage's last step) the loop measures the objective's mean loss on it. When `patience`
evaluations in a row bring no improvement the stage stops, and the parameters of the best
evaluation are kept, not the last ones.

Resumable and deterministic: every evaluation step is also a checkpoint step. The best state
is saved in `STAGE/early_stopping/checkpoints/<step>` (one kept) and the dev-loss history in
`STAGE/early_stopping.json` (replaced atomically) after the step's checkpoint, so a run resumed
from any checkpoint re-evaluates whatever the record lacks, and ends with exactly the
parameters and record of an uninterrupted run (its losses are a function of the parameters).
"""
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from perjax import checkpoint, distributed

RECORD_FILE = "early_stopping.json"
BEST_FOLDER = "early_stopping"
_HOLDOUT_STREAM = 7_2717  # the holdout draw's own rng stream, apart from the step order's


@dataclasses.dataclass(frozen=True)
class EarlyStop:
  fraction: float  # of the stage's examples held out (0 < fraction < 1)
  every: int  # steps between evaluations
  patience: int  # evaluations without improvement before the stage stops


def holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(training indices, held-out indices) of n examples, both sorted: a seeded draw of
  round(fraction * n) held out (at least one, and one example always left to train on);
  fraction 0: none held out."""
  if not fraction or n < 2:
    return np.arange(n), np.zeros((0,), np.int64)
  k = min(max(1, round(fraction * n)), n - 1)
  order = np.random.default_rng([seed, _HOLDOUT_STREAM]).permutation(n)
  return np.sort(order[k:]), np.sort(order[:k])


def read_record(folder) -> dict | None:
  """A stage's record ({history: [[step, loss]], best_step, stopped}), or None."""
  path = Path(folder) / RECORD_FILE
  return json.loads(path.read_text()) if path.is_file() else None


class EarlyStopper:
  """The loop's side of early stopping for one stage in `folder`: `begin` after resuming,
  `after_checkpoint` at every step whose checkpoint the loop saved, `best` at the end.
  `dev_loss(state) -> float` measures the held-out loss."""

  def __init__(self, settings: EarlyStop, folder, total_steps: int, dev_loss):
    self.settings, self.folder, self.total = settings, Path(folder), total_steps
    self.dev_loss = dev_loss
    self.history: list[list] = []  # [step, loss] per evaluation
    self.best_step, self.stopped = None, False

  def due(self, step: int) -> bool:
    return step > 0 and (step % self.settings.every == 0 or step == self.total)

  def begin(self, start: int, state) -> None:
    """Reads the record up to the resumed step `start` (later evaluations are redone), and
    evaluates `start` itself if its checkpoint was saved but the record was not."""
    record = read_record(self.folder) or {"history": []}
    for step, loss in record["history"]:
      if step <= start:
        self._add(step, loss)
    if self.due(start) and (not self.history or self.history[-1][0] < start):
      self.after_checkpoint(start, state)

  def _add(self, step: int, loss: float) -> bool:
    """Records an evaluation; whether it improved on the best so far."""
    best = min((l for _, l in self.history), default=None)
    self.history.append([step, loss])
    improved = best is None or loss < best
    if improved:
      self.best_step = step
    since = sum(1 for s, _ in self.history if s > self.best_step)
    self.stopped = since >= self.settings.patience
    return improved

  def after_checkpoint(self, step: int, state) -> bool:
    """Evaluates at a due `step` (its checkpoint already saved); whether the stage stops."""
    if not self.due(step):
      return False
    if self._add(step, float(self.dev_loss(state))):
      self._save_best(state, step)
    self._write()
    return self.stopped

  def _best_store(self):
    return checkpoint.Checkpoints(self.folder / BEST_FOLDER, max_to_keep=1, async_save=False)

  def _save_best(self, state, step: int) -> None:
    with self._best_store() as store:
      if step in store.steps():  # saved before an interruption: the same parameters
        return
      for old in store.steps():  # the store keeps one state, whatever the step order
        store.manager.delete(old)
      store.save(state, force=True)

  def _write(self) -> None:
    if not distributed.is_primary():
      return
    text = json.dumps({"history": self.history, "best_step": self.best_step,
                       "stopped": self.stopped, "every": self.settings.every,
                       "patience": self.settings.patience}, indent=1)
    tmp = self.folder / (RECORD_FILE + ".tmp")
    self.folder.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text + "\n")
    os.replace(tmp, self.folder / RECORD_FILE)

  def best(self, state):
    """`state` with the best evaluation's parameters (itself when nothing was evaluated)."""
    if self.best_step is None:
      return state
    with self._best_store() as store:
      return store.restore(state, step=self.best_step)


def held_out_loss(graphdef, objective, batches, num_groups: int, key):
  """`loss(state) -> float`: the objective's reported mean loss over the held-out `batches`
  (one micro-batch each, as `make_batch(..., accum=1)` gives), each weighted by its rows."""
  import jax
  from perjax.training.step import merge_model

  @jax.jit
  def one(state, batch):
    micro = jax.tree.map(lambda x: x[0], batch)
    return objective(merge_model(graphdef, state), micro, key, num_groups)[1]["loss"]

  rows = [len(jax.tree.leaves(b)[0][0]) for b in batches]

  def loss(state) -> float:
    values = [float(one(state, b)) for b in batches]
    return float(np.dot(values, rows) / max(sum(rows), 1))
  return loss
