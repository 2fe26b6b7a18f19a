"""DPO (Rafailov et al. 2023) on per-group LoRA adapters; at user/persona granularity this is
personalized DPO (P-DPO / P-RLHF, Li et al. 2024): each group's own adapter is the user- or
persona-conditioned policy. At global granularity (one group) it is plain DPO.

The reference policy is the frozen base model: the same model with every personal module
switched off (`base_only`), evaluated without gradient inside the objective. Batches are
preference batches (`perjax.training.batching.make_preference_batch`): a `chosen` and a
`rejected` row per pair, and the pair's group.
"""
import jax

from methods.lora import personal as lora_personal
from perjax.method import Method, register
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique
from perjax.training.objectives import pair_loss, pair_rows, sequence_logprobs


def dpo_loss(policy_c, policy_r, ref_c, ref_r, beta):
  """Per-pair -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) and the reward margins."""
  margin = (policy_c - ref_c) - (policy_r - ref_r)
  return -jax.nn.log_sigmoid(beta * margin), margin


def objective(model, batch, rng, num_groups, *, options):
  """The DPO loss, summed over groups of each group's mean over its pairs (as `lm_loss`), so
  groups train independently; `group_pairs` counts a group's pairs in the whole accumulated
  batch (divided by the micro-batch count), `real` marks real (non-padding) pairs."""
  del rng, num_groups  # deterministic; group means come from `group_pairs`
  rows = pair_rows(batch)
  logp = [sequence_logprobs(model, rows[k]) for k in ("chosen", "rejected")]
  ref_logp = [jax.lax.stop_gradient(sequence_logprobs(model, rows[k], base_only=True))
              for k in ("chosen", "rejected")]
  return pair_loss(*dpo_loss(*logp, *ref_logp, float(options["beta"])), batch)


DPO = register(Method(
    MethodInfo("dpo", Technique.FINETUNING, tuple(Granularity), "4.4",
               "DPO (Rafailov et al. 2023); personalized DPO, P-RLHF / P-DPO (Li et al. 2024)"),
    personal=lora_personal, objective=objective, pairwise=True,
    defaults={"beta": 0.1, "rank": 8, "alpha": 16.0, "targets": "q,v"}))
