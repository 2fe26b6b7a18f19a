"""DPO (Rafailov et al. 2023) on per-group LoRA adapters; at user/persona granularity this is
personalized DPO (P-DPO / P-RLHF, Li et al. 2024): each group's own adapter is the user- or
persona-conditioned policy. At global granularity (one group) it is plain DPO.

The reference policy is the frozen base model: the same model with every personal module
switched off (`base_only`), evaluated without gradient inside the objective. Batches are
preference batches (`perjax.training.batching.make_preference_batch`): a `chosen` and a
`rejected` row per pair, and the pair's group. The loss is the shared `dpo_pair_loss`
(`perjax.training.preference`).
"""
from perjax.method import Method, objective_named, register
from perjax.modules.lora import LORA_DEFAULTS, lora_factory
from perjax.registry import MethodInfo
from perjax.taxonomy import Granularity, Technique

DPO = register(Method(
    MethodInfo("dpo", Technique.FINETUNING, tuple(Granularity), "4.4",
               "DPO (Rafailov et al. 2023); personalized DPO, P-RLHF / P-DPO (Li et al. 2024)"),
    personal=lora_factory("dpo"), objective=objective_named("dpo_pair_loss"), pairwise=True,
    defaults={"beta": 0.1, **LORA_DEFAULTS}))
