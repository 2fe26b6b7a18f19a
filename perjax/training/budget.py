"""A per-row pass budget (`train.max_passes`): how many steps a stage may run so that no row
sees its own examples more than E times, and how many passes each row's examples got.

The training loop draws each step's examples as consecutive slices of a fresh permutation of
all N examples per epoch (`experiment/train.py` `step_examples`), whatever their groups. So
every example, and hence every row, gets the same number of passes: `full` epochs each, plus
one more for the examples the last, partial epoch reaches. A budget E caps a stage at
floor(E * N / per_step) steps (at least one), so at most E * N examples are drawn: for a whole
E no example is drawn more than E times; for a fractional E a row's passes lie within one
epoch of it (the partial epoch reaches some examples, not others), and `row_passes` says
exactly how many each row got.
"""
import math

import numpy as np


def capped_steps(steps: int, max_passes: float, n: int, per_step: int) -> int:
  """A stage's steps under the budget (`max_passes` 0: no budget, `steps` itself)."""
  if not max_passes or n <= 0:
    return steps
  return max(1, min(steps, math.floor(max_passes * n / per_step)))


def capped_warmup(warmup: int, steps: int, capped: int) -> int:
  """The warm-up steps scaled with a capped stage, so warm-up keeps its share of the steps."""
  if capped >= steps:
    return warmup
  return min(round(warmup * capped / steps), capped - 1)


def draw_counts(n: int, steps: int, per_step: int, seed: int) -> np.ndarray:
  """[n] how often each example is drawn in `steps` steps of `per_step` examples (the loop's
  sampler: a permutation per epoch, seeded by (seed, epoch))."""
  full, rest = divmod(steps * per_step, n)
  counts = np.full(n, full, np.int64)
  if rest:
    counts[np.random.default_rng([seed, full]).permutation(n)[:rest]] += 1
  return counts


def row_passes(group_ids, counts, num_groups: int) -> np.ndarray:
  """[num_groups] passes over each row's own examples: the draws of its examples over their
  number (0 for a row without examples)."""
  group_ids = np.asarray(group_ids, np.int64)
  draws = np.bincount(group_ids, weights=counts, minlength=num_groups)
  examples = np.bincount(group_ids, minlength=num_groups)
  return np.where(examples > 0, draws / np.maximum(examples, 1), 0.0)
