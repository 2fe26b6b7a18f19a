"""Preference objectives that several methods share, registered by name in `OBJECTIVES`
(`perjax.method.objective_named`), so a method file names the objective it trains with instead
of importing another method's file.

  dpo_pair_loss   DPO (Rafailov et al. 2023) on preference batches, the reference policy being
                  the frozen base model (every personal module off: `base_only`)
"""
import jax

from perjax.registry import OBJECTIVES
from perjax.training.objectives import pair_loss, pair_rows, sequence_logprobs


def dpo_loss(policy_c, policy_r, ref_c, ref_r, beta):
  """Per-pair -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) and the reward margins."""
  margin = (policy_c - ref_c) - (policy_r - ref_r)
  return -jax.nn.log_sigmoid(beta * margin), margin


@OBJECTIVES.register("dpo_pair_loss")
def dpo_pair_loss(model, batch, rng, num_groups, *, options):
  """The DPO loss, summed over groups of each group's mean over its pairs (as `lm_loss`), so
  groups train independently; `group_pairs` counts a group's pairs in the whole accumulated
  batch (divided by the micro-batch count), `real` marks real (non-padding) pairs. Reads
  `options["beta"]`."""
  del rng, num_groups  # deterministic; group means come from `group_pairs`
  rows = pair_rows(batch)
  logp = [sequence_logprobs(model, rows[k]) for k in ("chosen", "rejected")]
  ref_logp = [jax.lax.stop_gradient(sequence_logprobs(model, rows[k], base_only=True))
              for k in ("chosen", "rejected")]
  return pair_loss(*dpo_loss(*logp, *ref_logp, float(options["beta"])), batch)
