"""Which users a step trains (at most `G_active` distinct ones, the device's slots) and their
batch's group ids as slot ids."""
import numpy as np

from perjax.errors import ConfigError


class CohortSampler:
  """`max_users` distinct users out of `num_users` per step, drawn uniformly without
  replacement; a pure function of (seed, step), so a resumed run draws the same cohorts."""

  def __init__(self, num_users: int, max_users: int, seed: int = 0):
    if not 1 <= max_users <= num_users:
      raise ConfigError(f"users per step must be in [1, {num_users}] (the bank's users), "
                        f"got {max_users}")
    self.num_users, self.max_users, self.seed = num_users, max_users, seed

  def cohort(self, step: int) -> np.ndarray:
    rng = np.random.default_rng((self.seed, step))
    if self.num_users <= 4 * self.max_users:
      return rng.permutation(self.num_users)[:self.max_users]
    picked: dict[int, None] = {}  # rejection sampling: no O(num_users) work per step
    while len(picked) < self.max_users:
      picked.setdefault(int(rng.integers(self.num_users)), None)
    return np.fromiter(picked, np.int64)


def to_slots(group_ids, cohort, slots: int) -> np.ndarray:
  """`group_ids` (user ids, any shape) as slot ids: user `cohort[i]` trains in slot i."""
  cohort = np.asarray(cohort)
  if len(cohort) > slots:
    raise ConfigError(f"{len(cohort)} users in one step, but the device table has {slots} slots")
  order = np.argsort(cohort)
  ids = np.asarray(group_ids)
  pos = np.searchsorted(cohort, ids, sorter=order)
  pos = np.minimum(pos, len(cohort) - 1)
  slot = order[pos]
  if not np.array_equal(cohort[slot], ids):
    missing = ids[cohort[slot] != ids].reshape(-1)[0]
    raise ConfigError(f"the batch has user {missing}, who is not in this step's cohort")
  return slot.astype(np.int32)
