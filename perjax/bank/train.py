"""Training the users of a bank with the unchanged jitted train step over `slots` device rows.

Each step reads the cohort's rows (tables and optimizer state, Adam's per-group step counts
included) into slots `0..k-1`, remaps the batch's group ids to those slots, runs the step, and
hands the updated slots to the bank's background writer, which overlaps the next step. Slots
beyond `k` hold zeros and get no examples, so `optim.per_group` leaves them alone; every user
moves exactly as if all `N` rows were on the device.
"""
import jax
import numpy as np

from perjax.bank.cohort import to_slots
from perjax.bank.store import AdapterBank


class BankTrainer:
  """`state`: a TrainState whose personal table has `slots` rows; `step_fn`: its jitted step
  (`make_train_step(..., num_groups=slots)`). Resumes at the bank's committed step."""

  def __init__(self, bank: AdapterBank, state, step_fn, slots: int):
    self.bank, self.step_fn, self.slots = bank, step_fn, slots
    layout = bank.layout
    self._filler = [np.zeros((slots,) + s, d) for s, d in zip(layout.shapes, layout.dtypes)]
    # committed to the device like the step's outputs, so the first call has the same
    # signature as every later one (one entry in the jit cache)
    self.state = jax.device_put(state.replace(step=np.asarray(bank.step, np.int32)))

  def train_step(self, cohort, batch: dict, rng):
    """One step on `batch` (its `group_ids` are user ids, all in `cohort`); returns metrics."""
    cohort = np.asarray(cohort)
    k = len(cohort)
    batch = {**batch, "group_ids": to_slots(batch["group_ids"], cohort, self.slots)}
    rows = self.bank.read(cohort)
    # on the device before the call: the step donates its state, and host arrays cannot be
    # donated (the previous slots' arrays stay with the background writer, never donated)
    table = jax.device_put([np.concatenate([r, f[k:]]) for r, f in zip(rows, self._filler)])
    personal, opt = self.bank.layout.trees(table)
    state = self.state.replace(personal=personal, opt_personal=opt)
    self.state, metrics = self.step_fn(state, batch, rng)
    self.bank.write_async(cohort, jax.tree.leaves(self.state.personal)
                          + jax.tree.leaves(self.state.opt_personal))
    return metrics

  def checkpoint(self, **extra) -> None:
    """Commit every row trained so far at the current step (atomic; only dirty rows)."""
    self.bank.checkpoint(int(self.state.step), **extra)
